import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import TensorCore

/// Naive Float64 matrix product of two rank-2 views.
private func referenceProduct(_ a: Tensor, _ b: Tensor) -> [[Double]] {
    let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
    return (0..<m).map { i in
        (0..<n).map { j in (0..<k).reduce(0.0) { $0 + Double(a[i, $1]) * Double(b[$1, j]) } }
    }
}

/// |x - y| <= tolerance * (1 + |y|) for every element.
private func expectClose(_ actual: Tensor, _ expected: [[Double]], tolerance: Double = 1e-5,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    var worst = 0.0
    for i in expected.indices {
        for j in expected[i].indices {
            worst = max(worst, abs(Double(actual[i, j]) - expected[i][j]) / (1 + abs(expected[i][j])))
        }
    }
    #expect(worst <= tolerance, "worst relative error \(worst)", sourceLocation: sourceLocation)
}

/// A matrix of `shape` stored transposed, or inside a wider buffer (leading dimension > columns), or dense.
private func layout(_ random: inout SeededRandom, _ shape: [Int], transposed: Bool, padded: Bool) -> Tensor {
    let stored = transposed ? [shape[1], shape[0]] : shape
    var matrix = random.uniformTensor(shape: [stored[0], stored[1] + (padded ? 3 : 0)], in: -1..<1)
    matrix = matrix.slice(1, 0..<stored[1])
    return transposed ? matrix.transposed() : matrix
}

@Suite struct GEMMTests {
    static let sizes: [(Int, Int, Int)] = [(1, 1, 1), (7, 33, 1), (1, 7, 33), (33, 7, 257), (65, 129, 31)]

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func everyTransposeCombinationMatchesFloat64(transposeA: Bool, transposeB: Bool) {
        var random = SeededRandom(seed: 11)
        for (m, k, n) in Self.sizes {
            for padded in [false, true] {
                let a = layout(&random, [m, k], transposed: transposeA, padded: padded)
                let b = layout(&random, [k, n], transposed: transposeB, padded: padded)
                var c = random.uniformTensor(shape: [m, n], in: -1..<1)
                let before = c
                BLAS.gemm(a, b, into: &c, alpha: 0.75, beta: -0.5)
                let product = referenceProduct(a, b)
                let expected = product.indices.map { i in
                    product[i].indices.map { j in 0.75 * product[i][j] - 0.5 * Double(before[i, j]) }
                }
                expectClose(c, expected)
            }
        }
    }

    @Test func explicitTransposeFlagsAgreeWithViews() {
        var random = SeededRandom(seed: 12)
        let a = random.uniformTensor(shape: [9, 5], in: -1..<1)
        let b = random.uniformTensor(shape: [7, 9], in: -1..<1)
        let viaFlags = BLAS.matmul(a, transposeA: true, b, transposeB: true)
        expectClose(viaFlags, referenceProduct(a.transposed(), b.transposed()))
    }

    @Test func writesIntoTransposedAndStridedOutputs() {
        var random = SeededRandom(seed: 13)
        let a = random.uniformTensor(shape: [6, 4], in: -1..<1)
        let b = random.uniformTensor(shape: [4, 5], in: -1..<1)
        let expected = referenceProduct(a, b)

        var columnMajor = Tensor(zeros: [5, 6]).transposed()
        let columnStorage = ObjectIdentifier(columnMajor.storage)
        BLAS.gemm(a, b, into: &columnMajor)
        expectClose(columnMajor, expected)
        #expect(ObjectIdentifier(columnMajor.storage) == columnStorage, "written in place as Cᵀ = Bᵀ Aᵀ")

        // A block of a wider matrix: only the block changes.
        var wide = Tensor(shape: [6, 8], repeating: 9)
        var block = wide.slice(1, 2..<7)
        wide = Tensor(zeros: [1])  // drop the other reference so the block's storage is unique
        BLAS.gemm(a, b, into: &block)
        expectClose(block, expected)
        #expect(block.strides == [8, 1], "a uniquely held view is written in place")
    }

    @Test func outputSharingStorageWithAnInputIsCopiedFirst() {
        var random = SeededRandom(seed: 14)
        let a = random.uniformTensor(shape: [4, 4], in: -1..<1)
        var c = a
        BLAS.gemm(a, a, into: &c, alpha: 1, beta: 1)
        let product = referenceProduct(a, a)
        expectClose(c, product.indices.map { i in product[i].indices.map { product[i][$0] + Double(a[i, $0]) } })
        #expect(a != c)
    }

