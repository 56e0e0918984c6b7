import TensorCore

/// The statistics of attribution evaluation: rank correlation, ROC AUC and a bootstrap confidence interval.
public enum EvaluationStatistics {
    /// Ranks 1...n, ties sharing their mean rank.
    static func ranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count, values[order[end + 1]] == values[order[start]] { end += 1 }
            let mean = Double(start + end) / 2 + 1
            for position in start...end { ranks[order[position]] = mean }
            start = end + 1
        }
        return ranks
    }

    /// Spearman's rank correlation (Pearson's on ranks, ties averaged); 0 when either side is constant.
    public static func spearman(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count && a.count >= 2, "Spearman needs two equal-length samples of at least 2")
        return pearson(ranks(a), ranks(b))
    }

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        let (meanA, meanB) = (a.reduce(0, +) / n, b.reduce(0, +) / n)
        var (covariance, varianceA, varianceB) = (0.0, 0.0, 0.0)
        for (x, y) in zip(a, b) {
            covariance += (x - meanA) * (y - meanB)
            varianceA += (x - meanA) * (x - meanA)
            varianceB += (y - meanB) * (y - meanB)
        }
        guard varianceA > 0, varianceB > 0 else { return 0 }
        return covariance / (varianceA * varianceB).squareRoot()
    }

    /// The area under the ROC curve of `scores` for finding `positives` (higher score = more likely positive):
    /// the probability that a random positive outscores a random negative, ties counting one half.
    public static func rocAUC(scores: [Double], positives: [Bool]) -> Double {
        precondition(scores.count == positives.count)
        let ranks = ranks(scores)
        let positiveCount = Double(positives.filter { $0 }.count)
        let negativeCount = Double(positives.count) - positiveCount
        precondition(positiveCount > 0 && negativeCount > 0, "AUC needs positives and negatives")
        let rankSum = zip(ranks, positives).filter(\.1).map(\.0).reduce(0, +)
        return (rankSum - positiveCount * (positiveCount + 1) / 2) / (positiveCount * negativeCount)
    }

    /// The mean of `values` with a seeded percentile-bootstrap confidence interval.
    public static func meanWithInterval(
        _ values: [Double], level: Double = 0.95, resamples: Int = 2000, seed: UInt64 = 0
    ) -> MeanInterval {
        precondition(!values.isEmpty)
        let mean = values.reduce(0, +) / Double(values.count)
        var random = SeededRandom(seed: seed)
        var means: [Double] = []
        means.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var sum = 0.0
            for _ in values.indices { sum += values[Int(random.next() % UInt64(values.count))] }
            means.append(sum / Double(values.count))
        }
        means.sort()
        let tail = (1 - level) / 2
        let low = means[min(resamples - 1, Int((tail * Double(resamples)).rounded(.down)))]
        let high = means[min(resamples - 1, Int(((1 - tail) * Double(resamples)).rounded(.down)))]
        return MeanInterval(mean: mean, low: low, high: high, level: level, count: values.count)
    }
}

/// A mean and its confidence interval.
public struct MeanInterval: Sendable, Equatable, Codable {
    public var mean: Double
    public var low: Double
    public var high: Double
    public var level: Double
    /// How many values the mean is over.
    public var count: Int
}
