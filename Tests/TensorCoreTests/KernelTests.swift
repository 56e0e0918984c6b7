import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import TensorCore

private typealias Ref = KernelReference

/// Row lengths that hit every path of the kernels: a lone element, less than one vector, a few
/// vectors and lanes blocks with a ragged tail.
private let awkwardLengths = [1, 7, 33, 257]

// MARK: exp

@Suite struct ExpKernelTests {
    /// The error of `actual` in units in the last place of the float nearest `exact`
    /// (of the smallest subnormal below the normal range).
    static func ulpError(_ actual: Float, _ exact: Double) -> Double {
        let nearest = Float(exact)
        if nearest.isInfinite { return actual == nearest ? 0 : .infinity }
        return abs(Double(actual) - exact) / Double(nearest.ulp)
    }

    @Test func expIsWithinTwoUlpsOverTheFloatRange() {
        var random = SeededRandom(seed: 101)
        var xs = [Float]()
        for _ in 0..<40_000 { xs.append(random.uniform(in: -104..<89)) }      // the whole finite range, subnormals included
        for _ in 0..<20_000 { xs.append(random.uniform(in: -2..<2)) }
        for _ in 0..<10_000 {                                               // tiny magnitudes, down to subnormal inputs
            xs.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()) & 0xBF7F_FFFF))
        }
        xs += [0, -0, 1, -1, 88.72283, -87.33654, -103.9, 88.7228317]
        let ys = Kernels.exp(Tensor(shape: [xs.count], scalars: xs)).scalars
        var worst = 0.0, worstAt: Float = 0
        for (x, y) in zip(xs, ys) {
            let error = Self.ulpError(y, exp(Double(x)))
            if error > worst { (worst, worstAt) = (error, x) }
        }
        #expect(worst <= 2, "exp is off by \(worst) ulp at \(worstAt)")
    }

    @Test func expLimits() {
        let xs: [Float] = [-.infinity, .infinity, .nan, 0, -110, -103.98, 88.7229, 1000, -1000]
        let ys = Kernels.exp(Tensor(shape: [xs.count], scalars: xs)).scalars
        #expect(ys[0] == 0)
        #expect(ys[1] == .infinity)
        #expect(ys[2].isNaN)
        #expect(ys[3] == 1)
        #expect(ys[4] == 0 && ys[5] == 0)
        #expect(ys[6] == .infinity && ys[7] == .infinity)
        #expect(ys[8] == 0)
    }
}

// MARK: Softmax

@Suite struct SoftmaxKernelTests {
    static let masks: [SoftmaxMask] = [.none, .causal(), .causal(queryOffset: 3), .causal(queryOffset: -2)]

    @Test(arguments: awkwardLengths)
    func forwardAndBackwardMatchFloat64(cols: Int) {
        var random = SeededRandom(seed: 200 + UInt64(cols))
        var seed: UInt64 = 0
        for rows in [1, 3, 8] {
            for padded in [false, true] {
                for mask in Self.masks {
                    for scale: Float in [1, 0.125] {
                        let what = "softmax \(rows)x\(cols) padded \(padded) \(mask) scale \(scale)"
                        let x = Ref.matrix(&random, rows, cols, padded: padded, scale: 3)
                        let y = Kernels.softmax(x, scale: scale, mask: mask)
                        Ref.expectClose(y, Ref.softmax(Ref.rows(x), scale: Double(scale), mask: mask), tolerance: 1e-6, what)

                        let dy = Ref.matrix(&random, rows, cols, padded: padded)
                        let dx = Kernels.softmaxBackward(output: y, gradient: dy, scale: scale, mask: mask)
                        let expected = Ref.softmaxBackward(y: Ref.rows(y), dy: Ref.rows(dy), scale: Double(scale), mask: mask)
                        Ref.expectClose(dx, expected, tolerance: 1e-6, "\(what) backward")

                        for i in 0..<rows {
                            for j in Ref.visible(row: i, cols: cols, mask: mask)..<cols {
                                #expect(y[i, j] == 0 && dx[i, j] == 0, "\(what): masked entry (\(i), \(j)) is \(y[i, j]), gradient \(dx[i, j])")
                            }
                        }

                        let dyRows = Ref.rows(dy)
                        seed += 1
                        Ref.expectDirectionalDerivative(
                            { flat in
                                let out = Ref.softmax(Ref.unflatten(flat, cols: cols), scale: Double(scale), mask: mask)
                                return zip(out, dyRows).reduce(0) { $0 + Ref.dot($1.0, $1.1) }
                            },
                            at: Ref.flat(x.contiguous()), gradient: Ref.flat(dx), seed: seed, "\(what) finite differences")
                    }
                }
            }
        }
    }

