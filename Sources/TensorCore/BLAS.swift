import CBLASShim

/// Typed wrappers over the BLAS routines of the shim. Operands are tensor views:
/// a matrix whose columns are dense goes to BLAS as is, one whose rows are
/// dense (a `transposed()` view) goes as its transpose, so every transpose
/// combination is a choice of views, with no copy.
public enum BLAS {
    /// How BLAS sees a rank-2 view: the dense matrix it is, or the transpose of one.
    struct MatrixOperand {
        var transpose: tb_transpose
        var leadingDimension: Int32

        init(_ matrix: Tensor, name: String) {
            precondition(matrix.rank == 2, "\(name) must be rank 2, got shape \(matrix.shape)")
            let (rows, cols) = (matrix.shape[0], matrix.shape[1])
            let (rowStride, colStride) = (matrix.strides[0], matrix.strides[1])
            if colStride == 1 || cols <= 1, rowStride >= max(cols, 1) || rows <= 1 {
                transpose = TB_NO_TRANS
                leadingDimension = Int32(max(rows <= 1 ? cols : rowStride, 1))
            } else if rowStride == 1 || rows <= 1, colStride >= max(rows, 1) || cols <= 1 {
                transpose = TB_TRANS
                leadingDimension = Int32(max(cols <= 1 ? rows : colStride, 1))
            } else {
                preconditionFailure("\(name) has strides \(matrix.strides) for shape \(matrix.shape): BLAS needs one dense axis")
            }
        }
    }

    static func checkedInt32(_ value: Int, _ what: @autoclosure () -> String) -> Int32 {
        guard let narrow = Int32(exactly: value) else { preconditionFailure("\(what()) = \(value) exceeds BLAS's 32-bit range") }
        return narrow
    }

    /// `c = alpha * a * b + beta * c` through `cblas_sgemm`. `a` is m x k, `b` is k x n, `c` is m x n;
    /// any of them may be a `transposed()` or strided view.
    public static func gemm(_ a: Tensor, _ b: Tensor, into c: inout Tensor, alpha: Float = 1, beta: Float = 0) {
        precondition(a.rank == 2 && b.rank == 2 && c.rank == 2, "gemm takes matrices: \(a.shape) x \(b.shape) -> \(c.shape)")
        let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
        precondition(b.shape[0] == k && c.shape == [m, n], "gemm shapes do not chain: \(a.shape) x \(b.shape) -> \(c.shape)")
        // BLAS writes C row-major; a C with dense columns is written as C^T = B^T A^T.
        if c.strides[1] != 1 && c.strides[0] == 1 && n > 1 {
            var ct = c.transposed()
            c = Tensor(zeros: [])  // drop c's reference, so ct is written in place, not copied
            gemm(b.transposed(), a.transposed(), into: &ct, alpha: alpha, beta: beta)
            c = ct.transposed()
            return
        }
        c.makeUniqueAndWritable()  // may re-lay C out densely, so read its strides after
        precondition(c.hasDenseRows, "c must have dense rows or dense columns, got strides \(c.strides)")
        let ldc = c.strides[0]
        c.withUnsafeMutablePointer { pc in
            gemm(a, b, into: pc, leadingDimension: ldc, alpha: alpha, beta: beta)
        }
    }

