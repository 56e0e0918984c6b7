import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import TensorCore

private typealias Ref = KernelReference

/// The kernels the Qwen2, Qwen3 and Mistral layers add to Llama's: linear biases, per-head RMSNorm of
/// queries and keys, and the sliding attention window, each against a Float64 reference on awkward sizes.
@Suite struct BiasKernelTests {
    @Test(arguments: [1, 7, 33, 257])
    func addBiasAndItsGradientMatchFloat64(cols: Int) {
        var random = SeededRandom(seed: 900 + UInt64(cols))
        for rows in [1, 3, 17] {
            for padded in [false, true] {
                let what = "bias \(rows)x\(cols) padded \(padded)"
                let x = Ref.matrix(&random, rows, cols, padded: padded)
                let bias = random.normalTensor(shape: [cols])
                let before = Ref.rows(x)
                var y = x
                Kernels.addBias(&y, bias: bias)
                #expect(Ref.rows(x) == before, "\(what): the input is not written")
                Ref.expectClose(y, Ref.rows(x).map { zip($0, Ref.flat(bias)).map { $0 + $1 } }, tolerance: 1e-7, what)

                let dy = Ref.matrix(&random, rows, cols, padded: padded)
                let start = random.normalTensor(shape: [cols])
                var dBias = start
                Kernels.addBiasBackward(gradient: dy, accumulatingBiasGradient: &dBias)
                let sums = (0..<cols).map { j in Ref.rows(dy).reduce(Double(start[j])) { $0 + $1[j] } }
                Ref.expectClose(Ref.flat(dBias), sums, tolerance: 1e-5, "\(what) backward accumulates column sums")
                // The gradient by finite differences of L = <x + bias, dy>.
                let dyRows = Ref.rows(dy), xRows = Ref.rows(x)
                var once = Tensor(zeros: [cols])
                Kernels.addBiasBackward(gradient: dy, accumulatingBiasGradient: &once)
                Ref.expectDirectionalDerivative(
                    { b in zip(xRows, dyRows).reduce(0) { $0 + Ref.dot(zip($1.0, b).map { $0 + $1 }, $1.1) } },
                    at: Ref.flat(bias), gradient: Ref.flat(once), seed: UInt64(rows * 1000 + cols), "\(what) finite differences")
            }
        }
    }

    @Test func emptyRowsLeaveTheGradientAlone() {
        var y = Tensor(zeros: [0, 5])
        Kernels.addBias(&y, bias: Tensor(shape: [5], repeating: 1))
        var dBias = Tensor(shape: [5], repeating: 2)
        Kernels.addBiasBackward(gradient: Tensor(zeros: [0, 5]), accumulatingBiasGradient: &dBias)
        #expect(y.shape == [0, 5] && dBias.scalars == [2, 2, 2, 2, 2])
    }
}

@Suite struct HeadRMSNormKernelTests {
    /// Per head: the rows of [rows, heads * d] cut into heads, each normed with the shared weight.
    static func reference(_ x: [[Double]], weight: [Double], heads: Int, epsilon: Double) -> (y: [[Double]], rstd: [[Double]]) {
        let d = weight.count
        var y: [[Double]] = [], rstd: [[Double]] = []
        for row in x {
            let pieces = (0..<heads).map { Array(row[$0 * d..<($0 + 1) * d]) }
            let (normed, r) = Ref.rmsNorm(pieces, weight: weight, epsilon: epsilon)
            y.append(normed.flatMap { $0 })
            rstd.append(r)
        }
        return (y, rstd)
    }