    @Test func emptyInnerDimensionScalesC() {
        var c = Tensor(shape: [2, 3], repeating: 4)
        BLAS.gemm(Tensor(zeros: [2, 0]), Tensor(zeros: [0, 3]), into: &c, beta: 0.5)
        #expect(c.scalars == [Float](repeating: 2, count: 6))
        c[0, 0] = .nan
        BLAS.gemm(Tensor(zeros: [2, 0]), Tensor(zeros: [0, 3]), into: &c, beta: 0)
        #expect(c.scalars == [Float](repeating: 0, count: 6))
    }

    /// Grouped-query attention: 4 query heads share 2 key heads through a zero batch stride.
    @Test func batchedGEMMBroadcastsSharedKeyHeads() {
        var random = SeededRandom(seed: 15)
        let (kvHeads, group, tokens, headDim) = (2, 2, 7, 5)
        let heads = kvHeads * group
        let q = random.uniformTensor(shape: [tokens, heads * headDim], in: -1..<1)
        let k = random.uniformTensor(shape: [tokens, kvHeads * headDim], in: -1..<1)
        let qHeads = q.viewing(
            shape: [kvHeads, group, tokens, headDim], strides: [group * headDim, headDim, heads * headDim, 1])
        let kHeadsT = k.viewing(
            shape: [kvHeads, group, headDim, tokens], strides: [headDim, 0, 1, kvHeads * headDim])
        var scores = Tensor(zeros: [kvHeads, group, tokens, tokens])
        BLAS.batchedGEMM(qHeads, kHeadsT, into: &scores, alpha: 0.5)
        for h in 0..<heads {
            let kv = h / group
            let qh = q.slice(1, h * headDim..<(h + 1) * headDim)
            let kh = k.slice(1, kv * headDim..<(kv + 1) * headDim)
            let expected = referenceProduct(qh, kh.transposed()).map { $0.map { 0.5 * $0 } }
            expectClose(scores.reshaped([heads, tokens, tokens]).matrix(at: [h]), expected)
        }
    }
}

@Suite struct LevelOneAndTwoTests {
    @Test(arguments: [false, true])
    func gemvMatchesFloat64(transposed: Bool) {
        var random = SeededRandom(seed: 21)
        for (m, n) in [(1, 1), (7, 33), (33, 7), (257, 3)] {
            let a = layout(&random, [m, n], transposed: transposed, padded: true)
            let x = random.uniformTensor(shape: [n], in: -1..<1)
            var y = random.uniformTensor(shape: [m], in: -1..<1)
            let before = y
            BLAS.gemv(a, x, into: &y, alpha: 2, beta: 0.25)
            let product = referenceProduct(a, x.reshaped([n, 1]))
            expectClose(y.reshaped([m, 1]), product.indices.map { [2 * product[$0][0] + 0.25 * Double(before[$0])] })
        }
    }

    @Test func axpyDotNormScaleMatchFloat64() {
        var random = SeededRandom(seed: 22)
        for n in [1, 7, 33, 257] {
            let x = random.uniformTensor(shape: [n], in: -1..<1)
            var y = random.uniformTensor(shape: [n], in: -1..<1)
            let (xs, ys) = (x.scalars.map(Double.init), y.scalars.map(Double.init))
            let dot = zip(xs, ys).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(Double(BLAS.dot(x, y)) - dot) <= 1e-5 * (1 + abs(dot)))
            let norm = xs.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(Double(BLAS.norm(x)) - norm) <= 1e-5 * norm)
            BLAS.axpy(-1.5, x, &y)
            expectClose(y.reshaped([n, 1]), ys.indices.map { [ys[$0] - 1.5 * xs[$0]] })
            BLAS.scale(&y, by: 3)
            expectClose(y.reshaped([n, 1]), ys.indices.map { [3 * (ys[$0] - 1.5 * xs[$0])] })
        }
    }

    @Test func stridedVectorsAndPaddedMatrices() {
        var random = SeededRandom(seed: 23)
        let matrix = random.uniformTensor(shape: [5, 6], in: -1..<1)
        let column = matrix.slice(1, 2..<3).reshaped([5])
        let strided = matrix.viewing(shape: [5], strides: [6], offset: 2)
        #expect(BLAS.dot(strided, strided) == BLAS.dot(column, column))
        var block = matrix.slice(1, 0..<4)
        BLAS.scale(&block, by: 2)
        #expect(block.scalars == matrix.slice(1, 0..<4).scalars.map { $0 * 2 })
    }
}

