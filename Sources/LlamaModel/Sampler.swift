import Foundation
import TensorCore

/// How the next token is chosen from logits, as transformers' `generate` does: greedy (argmax)
/// when the temperature is 0, otherwise sampling from the softmax of logits / temperature, kept to
/// the top-k tokens and then to the top-p nucleus.
public struct SamplingParameters: Sendable, Equatable, Codable {
    /// 0: greedy decoding (transformers' `do_sample=False`); > 0: sampling, logits divided by it.
    public var temperature: Float
    /// Keep only the k highest logits (ties at the k-th value are all kept, as transformers'
    /// `TopKLogitsWarper` does); nil: no top-k filter. Ignored when greedy.
    public var topK: Int?
    /// Keep the smallest set of most probable tokens whose probability sums to at least topP
    /// (always at least one); 1: no filter. Applied after top-k. Ignored when greedy.
    public var topP: Float
    /// The seed of the sampling stream: the same seed, parameters and model give the same tokens.
    public var seed: UInt64

    public init(temperature: Float = 1, topK: Int? = nil, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    /// Argmax decoding.
    public static let greedy = SamplingParameters(temperature: 0)

    public var isGreedy: Bool { temperature == 0 }

    /// Throws for a negative or non-finite temperature, top-k below 1, top-p outside (0, 1].
    public func validate() throws(GenerationError) {
        guard temperature.isFinite && temperature >= 0 else { throw .invalidTemperature(temperature) }
        if let topK, topK < 1 { throw .invalidTopK(topK) }
        guard topP > 0 && topP <= 1 else { throw .invalidTopP(topP) }
    }
}

/// Chooses tokens from logits by `SamplingParameters`, drawing from its own seeded stream.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var random: SeededRandom

    public init(_ parameters: SamplingParameters) throws(GenerationError) {
        try parameters.validate()
        self.parameters = parameters
        random = SeededRandom(seed: parameters.seed)
    }

    /// The next token for `logits` (one per vocabulary id).
    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int {
        if parameters.isGreedy { return Self.argmax(logits) }
        let (tokens, weights) = candidates(logits)
        // A uniform draw in [0, total) from 53 random bits, walked down the cumulative weights.
        let total = weights.reduce(0, +)
        let draw = Double(random.next() >> 11) * 0x1p-53 * total
        var cumulative = 0.0
        for (token, weight) in zip(tokens, weights) {
            cumulative += weight
            if draw < cumulative { return token }
        }
        return tokens[tokens.count - 1]
    }

    public mutating func next(_ logits: [Float]) -> Int {
        logits.withUnsafeBufferPointer { next($0) }
    }

    /// The first index of the largest value (torch.argmax's choice among ties).
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        precondition(!logits.isEmpty, "argmax of no logits")
        var best = 0
        for index in 1..<logits.count where logits[index] > logits[best] { best = index }
        return best
    }

    public static func argmax(_ logits: [Float]) -> Int { logits.withUnsafeBufferPointer(argmax) }

    /// The distribution `next` samples from, per vocabulary id (0 outside the kept tokens); for
    /// greedy decoding, all mass on the argmax.
    public func distribution(_ logits: [Float]) -> [Double] {
        var probabilities = [Double](repeating: 0, count: logits.count)
        if parameters.isGreedy {
            probabilities[Self.argmax(logits)] = 1
            return probabilities
        }
        let (tokens, weights) = logits.withUnsafeBufferPointer { candidates($0) }
        let total = weights.reduce(0, +)
        for (token, weight) in zip(tokens, weights) { probabilities[token] = weight / total }
        return probabilities
    }

    /// The kept tokens (by id, or most probable first once top-p has sorted them), with unnormalised probabilities
    /// exp((logit - max) / temperature), filtered as transformers does: the logits divided by the
    /// temperature (in Float); top-k keeps every token at least as high as the k-th highest;
    /// top-p sorts ascending (lower id first among equals, as torch's sort leaves them) and drops
    /// tokens while the cumulative probability up to and including them is at most 1 - top-p,
    /// never the most probable.
    func candidates(_ logits: UnsafeBufferPointer<Float>) -> (tokens: [Int], weights: [Double]) {
        let temperature = parameters.temperature
        let scaled = logits.map { $0 / temperature }
        var tokens: [Int]
        if let topK = parameters.topK, topK < scaled.count {
            let threshold = Self.largest(scaled, rank: topK)
            tokens = scaled.indices.filter { scaled[$0] >= threshold }
        } else {
            tokens = Array(scaled.indices)
        }
        let maximum = tokens.lazy.map { scaled[$0] }.max() ?? 0
        let weights = tokens.map { exp(Double(scaled[$0] - maximum)) }
        guard parameters.topP < 1 else { return (tokens, weights) }

        let total = weights.reduce(0, +)
        let limit = (1 - Double(parameters.topP)) * total
        // A token of weight at most limit / n is dropped wherever it sorts: the ascending sum up
        // to it is at most n times its weight. Those all sort before the others, so only the
        // others need sorting, starting the sum at their mass.
        let bound = limit / Double(tokens.count)
        var dropped = 0.0
        var order: [Int] = []
        for position in tokens.indices {
            if weights[position] <= bound { dropped += weights[position] } else { order.append(position) }
        }
        guard !order.isEmpty else { return ([tokens[0]], [1]) }  // unreachable for top-p > 0
        order.sort {
            let (a, b) = (scaled[tokens[$0]], scaled[tokens[$1]])
            return a < b || (a == b && tokens[$0] < tokens[$1])
        }
        var removed = 0, cumulative = dropped
        while removed < order.count - 1 {
            cumulative += weights[order[removed]]
            guard cumulative <= limit else { break }
            removed += 1
        }
        let kept = order[removed...].reversed()
        return (kept.map { tokens[$0] }, kept.map { weights[$0] })
    }

    /// The `rank`-th largest of `values` (1: the largest), by quickselect.
    static func largest(_ values: [Float], rank: Int) -> Float {
        var items = values
        var (low, high) = (0, items.count - 1)
        let target = rank - 1  // its index in descending order
        while low < high {
            let pivot = items[(low + high) / 2]
            var (i, j) = (low, high)
            while i <= j {
                while items[i] > pivot { i += 1 }
                while items[j] < pivot { j -= 1 }
                if i <= j {
                    items.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if target <= j { high = j } else if target >= i { low = i } else { break }
        }
        return items[target]
    }
}