    @Test func attentionOverHeadsIsOneCall() {
        var random = SeededRandom(seed: 210)
        let (heads, queries, keys) = (3, 5, 9)
        let mask = SoftmaxMask.causal(queryOffset: keys - queries)
        // [queries, heads, keys] seen as [heads, queries, keys]: interleaved heads, no copy.
        let scores = random.normalTensor(shape: [queries, heads, keys], standardDeviation: 2).transposed(0, 1)
        let probabilities = Kernels.softmax(scores, scale: 0.5, mask: mask)
        let dProbabilities = random.normalTensor(shape: [heads, queries, keys])
        let dScores = Kernels.softmaxBackward(output: probabilities, gradient: dProbabilities, scale: 0.5, mask: mask)
        #expect(probabilities.shape == [heads, queries, keys] && dScores.shape == [heads, queries, keys])
        for h in 0..<heads {
            let head = scores.slice(0, h..<h + 1).reshaped([queries, keys])
            let single = Kernels.softmax(head, scale: 0.5, mask: mask)
            #expect(probabilities.slice(0, h..<h + 1).reshaped([queries, keys]) == single, "head \(h)")
            let singleGradient = Kernels.softmaxBackward(
                output: single, gradient: dProbabilities.slice(0, h..<h + 1).reshaped([queries, keys]), scale: 0.5, mask: mask)
            #expect(dScores.slice(0, h..<h + 1).reshaped([queries, keys]) == singleGradient, "head \(h) backward")
        }
        // Rank 4, [batch, heads, queries, keys]: the causal position is the query index in every head.
        let batched = random.normalTensor(shape: [2, heads, queries, keys])
        let batchedProbabilities = Kernels.softmax(batched, mask: .causal())
        for b in 0..<2 {
            for h in 0..<heads {
                let matrix = batched.slice(0, b..<b + 1).slice(1, h..<h + 1).reshaped([queries, keys])
                Ref.expectClose(
                    batchedProbabilities.slice(0, b..<b + 1).slice(1, h..<h + 1).reshaped([queries, keys]),
                    Ref.softmax(Ref.rows(matrix), scale: 1, mask: .causal()), tolerance: 1e-6, "batch \(b) head \(h)")
            }
        }
    }

    @Test func inPlaceMatchesOutOfPlaceAndKeepsSharedCopies() {
        var random = SeededRandom(seed: 220)
        let x = Ref.matrix(&random, 6, 40, padded: true, scale: 2)
        let expected = Kernels.softmax(x, scale: 0.25, mask: .causal(queryOffset: 1))
        var scores = x
        Kernels.softmax(inPlace: &scores, scale: 0.25, mask: .causal(queryOffset: 1))
        #expect(scores == expected)
        #expect(Kernels.softmax(x, scale: 0.25, mask: .causal(queryOffset: 1)) == expected)

        let dy = Ref.matrix(&random, 6, 40, padded: true)
        let dx = Kernels.softmaxBackward(output: expected, gradient: dy, scale: 0.25, mask: .causal(queryOffset: 1))
        var gradient = dy
        Kernels.softmaxBackward(output: expected, gradientInPlace: &gradient, scale: 0.25, mask: .causal(queryOffset: 1))
        #expect(gradient == dx)
        #expect(dy != dx)
    }

    @Test func decodingRowSeesEveryCachedKey() {
        var random = SeededRandom(seed: 230)
        let query = random.normalTensor(shape: [1, 10])
        #expect(Kernels.softmax(query, mask: .causal(queryOffset: 9)) == Kernels.softmax(query, mask: .none))
        let y = Kernels.softmax(query, mask: .causal(queryOffset: 9))
        #expect(abs(y.scalars.reduce(0, +) - 1) < 1e-6)
    }