@Suite struct LAPACKTests {
    /// A symmetric positive definite matrix: M Mᵀ + n I.
    static func spd(_ n: Int, seed: UInt64) -> Tensor {
        var random = SeededRandom(seed: seed)
        let m = random.uniformTensor(shape: [n, n], in: -1..<1)
        var a = BLAS.matmul(m, m, transposeB: true)
        for i in 0..<n { a[i, i] += Float(n) }
        return a
    }

    @Test(arguments: [1, 7, 33])
    func choleskyFactorsAndSolves(n: Int) throws {
        let a = Self.spd(n, seed: UInt64(n))
        let factor = try LAPACK.choleskyFactor(a)
        for i in 0..<n { for j in (i + 1)..<max(n, i + 1) { #expect(factor[i, j] == 0) } }
        expectClose(BLAS.matmul(factor, factor, transposeB: true), (0..<n).map { i in (0..<n).map { Double(a[i, $0]) } }, tolerance: 1e-4)

        var random = SeededRandom(seed: 99)
        let b = random.uniformTensor(shape: [n, 3], in: -1..<1)
        let x = try LAPACK.choleskySolve(factor: factor, b)
        expectClose(BLAS.matmul(a, x), (0..<n).map { i in (0..<3).map { Double(b[i, $0]) } }, tolerance: 1e-4)
        let vector = try LAPACK.choleskySolve(factor: factor, b.slice(1, 0..<1).reshaped([n]))
        #expect(vector.shape == [n])
        #expect(zip(vector.scalars, x.slice(1, 0..<1).scalars).allSatisfy { abs($0 - $1) <= 1e-5 * (1 + abs($1)) })
    }

    @Test func notPositiveDefiniteNamesTheMinor() {
        var a = Self.spd(5, seed: 3)
        a[2, 2] = -100
        #expect(throws: LAPACKError.notPositiveDefinite(routine: "spotrf", leadingMinor: 3)) {
            try LAPACK.choleskyFactor(a)
        }
    }

    @Test func nanInputIsAnIllegalArgument() {
        var a = Self.spd(4, seed: 4)
        a[1, 0] = .nan
        #expect(throws: LAPACKError.illegalArgument(routine: "spotrf", position: 4)) {
            try LAPACK.choleskyFactor(a)
        }
        let error = LAPACKError.illegalArgument(routine: "spotrf", position: 4)
        #expect(error.description.contains("argument 4"))
    }

    @Test(arguments: [1, 6, 17])
    func symmetricEigenDecomposes(n: Int) throws {
        let a = Self.spd(n, seed: 40 + UInt64(n))
        let (values, vectors) = try LAPACK.symmetricEigen(a)
        #expect(zip(values.scalars, values.scalars.dropFirst()).allSatisfy { $0 <= $1 }, "ascending")
        // A V = V diag(w)
        let av = BLAS.matmul(a, vectors)
        expectClose(av, (0..<n).map { i in (0..<n).map { Double(vectors[i, $0]) * Double(values[$0]) } }, tolerance: 1e-4)
        // Vᵀ V = I
        expectClose(BLAS.matmul(vectors, transposeA: true, vectors), (0..<n).map { i in (0..<n).map { i == $0 ? 1 : 0 } }, tolerance: 1e-5)
    }
}

@Suite struct BLASRuntimeTests {
    @Test func loadsAndReportsItsKernels() throws {
        try BLASRuntime.load()
        #expect(!BLASRuntime.coreName.isEmpty)
        #expect(BLASRuntime.configuration.contains("OpenBLAS"))
        #expect(BLASRuntime.threads >= 1)
    }

    /// On an AVX-512 CPU the AVX-512 kernels are chosen unless Tributary's explicit setting says otherwise.
    @Test(.enabled(if: CPUFeatures.current.isSuperset(of: CPUFeatures.avx512Kernels)))
    func avx512CPUGetsAVX512Kernels() throws {
        try BLASRuntime.load()
        let explicitSetting = getenv("TRIBUTARY_BLAS_CORETYPE").map { String(cString: $0) } ?? ""
        if explicitSetting.isEmpty {
            #expect(BLASRuntime.isAVX512Core(BLASRuntime.coreName), "got \(BLASRuntime.coreName)")
        } else {
            #expect(BLASRuntime.coreSource == .user)
        }
    }

    @Test func threadSharesKeepPoolsTimesThreadsWithinCores() {
        for cores in 1...16 {
            for pools in 1...8 {
                let threads = BLASRuntime.threadsPerPool(availableCores: cores, computePools: pools)
                #expect(threads >= 1)
                #expect(pools * threads <= max(cores, pools))
            }
        }
        #expect(BLASRuntime.availableCores >= 1)
    }
}
