/// Qwen3's per-head RMSNorm of queries and keys (`self_attn.q_norm`, `k_norm`): RMSNorm over each head's
/// `headDimension` values of a `[rows, heads * headDimension]` projection, one weight `[headDimension]`
/// shared by the heads. The same arithmetic as `Kernels.rmsNorm` (Qwen3RMSNorm is LlamaRMSNorm), run on
/// the `[rows, heads, headDimension]` view, so it is exact, with rows that may be apart (a column view).
extension Kernels {
    /// Returns the normed projection `[rows, heads * headDimension]` and `rstd` `[rows, heads]`, which
    /// the backward takes.
    public static func headRMSNorm(
        _ x: Tensor, weight: Tensor, headDimension: Int, epsilon: Float
    ) -> (output: Tensor, rstd: Tensor) {
        let heads = headCount(x, headDimension: headDimension, name: "headRMSNorm")
        let (output, rstd) = rmsNorm(headView(x, heads: heads, headDimension: headDimension), weight: weight, epsilon: epsilon)
        return (output.reshaped([x.shape[0], heads * headDimension]), rstd)
    }

    /// The input gradient `[rows, heads * headDimension]` of `headRMSNorm` from its input, weight, saved
    /// `rstd` and the output gradient, for a frozen weight (LoRA): no weight gradient.
    public static func headRMSNormBackward(
        input: Tensor, weight: Tensor, rstd: Tensor, gradient: Tensor, headDimension: Int
    ) -> Tensor {
        let (x, dy, heads) = headViews(input: input, rstd: rstd, gradient: gradient, headDimension: headDimension)
        return rmsNormBackward(input: x, weight: weight, rstd: rstd, gradient: dy).reshaped([input.shape[0], heads * headDimension])
    }

    /// `headRMSNormBackward`, also ADDING the weight gradient (the sum over rows and heads of
    /// `dy * (x * rstd)`) into `weightGradient` ([headDimension]).
    public static func headRMSNormBackward(
        input: Tensor, weight: Tensor, rstd: Tensor, gradient: Tensor, headDimension: Int,
        accumulatingWeightGradient weightGradient: inout Tensor
    ) -> Tensor {
        let (x, dy, heads) = headViews(input: input, rstd: rstd, gradient: gradient, headDimension: headDimension)
        return rmsNormBackward(input: x, weight: weight, rstd: rstd, gradient: dy, accumulatingWeightGradient: &weightGradient)
            .reshaped([input.shape[0], heads * headDimension])
    }

    private static func headViews(
        input: Tensor, rstd: Tensor, gradient: Tensor, headDimension: Int
    ) -> (input: Tensor, gradient: Tensor, heads: Int) {
        let heads = headCount(input, headDimension: headDimension, name: "headRMSNormBackward")
        precondition(gradient.shape == input.shape, "headRMSNormBackward: gradient \(gradient.shape) differs from input \(input.shape)")
        precondition(
            rstd.shape == [input.shape[0], heads],
            "headRMSNormBackward: rstd has shape \(rstd.shape), expected [\(input.shape[0]), \(heads)]")
        return (headView(input, heads: heads, headDimension: headDimension), headView(gradient, heads: heads, headDimension: headDimension), heads)
    }

    private static func headCount(_ x: Tensor, headDimension: Int, name: String) -> Int {
        precondition(x.rank == 2, "\(name) takes [rows, heads * headDimension], got shape \(x.shape)")
        precondition(headDimension > 0 && x.shape[1] % headDimension == 0, "\(name): width \(x.shape[1]) is not a multiple of the head dimension \(headDimension)")
        return x.shape[1] / headDimension
    }

    /// `[rows, heads, headDimension]` over the same storage: heads packed in a row, rows as far apart as in `x`.
    private static func headView(_ x: Tensor, heads: Int, headDimension: Int) -> Tensor {
        let dense = x.hasDenseRows ? x : x.contiguous()
        let rowStride = dense.shape[0] > 1 ? dense.strides[0] : heads * headDimension
        return dense.viewing(shape: [dense.shape[0], heads, headDimension], strides: [rowStride, headDimension, 1])
    }
}