    @Test func rowsThatSeeNoColumnAreZero() {
        var random = SeededRandom(seed: 240)
        let x = random.normalTensor(shape: [5, 4])
        let y = Kernels.softmax(x, mask: .causal(queryOffset: -3))
        let dx = Kernels.softmaxBackward(output: y, gradient: random.normalTensor(shape: [5, 4]), mask: .causal(queryOffset: -3))
        for i in 0..<3 {
            #expect((0..<4).allSatisfy { y[i, $0] == 0 && dx[i, $0] == 0 }, "row \(i)")
        }
        #expect(y[3, 0] == 1 && y[3, 1] == 0)
        #expect(abs(y[4, 0] + y[4, 1] - 1) < 1e-6 && y[4, 2] == 0)
    }

    @Test func largeScoresDoNotOverflow() {
        let x = Tensor(shape: [2, 3], scalars: [1000, 999, -1000, -5e4, -5e4 + 1, 0])
        let y = Kernels.softmax(x, mask: .none)
        Ref.expectClose(y, Ref.softmax(Ref.rows(x), scale: 1, mask: .none), tolerance: 1e-6, "large scores")
    }
}

// MARK: RMSNorm

@Suite struct RMSNormKernelTests {
    @Test(arguments: awkwardLengths)
    func forwardAndBackwardMatchFloat64(cols: Int) {
        var random = SeededRandom(seed: 300 + UInt64(cols))
        let epsilon: Float = 1e-5
        var seed: UInt64 = 10
        for rows in [1, 4] {
            for padded in [false, true] {
                let what = "rmsNorm \(rows)x\(cols) padded \(padded)"
                let x = Ref.matrix(&random, rows, cols, padded: padded, scale: 2)
                let weight = random.normalTensor(shape: [cols])
                let (y, rstd) = Kernels.rmsNorm(x, weight: weight, epsilon: epsilon)
                let reference = Ref.rmsNorm(Ref.rows(x), weight: Ref.flat(weight), epsilon: Double(epsilon))
                Ref.expectClose(y, reference.y, tolerance: 2e-6, what)
                #expect(rstd.shape == [rows])
                Ref.expectClose(Ref.flat(rstd), reference.rstd, tolerance: 1e-6, "\(what) rstd")

                let dy = Ref.matrix(&random, rows, cols, padded: padded)
                var dw = Tensor(shape: [cols], repeating: 0.5)
                let dx = Kernels.rmsNormBackward(input: x, weight: weight, rstd: rstd, gradient: dy, accumulatingWeightGradient: &dw)
                let expected = Ref.rmsNormBackward(Ref.rows(x), weight: Ref.flat(weight), epsilon: Double(epsilon), dy: Ref.rows(dy))
                Ref.expectClose(dx, expected.dx, tolerance: 2e-6, "\(what) dx")
                Ref.expectClose(Ref.flat(dw).map { $0 - 0.5 }, expected.dw, tolerance: 1e-5, "\(what) dw")
                #expect(Kernels.rmsNormBackward(input: x, weight: weight, rstd: rstd, gradient: dy) == dx)

                // Finite differences over x and the weight together.
                let dyRows = Ref.rows(dy)
                let xCount = rows * cols
                seed += 1
                Ref.expectDirectionalDerivative(
                    { point in
                        let out = Ref.rmsNorm(
                            Ref.unflatten(Array(point[..<xCount]), cols: cols), weight: Array(point[xCount...]),
                            epsilon: Double(epsilon)).y
                        return zip(out, dyRows).reduce(0) { $0 + Ref.dot($1.0, $1.1) }
                    },
                    at: Ref.flat(x.contiguous()) + Ref.flat(weight),
                    gradient: Ref.flat(dx) + Ref.flat(dw).map { $0 - 0.5 }, seed: seed, "\(what) finite differences")
            }
        }
    }