    /// `cblas_sgemm` into C at `pc`, an m x n row-major matrix with leading dimension `ldc`.
    static func gemm(
        _ a: Tensor, _ b: Tensor, into pc: UnsafeMutablePointer<Float>, leadingDimension ldc: Int,
        alpha: Float, beta: Float
    ) {
        let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
        if m == 0 || n == 0 { return }
        let ldc32 = checkedInt32(max(ldc, n), "ldc")
        if k == 0 {
            // C = beta * C; beta == 0 clears C, NaNs included, as BLAS defines it.
            for row in 0..<m {
                let rowStart = pc + row * Int(ldc32)
                if beta == 0 { rowStart.update(repeating: 0, count: n) } else { tb_sscal(Int32(n), beta, rowStart, 1) }
            }
            return
        }
        let opA = MatrixOperand(a, name: "a"), opB = MatrixOperand(b, name: "b")
        let (m32, n32, k32) = (checkedInt32(m, "m"), checkedInt32(n, "n"), checkedInt32(k, "k"))
        a.withUnsafePointer { pa in
            b.withUnsafePointer { pb in
                tb_sgemm(
                    opA.transpose, opB.transpose, m32, n32, k32, alpha, pa, opA.leadingDimension,
                    pb, opB.leadingDimension, beta, pc, ldc32)
            }
        }
    }

    /// `op(a) * op(b)` with explicit transposes, into a new dense matrix.
    public static func matmul(_ a: Tensor, transposeA: Bool = false, _ b: Tensor, transposeB: Bool = false) -> Tensor {
        let lhs = transposeA ? a.transposed() : a
        let rhs = transposeB ? b.transposed() : b
        var c = Tensor(unfilled: [lhs.shape[0], rhs.shape[1]])  // beta 0: BLAS never reads C
        gemm(lhs, rhs, into: &c)
        return c
    }

    /// GEMM over leading batch axes: for each batch index, `c[i] = alpha * a[i] * b[i] + beta * c[i]`.
    ///
    /// Tensors have rank >= 3 and the same batch shape; a batch stride of 0 broadcasts an operand,
    /// which is how grouped-query attention shares one key head among several query heads.
    public static func batchedGEMM(_ a: Tensor, _ b: Tensor, into c: inout Tensor, alpha: Float = 1, beta: Float = 0) {
        precondition(a.rank >= 3 && a.rank == b.rank && b.rank == c.rank, "batchedGEMM ranks differ: \(a.shape), \(b.shape), \(c.shape)")
        let batchShape = Array(c.shape.dropLast(2))
        precondition(
            Array(a.shape.dropLast(2)) == batchShape && Array(b.shape.dropLast(2)) == batchShape,
            "batchedGEMM batch shapes differ: \(a.shape), \(b.shape), \(c.shape)")
        let (m, n, k) = (c.shape[c.rank - 2], c.shape[c.rank - 1], a.shape[a.rank - 1])
        precondition(
            a.shape.suffix(2) == [m, k] && b.shape.suffix(2) == [k, n],
            "batchedGEMM matrix shapes do not chain: \(a.shape) x \(b.shape) -> \(c.shape)")
        c.makeUniqueAndWritable()  // may re-lay C out densely, so read its strides after
        precondition(c.hasDenseRows, "c must have dense rows, got strides \(c.strides)")
        let cStrides = c.strides, ldc = cStrides[c.rank - 2]
        c.withUnsafeMutablePointer { pc in
            var index = [Int](repeating: 0, count: batchShape.count)
            for _ in 0..<Tensor.elementCount(batchShape) {
                let cOffset = zip(index, cStrides).reduce(0) { $0 + $1.0 * $1.1 }
                gemm(a.matrix(at: index), b.matrix(at: index), into: pc + cOffset, leadingDimension: ldc, alpha: alpha, beta: beta)
                for axis in index.indices.reversed() {
                    index[axis] += 1
                    if index[axis] < batchShape[axis] { break }
                    index[axis] = 0
                }
            }
        }
    }

