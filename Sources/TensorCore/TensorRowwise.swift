import CBLASShim

/// Row-wise operations on matrices with dense rows (rows may be a leading dimension apart, as
/// column blocks of a wider matrix are): the per-row dot products and row scalings that
/// attribution's norms and quadratic forms need, without a `Tensor` per row.
extension Tensor {
    /// `result[i] = a[i, :] . b[i, :]` for two matrices of one shape, through `cblas_sdot` per row.
    public static func rowDots(_ a: Tensor, _ b: Tensor) -> Tensor {
        precondition(a.rank == 2 && a.shape == b.shape, "rowDots needs two matrices of one shape, got \(a.shape) and \(b.shape)")
        let lhs = a.hasDenseRows ? a : a.contiguous(), rhs = b.hasDenseRows ? b : b.contiguous()
        let (rows, cols) = (a.shape[0], BLAS.checkedInt32(a.shape[1], "cols"))
        let (lda, ldb) = (lhs.strides[0], rhs.strides[0])
        return lhs.withUnsafePointer { pa in
            rhs.withUnsafePointer { pb in
                Tensor(shape: [rows]) { out in
                    for row in 0..<rows { out[row] = tb_sdot(cols, pa + row * lda, 1, pb + row * ldb, 1) }
                }
            }
        }
    }

    /// A dense copy of this matrix with row `i` multiplied by `factors[i]`.
    public func scalingRows(by factors: Tensor) -> Tensor {
        precondition(rank == 2 && factors.shape == [shape[0]], "scalingRows: \(factors.shape) factors for a \(shape) matrix")
        let source = hasDenseRows ? self : contiguous()
        let (rows, cols, ld) = (shape[0], shape[1], source.strides[0])
        let scale = factors.scalars
        if count == 0 { return Tensor(zeros: shape) }
        return source.withUnsafePointer { from in
            Tensor(shape: shape) { to in
                for row in 0..<rows {
                    let target = to.baseAddress! + row * cols
                    target.update(from: from + row * ld, count: cols)
                    tb_sscal(BLAS.checkedInt32(cols, "cols"), scale[row], target, 1)
                }
            }
        }
    }
}

extension Tensor {
    /// A dense copy of this matrix with column `j` multiplied by `factors[j]`.
    public func scalingColumns(by factors: Tensor) -> Tensor {
        precondition(rank == 2 && factors.shape == [shape[1]], "scalingColumns: \(factors.shape) factors for a \(shape) matrix")
        let source = hasDenseRows ? self : contiguous()
        let (rows, cols, ld) = (shape[0], shape[1], source.strides[0])
        let scale = factors.contiguous()
        if count == 0 { return Tensor(zeros: shape) }
        return source.withUnsafePointer { from in
            scale.withUnsafePointer { factor in
                Tensor(shape: shape) { to in
                    for row in 0..<rows {
                        let (target, origin) = (to.baseAddress! + row * cols, from + row * ld)
                        for column in 0..<cols { target[column] = origin[column] * factor[column] }
                    }
                }
            }
        }
    }
}