    @Test func weightGradientAccumulatesOverBatches() {
        var random = SeededRandom(seed: 310)
        let weight = random.normalTensor(shape: [16])
        let (x1, x2) = (random.normalTensor(shape: [3, 16]), random.normalTensor(shape: [5, 16]))
        let (dy1, dy2) = (random.normalTensor(shape: [3, 16]), random.normalTensor(shape: [5, 16]))
        let r1 = Kernels.rmsNorm(x1, weight: weight, epsilon: 1e-6).rstd
        let r2 = Kernels.rmsNorm(x2, weight: weight, epsilon: 1e-6).rstd
        var accumulated = Tensor(zeros: [16])
        _ = Kernels.rmsNormBackward(input: x1, weight: weight, rstd: r1, gradient: dy1, accumulatingWeightGradient: &accumulated)
        _ = Kernels.rmsNormBackward(input: x2, weight: weight, rstd: r2, gradient: dy2, accumulatingWeightGradient: &accumulated)
        let d1 = Ref.rmsNormBackward(Ref.rows(x1), weight: Ref.flat(weight), epsilon: 1e-6, dy: Ref.rows(dy1)).dw
        let d2 = Ref.rmsNormBackward(Ref.rows(x2), weight: Ref.flat(weight), epsilon: 1e-6, dy: Ref.rows(dy2)).dw
        Ref.expectClose(Ref.flat(accumulated), zip(d1, d2).map(+), tolerance: 1e-5, "accumulated dw")
    }

    @Test func leadingAxesAreRows() {
        var random = SeededRandom(seed: 320)
        let x = random.normalTensor(shape: [2, 3, 8])
        let weight = random.normalTensor(shape: [8])
        let (y, rstd) = Kernels.rmsNorm(x, weight: weight, epsilon: 1e-5)
        let (y2, rstd2) = Kernels.rmsNorm(x.reshaped([6, 8]), weight: weight, epsilon: 1e-5)
        #expect(y.shape == [2, 3, 8] && rstd.shape == [2, 3])
        #expect(y.reshaped([6, 8]) == y2 && rstd.reshaped([6]) == rstd2)
        // A [3, 2, 8] tensor seen as [2, 3, 8]: batches that do not follow each other.
        let interleaved = random.normalTensor(shape: [3, 2, 8]).transposed(0, 1)
        let dy = random.normalTensor(shape: [2, 3, 8])
        let (yi, ri) = Kernels.rmsNorm(interleaved, weight: weight, epsilon: 1e-5)
        let (yc, rc) = Kernels.rmsNorm(interleaved.contiguous(), weight: weight, epsilon: 1e-5)
        #expect(yi == yc && ri == rc)
        #expect(
            Kernels.rmsNormBackward(input: interleaved, weight: weight, rstd: ri, gradient: dy)
                == Kernels.rmsNormBackward(input: interleaved.contiguous(), weight: weight, rstd: rc, gradient: dy))
    }
}

// MARK: SiLU and SwiGLU

@Suite struct ActivationKernelTests {
    @Test(arguments: awkwardLengths)
    func siluMatchesFloat64(cols: Int) {
        var random = SeededRandom(seed: 400 + UInt64(cols))
        for rows in [1, 3] {
            for padded in [false, true] {
                let what = "silu \(rows)x\(cols) padded \(padded)"
                let x = Ref.matrix(&random, rows, cols, padded: padded, scale: 4)
                let y = Kernels.silu(x)
                Ref.expectClose(y, Ref.rows(x).map { $0.map(Ref.silu) }, tolerance: 1e-6, what)
                let dy = Ref.matrix(&random, rows, cols, padded: padded)
                let dx = Kernels.siluBackward(input: x, gradient: dy)
                let expected = zip(Ref.rows(x), Ref.rows(dy)).map { zip($0, $1).map { Ref.siluDerivative($0) * $1 } }
                Ref.expectClose(dx, expected, tolerance: 1e-6, "\(what) backward")
                let dyFlat = Ref.flat(dy.contiguous())
                Ref.expectDirectionalDerivative(
                    { Ref.dot($0.map(Ref.silu), dyFlat) }, at: Ref.flat(x.contiguous()), gradient: Ref.flat(dx),
                    seed: UInt64(rows * 10 + (padded ? 1 : 0)), "\(what) finite differences")
            }
        }
    }