    /// `y = alpha * a * x + beta * y` through `cblas_sgemv`; `a` may be a transposed view.
    public static func gemv(_ a: Tensor, _ x: Tensor, into y: inout Tensor, alpha: Float = 1, beta: Float = 0) {
        precondition(a.rank == 2 && x.rank == 1 && y.rank == 1, "gemv takes a matrix and vectors")
        precondition(a.shape[1] == x.shape[0] && a.shape[0] == y.shape[0], "gemv shapes: \(a.shape) x \(x.shape) -> \(y.shape)")
        if a.shape[0] == 0 { return }
        if a.shape[1] == 0 { return scale(&y, by: beta) }
        y.makeUniqueAndWritable()
        let op = MatrixOperand(a, name: "a")
        // BLAS takes the dimensions of the stored matrix, not of op(a).
        let (rows, cols) = op.transpose == TB_NO_TRANS ? (a.shape[0], a.shape[1]) : (a.shape[1], a.shape[0])
        let (incx, incy) = (Int32(x.strides[0]), Int32(y.strides[0]))
        a.withUnsafePointer { pa in
            x.withUnsafePointer { px in
                y.withUnsafeMutablePointer { py in
                    tb_sgemv(op.transpose, checkedInt32(rows, "rows"), checkedInt32(cols, "cols"), alpha, pa,
                             op.leadingDimension, px, incx, beta, py, incy)
                }
            }
        }
    }

    /// `y += alpha * x` through `cblas_saxpy`, for vectors or dense tensors of one shape.
    public static func axpy(_ alpha: Float, _ x: Tensor, _ y: inout Tensor) {
        precondition(x.shape == y.shape, "axpy shapes differ: \(x.shape) vs \(y.shape)")
        y.makeUniqueAndWritable()
        let (incx, incy) = (vectorIncrement(x), vectorIncrement(y))
        let n = checkedInt32(x.count, "count")
        x.withUnsafePointer { px in
            y.withUnsafeMutablePointer { py in tb_saxpy(n, alpha, px, incx, py, incy) }
        }
    }

    /// `x . y` through `cblas_sdot`.
    public static func dot(_ x: Tensor, _ y: Tensor) -> Float {
        precondition(x.shape == y.shape, "dot shapes differ: \(x.shape) vs \(y.shape)")
        let (incx, incy) = (vectorIncrement(x), vectorIncrement(y))
        return x.withUnsafePointer { px in
            y.withUnsafePointer { py in tb_sdot(checkedInt32(x.count, "count"), px, incx, py, incy) }
        }
    }

    /// The Euclidean norm through `cblas_snrm2`.
    public static func norm(_ x: Tensor) -> Float {
        let inc = vectorIncrement(x)
        return x.withUnsafePointer { tb_snrm2(checkedInt32(x.count, "count"), $0, inc) }
    }

    /// `x *= alpha` through `cblas_sscal`; a matrix with a leading dimension is scaled row by row.
    public static func scale(_ x: inout Tensor, by alpha: Float) {
        x.makeUniqueAndWritable()
        if x.rank == 2 && x.strides[1] == 1 && x.strides[0] != x.shape[1] && x.shape[0] > 1 {
            let (rows, cols, ld) = (x.shape[0], checkedInt32(x.shape[1], "cols"), x.strides[0])
            x.withUnsafeMutablePointer { p in
                for row in 0..<rows { tb_sscal(cols, alpha, p + row * ld, 1) }
            }
            return
        }
        let inc = vectorIncrement(x)
        let n = checkedInt32(x.count, "count")
        x.withUnsafeMutablePointer { tb_sscal(n, alpha, $0, inc) }
    }

    /// The BLAS increment of a vector view, or 1 for a dense tensor of any rank.
    static func vectorIncrement(_ x: Tensor) -> Int32 {
        if x.rank == 1 { return checkedInt32(x.strides[0], "increment") }
        precondition(x.isContiguous, "BLAS level-1 routines take vectors or dense tensors, got strides \(x.strides)")
        return 1
    }
}

extension Tensor {
    /// The trailing matrix at a batch index: a rank-2 view.
    func matrix(at batchIndex: [Int]) -> Tensor {
        precondition(batchIndex.count == rank - 2)
        var start = 0
        for (axis, i) in batchIndex.enumerated() { start += i * strides[axis] }
        return Tensor(storage: storage, shape: Array(shape.suffix(2)), strides: Array(strides.suffix(2)), offset: offset + start)
    }
}
