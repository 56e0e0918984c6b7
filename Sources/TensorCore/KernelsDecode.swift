import CKernels

/// Kernels of decoding steps, where a few activation rows meet whole weight matrices and a KV cache.
extension Kernels {
    /// The most rows of `x` for which `skinnyProduct` measured at least as fast as sgemm on the
    /// reference model's weights (docs/PERFORMANCE.md, "The skinny product"): faster up to 16 rows,
    /// even at 24 and 32 on one thread and faster on two.
    public static let skinnyRowLimit = 32

    /// `y = alpha x Wᵀ + beta y` for a Hugging Face linear weight W [out, in] and a few rows of x
    /// ([m, in], best for m <= `skinnyRowLimit`), each row of W read once for all of them; y is [m, out].
    /// The one matrix product outside BLAS: for so few rows OpenBLAS's small-matrix sgemm and sgemv
    /// reach a fraction of the memory bandwidth this reaches. With `threads` > 1 the output columns
    /// are split among CKernels' worker pool; the result is the same, bit for bit, for every thread
    /// count. Runs `tk_skinny_matmul_wt`.
    public static func skinnyProduct(
        _ x: Tensor, transposedWeight weight: Tensor, into y: inout Tensor, alpha: Float = 1, beta: Float = 0,
        threads: Int = BLASRuntime.threads
    ) {
        precondition(x.rank == 2 && weight.rank == 2 && y.rank == 2, "skinnyProduct takes matrices: \(x.shape), \(weight.shape) -> \(y.shape)")
        let (m, inputs, outputs) = (x.shape[0], x.shape[1], weight.shape[0])
        precondition(
            weight.shape[1] == inputs && y.shape == [m, outputs],
            "skinnyProduct shapes do not chain: \(x.shape) x \(weight.shape)ᵀ -> \(y.shape)")
        let input = x.hasDenseRows ? x : x.contiguous()
        let w = weight.hasDenseRows ? weight : weight.contiguous()
        if !y.hasDenseRows { y = y.contiguous() }
        y.makeUniqueAndWritable()
        let (ldx, ldw, ldy) = (input.strides[0], w.strides[0], y.strides[0])
        input.withUnsafePointer { px in
            w.withUnsafePointer { pw in
                y.withUnsafeMutablePointer { py in
                    tk_skinny_matmul_wt(px, ldx, pw, ldw, py, ldy, m, inputs, outputs, alpha, beta, max(threads, 1))
                }
            }
        }
    }

    /// Causal grouped-query attention of `queries` ([t, heads * d], the last t of the seen positions)
    /// over `keys` and `values` ([seen, keyValueHeads * d]) with scores scaled by `scale`: the output
    /// of `LlamaModel.attend` without its probabilities, for a few query rows (decoding steps), with no
    /// per-head BLAS calls. With `window` (Mistral's `sliding_window`), query position p sees only keys at
    /// positions `p - window < j <= p`, as `SoftmaxMask.slidingWindow`. Runs `tk_attention_decode`.
    public static func decodeAttention(
        queries: Tensor, keys: Tensor, values: Tensor, heads: Int, keyValueHeads: Int, scale: Float, window: Int? = nil
    ) -> Tensor {
        precondition(window.map { $0 > 0 } ?? true, "decodeAttention: a sliding window must be positive, got \(window!)")
        precondition(queries.rank == 2 && keys.rank == 2 && values.rank == 2, "decodeAttention takes matrices")
        precondition(heads > 0 && keyValueHeads > 0 && heads % keyValueHeads == 0, "\(heads) heads do not group over \(keyValueHeads) key/value heads")
        let (tokens, seen, width) = (queries.shape[0], keys.shape[0], queries.shape[1])
        let headDimension = width / heads
        precondition(width == heads * headDimension, "queries of width \(width) do not split into \(heads) heads")
        precondition(
            keys.shape[1] == keyValueHeads * headDimension && values.shape == keys.shape,
            "keys \(keys.shape) and values \(values.shape) must be [seen, \(keyValueHeads * headDimension)]")
        precondition(tokens <= seen, "\(tokens) queries are more than the \(seen) positions seen")
        let (q, k, v) = (rowInput(queries).tensor, rowInput(keys).tensor, rowInput(values).tensor)
        var output = Tensor(zeros: [tokens, width])
        q.withUnsafePointer { pq in
            k.withUnsafePointer { pk in
                v.withUnsafePointer { pv in
                    output.withUnsafeMutablePointer { po in
                        tk_attention_decode(
                            pq, q.strides[0], pk, k.strides[0], pv, v.strides[0], po, width, tokens, seen, heads,
                            keyValueHeads, headDimension, scale, window ?? 0)
                    }
                }
            }
        }
        return output
    }
}