    @Test(arguments: awkwardLengths)
    func swigluMatchesFloat64(cols: Int) {
        var random = SeededRandom(seed: 500 + UInt64(cols))
        for rows in [1, 3] {
            for fused in [false, true] {
                let what = "swiglu \(rows)x\(cols) fused \(fused)"
                let gate: Tensor, up: Tensor
                if fused {  // both halves of one [rows, 2 * cols] projection: column views with ld = 2 * cols
                    let projection = random.normalTensor(shape: [rows, 2 * cols], standardDeviation: 3)
                    (gate, up) = (projection.slice(1, 0..<cols), projection.slice(1, cols..<2 * cols))
                } else {
                    (gate, up) = (random.normalTensor(shape: [rows, cols], standardDeviation: 3), random.normalTensor(shape: [rows, cols]))
                }
                let h = Kernels.swiglu(gate: gate, up: up)
                let (g, u) = (Ref.rows(gate), Ref.rows(up))
                let expected = zip(g, u).map { zip($0, $1).map { Ref.silu($0) * $1 } }
                Ref.expectClose(h, expected, tolerance: 1e-6, what)

                let dh = Ref.matrix(&random, rows, cols, padded: fused)
                let (dGate, dUp) = Kernels.swigluBackward(gate: gate, up: up, gradient: dh)
                let dhRows = Ref.rows(dh)
                let expectedGate = (0..<rows).map { r in (0..<cols).map { j in dhRows[r][j] * u[r][j] * Ref.siluDerivative(g[r][j]) } }
                let expectedUp = (0..<rows).map { r in (0..<cols).map { j in dhRows[r][j] * Ref.silu(g[r][j]) } }
                Ref.expectClose(dGate, expectedGate, tolerance: 1e-6, "\(what) dgate")
                Ref.expectClose(dUp, expectedUp, tolerance: 1e-6, "\(what) dup")

                let n = rows * cols
                let dhFlat = Ref.flat(dh.contiguous())
                Ref.expectDirectionalDerivative(
                    { point in
                        let out = (0..<n).map { Ref.silu(point[$0]) * point[n + $0] }
                        return Ref.dot(out, dhFlat)
                    },
                    at: Ref.flat(gate.contiguous()) + Ref.flat(up.contiguous()),
                    gradient: Ref.flat(dGate) + Ref.flat(dUp), seed: UInt64(rows * 10 + (fused ? 1 : 0)),
                    "\(what) finite differences")
            }
        }
    }

    @Test func saturatedInputsStayFinite() {
        let x = Tensor(shape: [1, 6], scalars: [-1e4, -100, -20, 20, 100, 1e4])
        let y = Kernels.silu(x)
        let dx = Kernels.siluBackward(input: x, gradient: Tensor(shape: [1, 6], repeating: 1))
        #expect(y.scalars.allSatisfy(\.isFinite) && dx.scalars.allSatisfy(\.isFinite))
        #expect(y[0, 0] == 0 && y[0, 1] == 0 && y[0, 4] == 100 && y[0, 5] == 1e4)
        #expect(dx[0, 0] == 0 && dx[0, 5] == 1)
        Ref.expectClose(y, [x.scalars.map { Ref.silu(Double($0)) }], tolerance: 1e-6, "saturated silu")
        Ref.expectClose(dx, [x.scalars.map { Ref.siluDerivative(Double($0)) }], tolerance: 1e-6, "saturated silu'")
    }

    @Test func anyRankAndInterleavedLayouts() {
        var random = SeededRandom(seed: 510)
        let x = random.normalTensor(shape: [4, 3, 5]).transposed(0, 1)  // [3, 4, 5], batches interleaved
        #expect(Kernels.silu(x) == Kernels.silu(x.contiguous()))
        let vector = random.normalTensor(shape: [9])
        Ref.expectClose(Ref.flat(Kernels.silu(vector)), Ref.flat(vector).map(Ref.silu), tolerance: 1e-6, "rank 1")
    }
}

// MARK: Rotary embedding

@Suite struct RotaryKernelTests {
    @Test func tableFollowsTransformersFloat32Angles() {
        let table = RotaryTable(headDimension: 8, maxPositions: 50, theta: 10_000)
        #expect(table.cos.shape == [50, 4] && table.sin.shape == [50, 4])
        for p in [0, 1, 17, 49] {
            for i in 0..<4 {
                let inverseFrequency = 1 / Float(pow(10_000, Double(Float(2 * i) / 8)))
                let angle = Double(Float(p) * inverseFrequency)
                #expect(table.cos[p, i] == Float(cos(angle)) && table.sin[p, i] == Float(sin(angle)), "position \(p) pair \(i)")
            }
        }
    }