    @Test(arguments: [(1, 2), (3, 12), (2, 128), (5, 6)])
    func forwardAndBackwardMatchFloat64(heads: Int, headDimension: Int) {
        var random = SeededRandom(seed: 950 + UInt64(heads * 1000 + headDimension))
        let epsilon: Float = 1e-5
        for rows in [1, 4, 9] {
            for padded in [false, true] {
                let what = "head norm \(rows)x\(heads)x\(headDimension) padded \(padded)"
                let x = Ref.matrix(&random, rows, heads * headDimension, padded: padded, scale: 2)
                let weight = random.uniformTensor(shape: [headDimension], in: 0.5..<1.5)
                let (y, rstd) = Kernels.headRMSNorm(x, weight: weight, headDimension: headDimension, epsilon: epsilon)
                let expected = Self.reference(Ref.rows(x), weight: Ref.flat(weight), heads: heads, epsilon: Double(epsilon))
                Ref.expectClose(y, expected.y, tolerance: 1e-6, what)
                Ref.expectClose(rstd, expected.rstd, tolerance: 1e-6, "\(what) rstd")

                let dy = Ref.matrix(&random, rows, heads * headDimension, padded: padded)
                var dWeight = Tensor(shape: [headDimension], repeating: 0.25)
                let dx = Kernels.headRMSNormBackward(
                    input: x, weight: weight, rstd: rstd, gradient: dy, headDimension: headDimension,
                    accumulatingWeightGradient: &dWeight)
                let frozen = Kernels.headRMSNormBackward(input: x, weight: weight, rstd: rstd, gradient: dy, headDimension: headDimension)
                #expect(frozen == dx, "\(what): the frozen-weight backward gives the same input gradient")
                // Reference: per-head pieces stacked as rows of one RMSNorm.
                let pieces = Ref.rows(x).flatMap { row in (0..<heads).map { Array(row[$0 * headDimension..<($0 + 1) * headDimension]) } }
                let dyPieces = Ref.rows(dy).flatMap { row in (0..<heads).map { Array(row[$0 * headDimension..<($0 + 1) * headDimension]) } }
                let (dxPieces, dw) = Ref.rmsNormBackward(pieces, weight: Ref.flat(weight), epsilon: Double(epsilon), dy: dyPieces)
                let dxRows = stride(from: 0, to: dxPieces.count, by: heads).map { Array(dxPieces[$0..<$0 + heads].joined()) }
                Ref.expectClose(dx, dxRows, tolerance: 1e-5, "\(what) dx")
                Ref.expectClose(Ref.flat(dWeight), dw.map { $0 + 0.25 }, tolerance: 1e-5, "\(what) dWeight accumulates")

                // Finite differences of L = <headRMSNorm(x, w), dy> in x and in w.
                let dyRows = Ref.rows(dy), wFlat = Ref.flat(weight), xFlat = Ref.flat(x.contiguous())
                let cols = heads * headDimension
                Ref.expectDirectionalDerivative(
                    { flat in
                        let out = Self.reference(Ref.unflatten(flat, cols: cols), weight: wFlat, heads: heads, epsilon: Double(epsilon)).y
                        return zip(out, dyRows).reduce(0) { $0 + Ref.dot($1.0, $1.1) }
                    },
                    at: xFlat, gradient: Ref.flat(dx), seed: UInt64(rows * 7 + heads), "\(what) dx finite differences")
                Ref.expectDirectionalDerivative(
                    { w in
                        let out = Self.reference(Ref.unflatten(xFlat, cols: cols), weight: w, heads: heads, epsilon: Double(epsilon)).y
                        return zip(out, dyRows).reduce(0) { $0 + Ref.dot($1.0, $1.1) }
                    },
                    at: wFlat, gradient: dw.map { $0 }, seed: UInt64(rows * 11 + heads), "\(what) dw finite differences")
            }
        }
    }
}

@Suite struct SlidingWindowKernelTests {
    static let masks: [SoftmaxMask] = [
        .slidingWindow(window: 1), .slidingWindow(window: 3), .slidingWindow(queryOffset: 5, window: 4),
        .slidingWindow(queryOffset: -2, window: 2), .slidingWindow(queryOffset: 2, window: 300),
    ]

