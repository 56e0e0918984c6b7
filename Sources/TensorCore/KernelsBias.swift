import CKernels

/// The bias of a linear layer (`nn.Linear(bias=True)`: Qwen2's q, k, v; Llama's `attention_bias`,
/// `mlp_bias`), added to each row of its output, and the bias gradient.
extension Kernels {
    /// `y[r, j] += bias[j]` for every row of `y` ([rows, out]; rows may be apart, as a column view of a
    /// fused projection), in place. Runs `tk_add_bias`.
    public static func addBias(_ y: inout Tensor, bias: Tensor) {
        precondition(y.rank == 2, "addBias takes [rows, out], got shape \(y.shape)")
        let b = denseVector(bias, count: y.shape[1], name: "addBias bias")
        let layout = prepareInPlace(&y)
        if layout.rows == 0 || layout.cols == 0 { return }
        b.withUnsafePointer { pb in
            y.withUnsafeMutablePointer { py in
                tk_add_bias(py, layout.rowStride, pb, layout.rows, layout.cols)
            }
        }
    }

    /// The bias gradient of `addBias`: the column sums of the output gradient `gradient` ([rows, out]),
    /// ADDED into `biasGradient` ([out]), so the caller can sum over batches. Runs `tk_bias_backward`.
    public static func addBiasBackward(gradient: Tensor, accumulatingBiasGradient biasGradient: inout Tensor) {
        precondition(gradient.rank == 2, "addBiasBackward takes [rows, out], got shape \(gradient.shape)")
        precondition(
            biasGradient.count == gradient.shape[1],
            "addBiasBackward: bias gradient has shape \(biasGradient.shape), gradient \(gradient.shape)")
        let (dy, layout) = rowInput(gradient)
        if !biasGradient.isContiguous { biasGradient = biasGradient.contiguous() }
        biasGradient.makeUniqueAndWritable()
        if layout.rows == 0 || layout.cols == 0 { return }
        dy.withUnsafePointer { pdy in
            biasGradient.withUnsafeMutablePointer { pdb in
                tk_bias_backward(pdy, layout.rowStride, pdb, layout.rows, layout.cols)
            }
        }
    }
}