    @Test(arguments: [2, 8, 64])
    func matchesHuggingFaceFormula(headDimension: Int) {
        var random = SeededRandom(seed: 600 + UInt64(headDimension))
        let theta = 500_000.0
        let table = RotaryTable(headDimension: headDimension, maxPositions: 4096, theta: theta)
        for padded in [false, true] {
            let (tokens, heads) = (5, 3)
            let what = "rotary D \(headDimension) padded \(padded)"
            let x = Ref.matrix(&random, tokens, heads * headDimension, padded: padded)
            let positions: [Int32] = [0, 1, 7, 4095, Int32(random.next() % 4096)]
            var rotated = x
            Kernels.rotary(&rotated, positions: positions, table: table)
            let expected = Ref.rotary(Ref.rows(x), positions: positions, headDimension: headDimension, theta: theta)
            Ref.expectClose(rotated, expected, tolerance: 2e-6, what)

            // Backward: the transposed rotation, i.e. the rotation by -position.
            let dy = Ref.matrix(&random, tokens, heads * headDimension, padded: padded)
            var dx = dy
            Kernels.rotaryBackward(&dx, positions: positions, table: table)
            let transposed = Ref.rotary(Ref.rows(dy), positions: positions.map { -$0 }, headDimension: headDimension, theta: theta)
            Ref.expectClose(dx, transposed, tolerance: 2e-6, "\(what) backward")
            var roundTrip = rotated
            Kernels.rotaryBackward(&roundTrip, positions: positions, table: table)
            Ref.expectClose(roundTrip, Ref.rows(x), tolerance: 2e-6, "\(what) backward of forward")

            let dyRows = Ref.rows(dy)
            Ref.expectDirectionalDerivative(
                { point in
                    let out = Ref.rotary(
                        Ref.unflatten(point, cols: heads * headDimension), positions: positions,
                        headDimension: headDimension, theta: theta)
                    return zip(out, dyRows).reduce(0) { $0 + Ref.dot($1.0, $1.1) }
                },
                at: Ref.flat(x.contiguous()), gradient: Ref.flat(dx), seed: padded ? 1 : 2, "\(what) finite differences")
        }
    }

    @Test func layoutsAgree() {
        var random = SeededRandom(seed: 610)
        let table = RotaryTable(headDimension: 4, maxPositions: 16)
        let positions: [Int32] = [3, 9, 15]
        // A fused QKV projection [tokens, (2 + 1 + 1) * 4]: rotate the query columns of a view.
        let fused = random.normalTensor(shape: [3, 16])
        var queries = fused.slice(1, 0..<8)
        var dense = queries.contiguous()
        Kernels.rotary(&queries, positions: positions, table: table)
        Kernels.rotary(&dense, positions: positions, table: table)
        #expect(queries == dense)
        #expect(fused.slice(1, 0..<8) != queries, "the fused matrix keeps its values (copy on write)")
        // [tokens, heads, headDim] is the same as [tokens, heads * headDim].
        var rank3 = fused.slice(1, 0..<8).contiguous().reshaped([3, 2, 4])
        Kernels.rotary(&rank3, positions: positions, table: table)
        #expect(rank3.reshaped([3, 8]) == dense)
        // A key with fewer heads (grouped-query attention) takes the same table.
        var keys = fused.slice(1, 8..<12)
        Kernels.rotary(&keys, positions: positions, table: table)
        Ref.expectClose(
            keys, Ref.rotary(Ref.rows(fused.slice(1, 8..<12)), positions: positions, headDimension: 4, theta: 10_000),
            tolerance: 2e-6, "key head")
    }

    @Test func scaledInverseFrequencies() {
        let inverse: [Float] = [1.0, 0.25, 0.01]
        let table = RotaryTable(inverseFrequencies: inverse, maxPositions: 8, attentionScaling: 1.5)
        #expect(table.headDimension == 6)
        #expect(table.cos[5, 1] == Float(cos(Double(5 * Float(0.25)))) * 1.5)
        #expect(table.sin[7, 2] == Float(sin(Double(7 * Float(0.01)))) * 1.5)
    }
}

// MARK: Cross-entropy

