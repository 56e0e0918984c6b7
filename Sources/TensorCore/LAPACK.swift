import CBLASShim

/// A LAPACK routine's failure, decoded from its `info` result.
public enum LAPACKError: Error, Equatable, CustomStringConvertible {
    /// `info > 0` from a Cholesky routine: the leading minor of this order is not positive definite.
    case notPositiveDefinite(routine: String, leadingMinor: Int)
    /// `info = -i`: argument `i` was illegal (LAPACKE also reports NaN in a matrix this way).
    case illegalArgument(routine: String, position: Int)
    /// `info > 0` from an eigensolver: this many off-diagonal elements did not converge.
    case didNotConverge(routine: String, info: Int)
    /// LAPACKE could not allocate its workspace (info -1010 or -1011).
    case outOfMemory(routine: String)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let routine, let minor):
            return "\(routine): matrix is not positive definite (leading minor of order \(minor))"
        case .illegalArgument(let routine, let position):
            return "\(routine): argument \(position) is illegal or holds NaN"
        case .didNotConverge(let routine, let info):
            return "\(routine): failed to converge (info \(info))"
        case .outOfMemory(let routine):
            return "\(routine): could not allocate LAPACK workspace"
        }
    }

    static func check(_ info: Int32, routine: String, positive: (Int) -> LAPACKError) throws(LAPACKError) {
        switch info {
        case 0: return
        case -1011, -1010: throw .outOfMemory(routine: routine)
        case ..<0: throw .illegalArgument(routine: routine, position: Int(-info))
        default: throw positive(Int(info))
        }
    }
}

/// Typed wrappers over the LAPACKE routines of the shim, on row-major matrices.
public enum LAPACK {
    /// The Cholesky factor L (A = L Lᵀ) of a symmetric positive definite matrix, through `LAPACKE_spotrf`.
    /// Reads the lower triangle of `a`; the result's upper triangle is zero.
    public static func choleskyFactor(_ a: Tensor) throws(LAPACKError) -> Tensor {
        let n = squareOrder(a, routine: "spotrf")
        var factor = a.hasDenseRows ? a : a.contiguous()
        factor.makeUniqueAndWritable()
        let lda = BLAS.checkedInt32(factor.strides[0], "lda")
        let info = factor.withUnsafeMutablePointer { tb_spotrf(Int8(UInt8(ascii: "L")), Int32(n), $0, lda) }
        try LAPACKError.check(info, routine: "spotrf") { .notPositiveDefinite(routine: "spotrf", leadingMinor: $0) }
        factor.withUnsafeMutablePointer { p in
            for row in 0..<n { (p + row * Int(lda) + row + 1).update(repeating: 0, count: n - row - 1) }
        }
        return factor
    }

    /// Solves A X = B from A's Cholesky factor (`choleskyFactor`), through `LAPACKE_spotrs`.
    /// `b` is n x nrhs, or a vector of n.
    public static func choleskySolve(factor: Tensor, _ b: Tensor) throws(LAPACKError) -> Tensor {
        let n = squareOrder(factor, routine: "spotrs")
        precondition(b.shape.first == n && b.rank <= 2, "spotrs: right-hand side \(b.shape) does not match order \(n)")
        var x = b.rank == 1 ? b.reshaped([n, 1]) : b.contiguous()
        x.makeUniqueAndWritable()
        let nrhs = x.shape[1]
        let lda = BLAS.checkedInt32(factor.hasDenseRows ? factor.strides[0] : n, "lda")
        let info = (factor.hasDenseRows ? factor : factor.contiguous()).withUnsafePointer { pa in
            x.withUnsafeMutablePointer { px in
                tb_spotrs(Int8(UInt8(ascii: "L")), Int32(n), Int32(nrhs), pa, lda, px, Int32(max(nrhs, 1)))
            }
        }
        try LAPACKError.check(info, routine: "spotrs") { .illegalArgument(routine: "spotrs", position: $0) }
        return b.rank == 1 ? x.reshaped([n]) : x
    }

    /// Eigenvalues (ascending) and eigenvectors (as columns) of a symmetric matrix,
    /// through `LAPACKE_ssyevd`. Reads the lower triangle.
    public static func symmetricEigen(_ a: Tensor) throws(LAPACKError) -> (values: Tensor, vectors: Tensor) {
        let n = squareOrder(a, routine: "ssyevd")
        var vectors = a.hasDenseRows ? a : a.contiguous()
        vectors.makeUniqueAndWritable()
        var values = Tensor(zeros: [n])
        let lda = BLAS.checkedInt32(vectors.strides[0], "lda")
        let info = vectors.withUnsafeMutablePointer { pa in
            values.withUnsafeMutablePointer { pw in
                tb_ssyevd(Int8(UInt8(ascii: "V")), Int8(UInt8(ascii: "L")), Int32(n), pa, lda, pw)
            }
        }
        try LAPACKError.check(info, routine: "ssyevd") { .didNotConverge(routine: "ssyevd", info: $0) }
        return (values, vectors)
    }

    private static func squareOrder(_ a: Tensor, routine: String) -> Int {
        precondition(a.rank == 2 && a.shape[0] == a.shape[1], "\(routine) needs a square matrix, got \(a.shape)")
        return a.shape[0]
    }
}
