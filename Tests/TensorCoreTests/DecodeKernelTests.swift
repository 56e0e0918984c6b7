import Foundation
import Testing
@testable import TensorCore

private typealias Ref = KernelReference

@Suite struct SkinnyProductTests {
    /// (in, out) pairs over every path: a lone column, ragged tails of the 16-column blocks and of
    /// the 4-row blocks of W, and matrices large enough to be split across threads.
    static let sizes = [(1, 7), (7, 1), (33, 33), (257, 688), (688, 257), (7, 257), (257, 1)]

    /// Float64 alpha * x Wᵀ + beta * y.
    static func reference(_ x: Tensor, _ w: Tensor, _ y: Tensor, alpha: Double, beta: Double) -> [[Double]] {
        let (xs, ws, ys) = (Ref.rows(x), Ref.rows(w), Ref.rows(y))
        return xs.indices.map { i in ws.indices.map { r in alpha * Ref.dot(xs[i], ws[r]) + beta * ys[i][r] } }
    }

    @Test(arguments: 1...9)
    func matchesFloat64Reference(rows m: Int) {
        var random = SeededRandom(seed: UInt64(40 + m))
        for (inputs, outputs) in Self.sizes {
            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-1.5, 0.25)] {
                // Strided views: x and y are column ranges of wider matrices, W has padded rows.
                let x = Ref.matrix(&random, m, inputs, padded: m % 2 == 0)
                let w = Ref.matrix(&random, outputs, inputs, padded: m % 3 == 0)
                var y = Ref.matrix(&random, m, outputs, padded: true)
                let expected = Self.reference(x, w, y, alpha: Double(alpha), beta: Double(beta))
                Kernels.skinnyProduct(x, transposedWeight: w, into: &y, alpha: alpha, beta: beta, threads: 1)
                Ref.expectClose(y, expected, tolerance: 1e-5, "m \(m), in \(inputs), out \(outputs), alpha \(alpha), beta \(beta)")
            }
        }
    }

    @Test func betaZeroIgnoresWhatYHolds() {
        var random = SeededRandom(seed: 7)
        let x = random.normalTensor(shape: [3, 33]), w = random.normalTensor(shape: [9, 33])
        var y = Tensor(shape: [3, 9], repeating: .nan)
        Kernels.skinnyProduct(x, transposedWeight: w, into: &y, threads: 1)
        Ref.expectClose(y, Self.reference(x, w, Tensor(zeros: [3, 9]), alpha: 1, beta: 0), tolerance: 1e-5, "beta 0 over NaN")
    }

    /// Every output element is computed the same way whichever thread computes it.
    @Test(arguments: [1, 2, 5, 8])
    func threadCountsGiveBitIdenticalResults(rows m: Int) {
        var random = SeededRandom(seed: UInt64(90 + m))
        for (inputs, outputs) in [(257, 688), (688, 257), (256, 512), (33, 4099)] {
            let x = random.normalTensor(shape: [m, inputs]), w = random.normalTensor(shape: [outputs, inputs])
            let start = random.normalTensor(shape: [m, outputs])
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                var y = start
                Kernels.skinnyProduct(x, transposedWeight: w, into: &y, alpha: 0.75, beta: 0.5, threads: threads)
                results.append(y.scalars)
            }
            #expect(results[1] == results[0], "2 threads, m \(m), in \(inputs), out \(outputs)")
            #expect(results[2] == results[0], "3 threads, m \(m), in \(inputs), out \(outputs)")
        }
    }

    /// W as the mapped file leaves it: starting `offset` floats past a 64-byte line (0 to 15), rows
    /// `stride` floats apart. Stored in a flat buffer (64-byte aligned) with room for the offset.
    static func weight(_ random: inout SeededRandom, rows: Int, columns: Int, stride: Int, offset: Int) -> Tensor {
        let flat = random.normalTensor(shape: [offset + rows * stride])
        return flat.slice(0, offset..<(offset + rows * stride)).reshaped([rows, stride]).slice(1, 0..<columns)
    }

    /// Every misalignment of W, with rows sharing it (stride a multiple of 16) and not (odd strides), on
    /// sizes shorter and longer than one 16-column block.
    @Test(arguments: 0..<16)
    func everyMisalignmentMatchesFloat64Reference(offset: Int) {
        var random = SeededRandom(seed: UInt64(300 + offset))
        let shapes = [(1, 5), (3, 9), (15, 4), (16, 7), (17, 33), (31, 6), (47, 13), (257, 33)]
        for m in [1, 3, 5] {
            for (inputs, outputs) in shapes {
                for stride in [(inputs + 15) / 16 * 16, (inputs + 15) / 16 * 16 + 16, inputs + 1] {
                    let w = Self.weight(&random, rows: outputs, columns: inputs, stride: stride, offset: offset)
                    #expect(w.withUnsafePointer { Int(bitPattern: $0) % 64 } == offset * 4)
                    let x = Ref.matrix(&random, m, inputs, padded: m == 3)
                    var y = Ref.matrix(&random, m, outputs, padded: true)
                    let expected = Self.reference(x, w, y, alpha: 0.5, beta: 1)
                    Kernels.skinnyProduct(x, transposedWeight: w, into: &y, alpha: 0.5, beta: 1, threads: 1)
                    Ref.expectClose(
                        y, expected, tolerance: 1e-5,
                        "offset \(offset), m \(m), in \(inputs), out \(outputs), stride \(stride)")
                }
            }
        }
    }

    /// The same W at any address gives the same bits: a matrix used in place from a file and its copy
    /// elsewhere agree, so a run resumed from a checkpoint file repeats the uninterrupted run exactly.
    @Test func resultsDoNotDependOnWhereTheWeightsLie() {
        var random = SeededRandom(seed: 450)
        let (inputs, outputs) = (257, 40)
        let stride = (inputs + 15) / 16 * 16
        let values = random.normalTensor(shape: [outputs, inputs])
        let x = random.normalTensor(shape: [3, inputs])
        var results: [[Float]] = []
        for offset in 0..<16 {
            var placed = Self.weight(&random, rows: outputs, columns: inputs, stride: stride, offset: offset)
            placed.replaceBlock(row: 0, column: 0, with: values)
            #expect(placed.withUnsafePointer { Int(bitPattern: $0) % 64 } == offset * 4)
            var y = Tensor(zeros: [3, outputs])
            Kernels.skinnyProduct(x, transposedWeight: placed, into: &y, threads: 1)
            results.append(y.scalars)
        }
        for offset in 1..<16 { #expect(results[offset] == results[0], "offset \(offset)") }
    }

    /// At each misalignment the order of operations is fixed: thread counts agree bit for bit.
    @Test(arguments: [1, 5, 11, 15])
    func misalignedWeightsGiveBitIdenticalResultsOnAnyThreadCount(offset: Int) {
        var random = SeededRandom(seed: UInt64(400 + offset))
        for (inputs, outputs) in [(257, 688), (576, 1536)] {
            let w = Self.weight(&random, rows: outputs, columns: inputs, stride: (inputs + 15) / 16 * 16, offset: offset)
            let x = random.normalTensor(shape: [2, inputs])
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                var y = Tensor(zeros: [2, outputs])
                Kernels.skinnyProduct(x, transposedWeight: w, into: &y, threads: threads)
                results.append(y.scalars)
            }
            #expect(results[1] == results[0] && results[2] == results[0], "offset \(offset), in \(inputs), out \(outputs)")
        }
    }

    /// Callers on several threads at once share the worker pool (or work alone) and get the same results.
    @Test func concurrentCallersGetTheSingleThreadedResult() async {
        var random = SeededRandom(seed: 12)
        let w = random.normalTensor(shape: [688, 256])
        let inputs = (0..<6).map { _ in random.normalTensor(shape: [2, 256]) }
        let expected = inputs.map { x in
            var y = Tensor(zeros: [2, 688])
            Kernels.skinnyProduct(x, transposedWeight: w, into: &y, threads: 1)
            return y.scalars
        }
        let results = await withTaskGroup(of: (Int, [Float]).self) { group in
            for (index, x) in inputs.enumerated() {
                group.addTask {
                    var y = Tensor(zeros: [2, 688])
                    for _ in 0..<50 { Kernels.skinnyProduct(x, transposedWeight: w, into: &y, threads: 2) }
                    return (index, y.scalars)
                }
            }
            return await group.reduce(into: [Int: [Float]]()) { $0[$1.0] = $1.1 }
        }
        for index in inputs.indices { #expect(results[index] == expected[index], "caller \(index)") }
    }
}

@Suite struct CacheLineAlignmentTests {
    @Test func unalignedOrStridedTensorsAreCopiedAlignedDenseOnesAreKept() {
        var random = SeededRandom(seed: 3)
        let stored = random.normalTensor(shape: [4, 33])
        let aligned = stored.cacheLineAligned()
        #expect(aligned.storage === stored.storage)
        for view in [stored.reshaped([132]).slice(0, 2..<130), stored.slice(1, 0..<32)] {
            let copy = view.cacheLineAligned()
            #expect(copy.storage !== stored.storage && copy.isContiguous && copy == view)
            #expect(copy.withUnsafePointer { UInt(bitPattern: $0) % 64 } == 0)
        }
    }
}