@Suite struct CrossEntropyKernelTests {
    /// Targets in 0..<vocab with every third row ignored (-100).
    static func targets(_ random: inout SeededRandom, rows: Int, vocab: Int) -> [Int32] {
        (0..<rows).map { $0 % 3 == 1 ? -100 : Int32(random.next() % UInt64(vocab)) }
    }

    @Test(arguments: awkwardLengths)
    func forwardAndBackwardMatchFloat64(vocab: Int) throws {
        var random = SeededRandom(seed: 700 + UInt64(vocab))
        for rows in [1, 5] {
            for padded in [false, true] {
                let what = "cross-entropy \(rows)x\(vocab) padded \(padded)"
                let logits = Ref.matrix(&random, rows, vocab, padded: padded, scale: 3)
                let targets = Self.targets(&random, rows: rows, vocab: vocab)
                let result = try Kernels.crossEntropy(logits: logits, targets: targets)
                let reference = Ref.crossEntropy(Ref.rows(logits), targets: targets, ignoreIndex: -100)
                Ref.expectClose(Ref.flat(result.losses), reference.loss, tolerance: 2e-6, "\(what) loss")
                Ref.expectClose(Ref.flat(result.logsumexp), reference.logsumexp, tolerance: 2e-6, "\(what) logsumexp")
                let kept = targets.indices.filter { targets[$0] != -100 }
                #expect(result.count == kept.count)
                let mean = kept.map { reference.loss[$0] }.reduce(0, +) / Double(kept.count)
                #expect(abs(Double(result.meanLoss) - mean) <= 2e-6 * (1 + abs(mean)), "\(what) mean")

                let g = (0..<rows).map { _ in random.uniform(in: 0.1..<2) }
                let rowGradients = Tensor(shape: [rows], scalars: g)
                let dLogits = try Kernels.crossEntropyBackward(
                    logits: logits, targets: targets, logsumexp: result.logsumexp, rowGradients: rowGradients)
                let expected = Ref.crossEntropyBackward(
                    Ref.rows(logits), targets: targets, rowGradients: g.map(Double.init), ignoreIndex: -100)
                Ref.expectClose(dLogits, expected, tolerance: 1e-6, "\(what) backward")
                for r in 0..<rows where targets[r] == -100 {
                    #expect((0..<vocab).allSatisfy { dLogits[r, $0] == 0 }, "\(what): ignored row \(r) has a gradient")
                }

                let logitRows = Ref.rows(logits)
                Ref.expectDirectionalDerivative(
                    { point in
                        let loss = Ref.crossEntropy(Ref.unflatten(point, cols: vocab), targets: targets, ignoreIndex: -100).loss
                        return Ref.dot(loss, g.map(Double.init))
                    },
                    at: logitRows.flatMap { $0 }, gradient: Ref.flat(dLogits), seed: UInt64(rows) + (padded ? 10 : 0),
                    "\(what) finite differences")

                // One gradient for every row, and in place, give the same values.
                let mean1 = try Kernels.crossEntropyBackward(
                    logits: logits, targets: targets, logsumexp: result.logsumexp, rowGradient: 0.25)
                let perRow = try Kernels.crossEntropyBackward(
                    logits: logits, targets: targets, logsumexp: result.logsumexp,
                    rowGradients: Tensor(shape: [rows], repeating: 0.25))
                #expect(mean1 == perRow)
                var inPlace = logits
                try Kernels.crossEntropyBackward(
                    logitsInPlace: &inPlace, targets: targets, logsumexp: result.logsumexp, rowGradients: rowGradients)
                #expect(inPlace == dLogits)
            }
        }
    }

    @Test func allIgnoredRowsGiveZeroCountAndZeroMean() throws {
        var random = SeededRandom(seed: 710)
        let logits = random.normalTensor(shape: [4, 11])
        let targets = [Int32](repeating: -100, count: 4)
        let result = try Kernels.crossEntropy(logits: logits, targets: targets)
        #expect(result.count == 0 && result.meanLoss == 0)
        #expect(result.losses.scalars.allSatisfy { $0 == 0 } && result.logsumexp.scalars.allSatisfy { $0 == 0 })
        let d = try Kernels.crossEntropyBackward(logits: logits, targets: targets, logsumexp: result.logsumexp, rowGradient: 1)
        #expect(d.scalars.allSatisfy { $0 == 0 })
    }

