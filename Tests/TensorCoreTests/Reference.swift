import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import TensorCore

/// Naive Float64 references for the kernels, finite differences, and test-input helpers.
/// Everything lives in this namespace so it cannot collide with helpers of other test files.
/// Matrices are `[[Double]]`, one array per row.
enum KernelReference {
    // MARK: Inputs and comparisons

    /// A `rows` x `cols` matrix of normal values (times `scale`); with `padded`, a column view of a
    /// wider matrix, so its rows are `cols + 5` apart (ld > cols).
    static func matrix(_ random: inout SeededRandom, _ rows: Int, _ cols: Int, padded: Bool, scale: Float = 1) -> Tensor {
        let stored = random.normalTensor(shape: [rows, cols + (padded ? 5 : 0)], standardDeviation: scale)
        return padded ? stored.slice(1, 0..<cols) : stored
    }

    /// The rows of a rank-2 tensor, in Double.
    static func rows(_ t: Tensor) -> [[Double]] {
        precondition(t.rank == 2)
        return (0..<t.shape[0]).map { i in (0..<t.shape[1]).map { j in Double(t[i, j]) } }
    }

    static func flat(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

    /// The worst of |actual - expected| / (1 + |expected|), which is absolute near 0 and relative for large values.
    static func worstError(_ actual: [Double], _ expected: [Double]) -> Double {
        precondition(actual.count == expected.count, "\(actual.count) values against \(expected.count)")
        var worst = 0.0
        for (a, e) in zip(actual, expected) {
            let error = abs(a - e) / (1 + abs(e))
            if error.isNaN { return .infinity }
            worst = max(worst, error)
        }
        return worst
    }

    static func expectClose(
        _ actual: Tensor, _ expected: [[Double]], tolerance: Double, _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(actual.rank == 2 && actual.shape == [expected.count, expected.first?.count ?? 0], "\(what): shape \(actual.shape)",
                sourceLocation: sourceLocation)
        let worst = worstError(rows(actual).flatMap { $0 }, expected.flatMap { $0 })
        #expect(worst <= tolerance, "\(what): worst error \(worst) > \(tolerance)", sourceLocation: sourceLocation)
    }

    static func expectClose(
        _ actual: [Double], _ expected: [Double], tolerance: Double, _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let worst = worstError(actual, expected)
        #expect(worst <= tolerance, "\(what): worst error \(worst) > \(tolerance)", sourceLocation: sourceLocation)
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    // MARK: Finite differences

    /// Checks a gradient by central differences along a random direction: for the Float64 scalar
    /// function `loss` of `point`, `<gradient, v>` against `(loss(x + hv) - loss(x - hv)) / 2h`
    /// with `v` a random ±1 vector. `gradient` comes from the kernel under test (Float32); the
    /// tolerance is relative to the sum of |gradient_i v_i|, the size of the terms of the product.
    static func expectDirectionalDerivative(
        _ loss: ([Double]) -> Double, at point: [Double], gradient: [Double], seed: UInt64,
        step: Double = 1e-4, tolerance: Double = 1e-4, _ what: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        precondition(point.count == gradient.count)
        var random = SeededRandom(seed: seed)
        let v = point.map { _ in Double(random.rademacher()) }
        let plus = zip(point, v).map { $0 + step * $1 }
        let minus = zip(point, v).map { $0 - step * $1 }
        let numeric = (loss(plus) - loss(minus)) / (2 * step)
        let analytic = dot(gradient, v)
        let scale = zip(gradient, v).reduce(0) { $0 + abs($1.0 * $1.1) } + 1e-12
        #expect(
            abs(analytic - numeric) <= tolerance * scale,
            "\(what): <grad, v> = \(analytic), finite difference \(numeric) (scale \(scale))",
            sourceLocation: sourceLocation)
    }

    // MARK: Softmax

    /// Columns row `i` sees: all, or j <= i + offset, clamped to 0...cols.
    static func visible(row i: Int, cols: Int, mask: SoftmaxMask) -> Int {
        switch mask {
        case .none: return cols
        case .causal(let offset), .slidingWindow(let offset, _): return max(0, min(cols, i + offset + 1))
        }
    }

    /// The first column row `i` sees: 0, or under a sliding window the first of the last `window` it sees.
    static func firstVisible(row i: Int, cols: Int, mask: SoftmaxMask) -> Int {
        guard case .slidingWindow(let offset, let window) = mask else { return 0 }
        return min(visible(row: i, cols: cols, mask: mask), max(0, i + offset - window + 1))
    }

    /// softmax(scale * x) over each row's visible columns, 0 elsewhere; `i` counts rows in one matrix.
    static func softmax(_ x: [[Double]], scale: Double, mask: SoftmaxMask) -> [[Double]] {
        x.enumerated().map { i, row in
            let n = visible(row: i, cols: row.count, mask: mask)
            let first = firstVisible(row: i, cols: row.count, mask: mask)
            guard n > first else { return row.map { _ in 0 } }
            let scaled = row[first..<n].map { scale * $0 }
            let m = scaled.max()!
            let e = scaled.map { exp($0 - m) }
            let sum = e.reduce(0, +)
            return Array(repeating: 0, count: first) + e.map { $0 / sum } + Array(repeating: 0, count: row.count - n)
        }
    }

    /// scale * y * (dy - sum_j dy * y) over visible columns, 0 elsewhere.
    static func softmaxBackward(y: [[Double]], dy: [[Double]], scale: Double, mask: SoftmaxMask) -> [[Double]] {
        zip(y, dy).enumerated().map { i, pair in
            let (yRow, dyRow) = pair
            let n = visible(row: i, cols: yRow.count, mask: mask)
            let first = firstVisible(row: i, cols: yRow.count, mask: mask)
            let dot = (first..<max(first, n)).reduce(0.0) { $0 + yRow[$1] * dyRow[$1] }
            return (0..<yRow.count).map { j in j >= first && j < n ? scale * yRow[j] * (dyRow[j] - dot) : 0 }
        }
    }

    // MARK: RMSNorm

    static func rmsNorm(_ x: [[Double]], weight: [Double], epsilon: Double) -> (y: [[Double]], rstd: [Double]) {
        let rstd = x.map { row in 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(row.count) + epsilon).squareRoot() }
        let y = zip(x, rstd).map { row, r in zip(row, weight).map { $1 * ($0 * r) } }
        return (y, rstd)
    }

