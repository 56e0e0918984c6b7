import Attribution
import TensorCore

/// Straightforward Float64 references for the scorers, written from the formulas of
/// docs/ATTRIBUTION.md with loops, independent of the GEMM formulation under test.
enum Reference {
    typealias Matrix = [[Double]]

    static func matrix(_ tensor: Tensor) -> Matrix {
        (0..<tensor.shape[0]).map { row in (0..<tensor.shape[1]).map { Double(tensor[row, $0]) } }
    }

    static func dot(_ a: ArraySlice<Double>, _ b: ArraySlice<Double>) -> Double {
        zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// lambda_l = damping x mean of g^2 over block l's n x D_l entries.
    static func lambda(_ rows: Matrix, _ range: Range<Int>, damping: Double) -> Double {
        let sum = rows.reduce(0) { total, row in total + row[range].reduce(0) { $0 + $1 * $1 } }
        return damping * sum / Double(rows.count * range.count)
    }

    /// DataInf by its definition: c_i = (v . g_i) / (lambda + |g_i|^2),
    /// hvp_l = 1/(n lambda) sum_i (v - c_i g_i), score_k = sum_l hvp_l . g_k.
    static func dataInf(_ rows: Matrix, _ query: [Double], blocks: [Range<Int>], damping: Double) -> [Double] {
        let n = rows.count
        var scores = [Double](repeating: 0, count: n)
        for range in blocks {
            let lambda = lambda(rows, range, damping: damping)
            let v = query[range]
            var hvp = [Double](repeating: 0, count: range.count)
            for g in rows {
                let c = dot(v, g[range]) / (lambda + dot(g[range], g[range]))
                for (j, column) in range.enumerated() { hvp[j] += (v[column] - c * g[column]) / (Double(n) * lambda) }
            }
            for k in 0..<n { scores[k] += dot(hvp[...], rows[k][range]) }
        }
        return scores
    }

    /// Projected Fisher: x_l = (G_l^T G_l / n + lambda I)^-1 v_l by Gaussian elimination, score_k = sum_l x_l . g_k.
    static func fisher(_ rows: Matrix, _ query: [Double], blocks: [Range<Int>], damping: Double) -> [Double] {
        let n = rows.count
        var scores = [Double](repeating: 0, count: n)
        for range in blocks {
            let lambda = lambda(rows, range, damping: damping)
            var f = range.map { a in range.map { b in rows.reduce(0) { $0 + $1[a] * $1[b] } / Double(n) } }
            for i in f.indices { f[i][i] += lambda }
            let x = solve(f, Array(query[range]))
            for k in 0..<n { scores[k] += dot(x[...], rows[k][range]) }
        }
        return scores
    }

    /// A x = b by Gaussian elimination with partial pivoting.
    static func solve(_ a: Matrix, _ b: [Double]) -> [Double] {
        var (m, x) = (a, b)
        let n = b.count
        for column in 0..<n {
            let pivot = (column..<n).max { abs(m[$0][column]) < abs(m[$1][column]) }!
            m.swapAt(column, pivot)
            x.swapAt(column, pivot)
            for row in column + 1..<n {
                let factor = m[row][column] / m[column][column]
                for j in column..<n { m[row][j] -= factor * m[column][j] }
                x[row] -= factor * x[column]
            }
        }
        for row in stride(from: n - 1, through: 0, by: -1) {
            var sum = x[row]
            for j in row + 1..<n { sum -= m[row][j] * x[j] }
            x[row] = sum / m[row][row]
        }
        return x
    }

    /// The score of every record for one query and one checkpoint, by kind (TracIn's weight aside).
    static func scores(_ kind: ScorerKind, _ rows: Matrix, _ query: [Double], blocks: [Range<Int>], damping: Double) -> [Double] {
        switch kind {
        case .gradDot, .tracIn: return rows.map { dot($0[...], query[...]) }
        case .gradCos:
            let queryNorm = dot(query[...], query[...]).squareRoot()
            return rows.map { dot($0[...], query[...]) / (queryNorm * dot($0[...], $0[...]).squareRoot()) }
        case .dataInf: return dataInf(rows, query, blocks: blocks, damping: damping)
        case .fisher: return fisher(rows, query, blocks: blocks, damping: damping)
        }
    }
}

/// Seeded test inputs: a gradient index per checkpoint (a strided view) and its queries.
struct ScoringProblem {
    var checkpoints: [CheckpointGradients]
    var queries: [Tensor]
    var blocks: GradientBlocks

    /// n x D rows per checkpoint as column views of a wider matrix (a leading dimension, as a
    /// memory-mapped index may have), blocks of awkward widths, q queries.
    init(seed: UInt64, records: Int, blockWidths: [Int], queries queryCount: Int, learningRates: [Float]) throws {
        var random = SeededRandom(seed: seed)
        var ranges: [Range<Int>] = []
        for width in blockWidths { ranges.append((ranges.last?.upperBound ?? 0)..<((ranges.last?.upperBound ?? 0) + width)) }
        blocks = try GradientBlocks(ranges)
        let width = blocks.width
        checkpoints = []
        queries = []
        for rate in learningRates {
            // Columns of varied scale, as LoRA A and B gradients differ.
            let scales = (0..<width).map { _ in random.uniform(in: 0.2..<3) }
            let normal = random.normalTensor(shape: [records, width])
            // The index as a strided view: rows width + 3 apart.
            var padded = Tensor(zeros: [records, width + 3])
            for r in 0..<records { for c in 0..<width { padded[r, c + 1] = normal[r, c] * scales[c] } }
            checkpoints.append(try CheckpointGradients(rows: padded.slice(1, 1..<width + 1), blocks: blocks, learningRate: rate))
            queries.append(random.normalTensor(shape: [queryCount, width]))
        }
    }
}

/// |actual - expected| <= tolerance x max|expected| over the whole result.
func closeRelative(_ actual: [Float], _ expected: [Double], tolerance: Double = 1e-4) -> Bool {
    guard actual.count == expected.count else { return false }
    let scale = expected.map(abs).max() ?? 0
    return zip(actual, expected).allSatisfy { abs(Double($0) - $1) <= tolerance * max(scale, 1e-30) }
}