    @Test func badTargetThrowsNamingRowAndValue() throws {
        var random = SeededRandom(seed: 720)
        let logits = random.normalTensor(shape: [4, 5])
        let lse = Tensor(zeros: [4])
        for (targets, row, value) in [([1, -100, 7, 3], 2, 7), ([-1, 0, 0, 0], 0, -1), ([0, 0, 0, 5], 3, 5)] as [([Int32], Int, Int32)] {
            let error = CrossEntropyError.targetOutOfRange(row: row, target: value, vocabularySize: 5, ignoreIndex: -100)
            #expect(throws: error) { try Kernels.crossEntropy(logits: logits, targets: targets) }
            #expect(throws: error) {
                try Kernels.crossEntropyBackward(logits: logits, targets: targets, logsumexp: lse, rowGradient: 1)
            }
            var inPlace = logits
            #expect(throws: error) {
                try Kernels.crossEntropyBackward(logitsInPlace: &inPlace, targets: targets, logsumexp: lse, rowGradient: 1)
            }
            #expect(inPlace == logits, "a bad target leaves the logits unwritten")
            #expect(error.description.contains("row \(row)") && error.description.contains("target \(value)"))
        }
        // Another ignore index makes -1 ignorable and -100 an error.
        let custom = try Kernels.crossEntropy(logits: logits, targets: [-1, 2, -1, 4], ignoreIndex: -1)
        #expect(custom.count == 2 && custom.losses[0] == 0)
        #expect(throws: CrossEntropyError.targetOutOfRange(row: 0, target: -100, vocabularySize: 5, ignoreIndex: -1)) {
            try Kernels.crossEntropy(logits: logits, targets: [-100, 2, -1, 4], ignoreIndex: -1)
        }
    }

    @Test func largeLogitsAndLeadingAxes() throws {
        let logits = Tensor(shape: [2, 3], scalars: [1e4, 1e4 - 1, -1e4, -3e4, -3e4 + 2, -3e4 + 1])
        let result = try Kernels.crossEntropy(logits: logits, targets: [1, 0])
        let reference = Ref.crossEntropy(Ref.rows(logits), targets: [1, 0], ignoreIndex: -100)
        Ref.expectClose(Ref.flat(result.losses), reference.loss, tolerance: 1e-6, "large logits")

        var random = SeededRandom(seed: 730)
        let batched = random.normalTensor(shape: [2, 3, 6])
        let targets: [Int32] = [0, 5, -100, 2, 3, 1]
        let r3 = try Kernels.crossEntropy(logits: batched, targets: targets)
        let r2 = try Kernels.crossEntropy(logits: batched.reshaped([6, 6]), targets: targets)
        #expect(r3.losses.shape == [2, 3] && r3.losses.reshaped([6]) == r2.losses && r3.meanLoss == r2.meanLoss)
    }
}

// MARK: Layout

@Suite struct LayoutKernelTests {
    @Test func rowLayoutsOfViews() {
        let dense = Tensor(zeros: [2, 3, 4])
        #expect(KernelRowLayout(dense) == KernelRowLayout(batches: 2, rows: 3, cols: 4, batchStride: 12, rowStride: 4))
        #expect(KernelRowLayout(dense)!.mergingBatches == KernelRowLayout(batches: 1, rows: 6, cols: 4, batchStride: 24, rowStride: 4))
        let interleaved = Tensor(zeros: [3, 2, 4]).transposed(0, 1)  // [2, 3, 4] with strides [4, 8, 1]
        let layout = KernelRowLayout(interleaved)!
        #expect(layout == KernelRowLayout(batches: 2, rows: 3, cols: 4, batchStride: 4, rowStride: 8) && layout.isNonOverlapping)
        #expect(KernelRowLayout(Tensor(zeros: [4, 3]).transposed()) == nil, "columns are not dense")
        let broadcastRows = Tensor(zeros: [1, 4]).viewing(shape: [3, 4], strides: [0, 1])
        #expect(KernelRowLayout(broadcastRows)?.isNonOverlapping == false)
        #expect(Kernels.silu(broadcastRows) == Kernels.silu(broadcastRows.contiguous()), "repeated rows may be read")
    }
}