    @Test(arguments: [1, 7, 33, 257])
    func softmaxForwardAndBackwardMatchFloat64(cols: Int) {
        var random = SeededRandom(seed: 980 + UInt64(cols))
        var seed: UInt64 = 0
        for rows in [1, 3, 9] {
            for padded in [false, true] {
                for mask in Self.masks {
                    let what = "softmax \(rows)x\(cols) padded \(padded) \(mask)"
                    let x = Ref.matrix(&random, rows, cols, padded: padded, scale: 3)
                    let y = Kernels.softmax(x, scale: 0.5, mask: mask)
                    Ref.expectClose(y, Ref.softmax(Ref.rows(x), scale: 0.5, mask: mask), tolerance: 1e-6, what)
                    var inPlace = x
                    Kernels.softmax(inPlace: &inPlace, scale: 0.5, mask: mask)
                    #expect(inPlace == y, "\(what): in place")

                    let dy = Ref.matrix(&random, rows, cols, padded: padded)
                    let dx = Kernels.softmaxBackward(output: y, gradient: dy, scale: 0.5, mask: mask)
                    Ref.expectClose(dx, Ref.softmaxBackward(y: Ref.rows(y), dy: Ref.rows(dy), scale: 0.5, mask: mask), tolerance: 1e-6, "\(what) backward")
                    var dxInPlace = dy
                    Kernels.softmaxBackward(output: y, gradientInPlace: &dxInPlace, scale: 0.5, mask: mask)
                    #expect(dxInPlace == dx, "\(what): backward in place")

                    // transformers' rule, spelled out: column j is visible iff j <= i + offset and j > i + offset - window.
                    guard case .slidingWindow(let offset, let window) = mask else { continue }
                    for i in 0..<rows {
                        for j in 0..<cols where !(j <= i + offset && j > i + offset - window) {
                            #expect(y[i, j] == 0 && dx[i, j] == 0, "\(what): masked (\(i), \(j)) is \(y[i, j]), gradient \(dx[i, j])")
                        }
                    }
                    let dyRows = Ref.rows(dy)
                    seed += 1
                    Ref.expectDirectionalDerivative(
                        { flat in
                            let out = Ref.softmax(Ref.unflatten(flat, cols: cols), scale: 0.5, mask: mask)
                            return zip(out, dyRows).reduce(0) { $0 + Ref.dot($1.0, $1.1) }
                        },
                        at: Ref.flat(x.contiguous()), gradient: Ref.flat(dx), seed: seed, "\(what) finite differences")
                }
            }
        }
    }

    @Test func aWindowAsLongAsTheRowsIsCausal() {
        var random = SeededRandom(seed: 990)
        let x = random.normalTensor(shape: [6, 9])
        #expect(Kernels.softmax(x, mask: .slidingWindow(queryOffset: 3, window: 9)) == Kernels.softmax(x, mask: .causal(queryOffset: 3)))
        #expect(Kernels.softmax(x, mask: .slidingWindow(queryOffset: 3, window: 4)) != Kernels.softmax(x, mask: .causal(queryOffset: 3)))
    }

    /// Float64 grouped-query attention of the last `queries` of `seen` positions, with an optional window.
    static func attention(
        _ q: [[Double]], _ k: [[Double]], _ v: [[Double]], heads: Int, keyValueHeads: Int, headDimension d: Int,
        scale: Double, window: Int?
    ) -> [[Double]] {
        let (queries, seen, group) = (q.count, k.count, heads / keyValueHeads)
        return (0..<queries).map { i in
            let position = seen - queries + i
            let first = window.map { max(0, position - $0 + 1) } ?? 0
            var row = [Double](repeating: 0, count: heads * d)
            for h in 0..<heads {
                let g = h / group
                let qh = Array(q[i][h * d..<(h + 1) * d])
                let scores = (first...position).map { j in scale * Ref.dot(qh, Array(k[j][g * d..<(g + 1) * d])) }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let sum = e.reduce(0, +)
                for (n, j) in (first...position).enumerated() {
                    for c in 0..<d { row[h * d + c] += e[n] / sum * v[j][g * d + c] }
                }
            }
            return row
        }
    }

    @Test(arguments: [(4, 2, 6), (3, 3, 16), (8, 4, 34)])
    func decodeAttentionWithAWindowMatchesFloat64(heads: Int, keyValueHeads: Int, headDimension: Int) {
        var random = SeededRandom(seed: 995 + UInt64(heads * 100 + headDimension))
        let width = keyValueHeads * headDimension
        let scale = 1 / Float(headDimension).squareRoot()
        for seen in [1, 7, 33] {
            for queries in 1...min(3, seen) {
                for window in [nil, 1, 4, 40] as [Int?] {
                    let cacheKeys = random.normalTensor(shape: [seen + 4, width]), cacheValues = random.normalTensor(shape: [seen + 4, width])
                    let (keys, values) = (cacheKeys.slice(0, 0..<seen), cacheValues.slice(0, 0..<seen))
                    let q = random.normalTensor(shape: [queries, heads * headDimension + 3]).slice(1, 0..<heads * headDimension)
                    let actual = Kernels.decodeAttention(
                        queries: q, keys: keys, values: values, heads: heads, keyValueHeads: keyValueHeads, scale: scale, window: window)
                    let expected = Self.attention(
                        Ref.rows(q), Ref.rows(keys), Ref.rows(values), heads: heads, keyValueHeads: keyValueHeads,
                        headDimension: headDimension, scale: Double(scale), window: window)
                    Ref.expectClose(actual, expected, tolerance: 1e-5, "decode attention seen \(seen) queries \(queries) window \(String(describing: window))")
                }
            }
        }
    }
}