    /// dx and dw of L = <rmsNorm(x, w), dy>, by the analytic formula.
    static func rmsNormBackward(_ x: [[Double]], weight: [Double], epsilon: Double, dy: [[Double]]) -> (dx: [[Double]], dw: [Double]) {
        let (_, rstd) = rmsNorm(x, weight: weight, epsilon: epsilon)
        var dw = [Double](repeating: 0, count: weight.count)
        let dx = x.indices.map { r -> [Double] in
            let n = Double(x[r].count), s = rstd[r]
            let c = x[r].indices.reduce(0.0) { $0 + weight[$1] * dy[r][$1] * x[r][$1] } * s * s * s / n
            for j in x[r].indices { dw[j] += dy[r][j] * x[r][j] * s }
            return x[r].indices.map { j in s * weight[j] * dy[r][j] - c * x[r][j] }
        }
        return (dx, dw)
    }

    // MARK: SiLU and SwiGLU

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
    static func silu(_ x: Double) -> Double { x * sigmoid(x) }
    static func siluDerivative(_ x: Double) -> Double { let s = sigmoid(x); return s * (1 + x * (1 - s)) }

    // MARK: Rotary

    /// Hugging Face's apply_rotary_pos_emb written out: for one head vector `q` at `position`,
    /// `emb = cat(freqs, freqs)`, `q * cos(emb) + rotate_half(q) * sin(emb)` with
    /// `rotate_half(q) = cat(-q[half...], q[..<half])`. The angles are float32, as transformers
    /// computes them (`inv_freq` and `inv_freq @ position_ids` in float32); the rest is Double.
    static func rotaryHuggingFace(_ q: [Double], position: Int, theta: Double) -> [Double] {
        let dim = q.count, half = dim / 2
        let inverseFrequency = stride(from: 0, to: dim, by: 2).map { 1 / Float(pow(theta, Double(Float($0) / Float(dim)))) }
        let freqs = inverseFrequency.map { Double(Float(position) * $0) }
        let emb = freqs + freqs
        let rotated = q[half...].map { -$0 } + q[..<half]
        return (0..<dim).map { q[$0] * cos(emb[$0]) + rotated[$0] * sin(emb[$0]) }
    }

    /// Rotates every head of every row of `x` ([tokens][heads * dim]).
    static func rotary(_ x: [[Double]], positions: [Int32], headDimension: Int, theta: Double) -> [[Double]] {
        zip(x, positions).map { row, position in
            stride(from: 0, to: row.count, by: headDimension).flatMap { start in
                rotaryHuggingFace(Array(row[start..<start + headDimension]), position: Int(position), theta: theta)
            }
        }
    }

    // MARK: Cross-entropy

    /// Per-row loss and logsumexp (0 and 0 for ignored rows).
    static func crossEntropy(_ logits: [[Double]], targets: [Int32], ignoreIndex: Int32) -> (loss: [Double], logsumexp: [Double]) {
        var loss = [Double](), lse = [Double]()
        for (row, target) in zip(logits, targets) {
            guard target != ignoreIndex else { loss.append(0); lse.append(0); continue }
            let m = row.max()!
            let l = m + log(row.reduce(0) { $0 + exp($1 - m) })
            lse.append(l)
            loss.append(l - row[Int(target)])
        }
        return (loss, lse)
    }

    /// (softmax(row) - onehot(target)) * g[r], 0 for ignored rows.
    static func crossEntropyBackward(_ logits: [[Double]], targets: [Int32], rowGradients g: [Double], ignoreIndex: Int32) -> [[Double]] {
        let (_, lse) = crossEntropy(logits, targets: targets, ignoreIndex: ignoreIndex)
        return logits.indices.map { r in
            guard targets[r] != ignoreIndex else { return logits[r].map { _ in 0 } }
            return logits[r].indices.map { j in (exp(logits[r][j] - lse[r]) - (j == Int(targets[r]) ? 1 : 0)) * g[r] }
        }
    }

    // MARK: Reshaping

    /// Splits a flat array into rows of `cols`.
    static func unflatten(_ values: [Double], cols: Int) -> [[Double]] {
        stride(from: 0, to: values.count, by: max(cols, 1)).map { Array(values[$0..<min($0 + cols, values.count)]) }
    }
}
