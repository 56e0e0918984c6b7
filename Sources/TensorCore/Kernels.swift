import CKernels

/// Typed wrappers over the training kernels of `CKernels` (tributary_kernels.h), each with its
/// backward: masked softmax, RMSNorm, SiLU and SwiGLU here; rotary embedding in
/// KernelsRotary.swift; cross-entropy in KernelsCrossEntropy.swift.
///
/// Tensors go to C as rows: the last axis must be dense (stride 1), the row stride (the
/// second-to-last axis's stride) is passed as a leading dimension, and leading axes are batches.
/// So strided views, such as one head's columns of a `[tokens, heads * headDim]` matrix, go
/// without a copy; an input whose layout does not fit is made dense first. Outputs are new dense
/// tensors, or the `inout` argument for the in-place variants.
public enum Kernels {}

/// The columns each row of a softmax may see.
public enum SoftmaxMask: Sendable, Hashable {
    /// Every column.
    case none
    /// Row `i` (its index along the second-to-last axis, counted from 0 in each matrix) sees
    /// columns `j <= i + queryOffset`. With a KV cache, `queryOffset` is keys - queries, the
    /// number of cached positions before the first query row. A row that sees no column (only
    /// possible when `queryOffset` < 0) is all zeros.
    case causal(queryOffset: Int = 0)
    /// Causal with a sliding window (Mistral's `sliding_window`): row `i` sees columns `j` with
    /// `i + queryOffset - window < j <= i + queryOffset`, at most `window` of them, as transformers'
    /// `sliding_window_overlay` (`kv_idx > q_idx - sliding_window`). `window` must be positive.
    case slidingWindow(queryOffset: Int = 0, window: Int)

    var cArguments: (causal: Int32, queryOffset: Int, window: Int) {
        switch self {
        case .none: return (0, 0, 0)
        case .causal(let offset): return (1, offset, 0)
        case .slidingWindow(let offset, let window):
            precondition(window > 0, "a sliding window must be positive, got \(window)")
            return (1, offset, window)
        }
    }
}

// MARK: Row layout

/// How a tensor is passed to the kernels: `batches` matrices of `rows` x `cols`, rows
/// `rowStride` apart and matrices `batchStride` apart, with dense rows. Matrices may interleave,
/// as the heads of a `[queries, heads, keys]` tensor seen as `[heads, queries, keys]` do.
struct KernelRowLayout: Equatable {
    var batches: Int
    var rows: Int
    var cols: Int
    var batchStride: Int
    var rowStride: Int
}

extension KernelRowLayout {
    /// The layout of `tensor`, or nil when its last axis is not dense, a stride is negative or its
    /// leading axes do not collapse into one batch axis. Rank 0 and 1 are a single row.
    init?(_ tensor: Tensor) {
        let shape = tensor.shape, strides = tensor.strides, rank = tensor.rank
        guard tensor.hasDenseRows, strides.allSatisfy({ $0 >= 0 }) else { return nil }
        cols = rank == 0 ? 1 : shape[rank - 1]
        rows = rank >= 2 ? shape[rank - 2] : 1
        rowStride = rank >= 2 && rows > 1 ? strides[rank - 2] : cols
        // Collapse the leading axes, innermost first; axes of extent 1 do not matter.
        batches = 1
        batchStride = rows * rowStride
        var expectedStride: Int? = nil
        for axis in stride(from: rank - 3, through: 0, by: -1) where shape[axis] != 1 {
            if let expected = expectedStride {
                guard strides[axis] == expected else { return nil }
            } else {
                batchStride = strides[axis]
            }
            batches *= shape[axis]
            expectedStride = strides[axis] * shape[axis]
        }
    }

    /// True when no two elements share an address, so the layout can be written in place.
    var isNonOverlapping: Bool {
        let axes = [(1, cols), (rowStride, rows), (batchStride, batches)].filter { $0.1 > 1 }.sorted { $0.0 < $1.0 }
        var span = 1  // elements from the first to one past the last, over the axes so far
        for (stride, extent) in axes {
            if stride < span { return false }
            span += stride * (extent - 1)
        }
        return true
    }

    /// The same elements as one batch of more rows, when the matrices follow each other at the row stride.
    var mergingBatches: KernelRowLayout {
        guard batches > 1, batchStride == rows * rowStride else { return self }
        var merged = self
        merged.rows = batches * rows
        merged.batches = 1
        merged.batchStride = merged.rows * rowStride
        return merged
    }

    /// The total number of rows.
    var rowCount: Int { batches * rows }
}

extension Kernels {
    /// `tensor` and its layout, densified first when its layout does not fit.
    static func rowInput(_ tensor: Tensor) -> (tensor: Tensor, layout: KernelRowLayout) {
        if let layout = KernelRowLayout(tensor) { return (tensor, layout) }
        let dense = tensor.contiguous()
        return (dense, KernelRowLayout(dense)!)
    }

    /// Makes `tensor` writable in place, densifying it when its layout does not fit or overlaps
    /// itself, and returns its layout.
    static func prepareInPlace(_ tensor: inout Tensor) -> KernelRowLayout {
        if KernelRowLayout(tensor)?.isNonOverlapping != true { tensor = tensor.contiguous() }
        tensor.makeUniqueAndWritable()  // may re-lay the tensor out densely: read the layout after
        return KernelRowLayout(tensor)!
    }

    /// A dense vector of `count` elements holding `tensor`'s elements.
    static func denseVector(_ tensor: Tensor, count: Int, name: String) -> Tensor {
        precondition(tensor.count == count, "\(name) has shape \(tensor.shape), expected \(count) elements")
        return tensor.contiguous()
    }

    /// Calls `body(rows, offsets, firstRow)` for each run of rows a C routine can take in one call:
    /// one per batch, or a single one when the batches merge in every layout. `offsets` holds the
    /// run's element offset in each of `layouts` (tensors of one shape), `firstRow` its first row.
    static func forEachRowRun(
        _ layouts: [KernelRowLayout], _ body: (_ rows: Int, _ offsets: [Int], _ firstRow: Int) -> Void
    ) {
        let merged = layouts.map(\.mergingBatches)
        if merged.allSatisfy({ $0.batches == 1 }) {
            body(merged[0].rows, merged.map { _ in 0 }, 0)
            return
        }
        let first = layouts[0]
        for batch in 0..<first.batches {
            body(first.rows, layouts.map { batch * $0.batchStride }, batch * first.rows)
        }
    }
}

// MARK: Softmax

extension Kernels {
    /// Masked softmax along the last axis of `scores` (rank >= 1): `softmax(scale * scores)` over
    /// each row's visible columns, exactly 0 at masked ones. Leading axes are batches, so one call
    /// covers every head: `[heads, queries, keys]` or `[batch, heads, queries, keys]` with the
    /// causal position of a row being its index along the second-to-last axis (a flattened
    /// `[heads * queries, keys]` matrix should be reshaped to `[heads, queries, keys]` first).
    /// Runs `tk_softmax_forward`.
    public static func softmax(_ scores: Tensor, scale: Float = 1, mask: SoftmaxMask) -> Tensor {
        let (x, layout) = rowInput(scores)
        var y = Tensor(unfilled: scores.shape)
        let out = KernelRowLayout(y)!
        let (causal, offset, window) = mask.cArguments
        x.withUnsafePointer { px in
            y.withUnsafeMutablePointer { py in
                tk_softmax_forward(
                    px, layout.batchStride, layout.rowStride, py, out.batchStride, out.rowStride,
                    layout.batches, layout.rows, layout.cols, scale, causal, offset, window)
            }
        }
        return y
    }

    /// `softmax(_:scale:mask:)` in place: attention scores become probabilities without a new buffer.
    /// Runs `tk_softmax_forward` with the output on the input.
    public static func softmax(inPlace scores: inout Tensor, scale: Float = 1, mask: SoftmaxMask) {
        let layout = prepareInPlace(&scores)
        let (causal, offset, window) = mask.cArguments
        scores.withUnsafeMutablePointer { p in
            tk_softmax_forward(
                p, layout.batchStride, layout.rowStride, p, layout.batchStride, layout.rowStride,
                layout.batches, layout.rows, layout.cols, scale, causal, offset, window)
        }
    }

    /// The gradient with respect to the (pre-scale) scores, from the forward's `output` y and the
    /// gradient of the loss with respect to it: `scale * y * (dy - sum_j dy * y)`, 0 at masked
    /// entries. Pass the forward's `scale` and `mask`. Runs `tk_softmax_backward`.
    public static func softmaxBackward(output: Tensor, gradient: Tensor, scale: Float = 1, mask: SoftmaxMask) -> Tensor {
        precondition(
            output.shape == gradient.shape,
            "softmaxBackward: output \(output.shape) and gradient \(gradient.shape) differ in shape")
        let (y, yLayout) = rowInput(output)
        let (dy, dyLayout) = rowInput(gradient)
        var dx = Tensor(unfilled: output.shape)
        let dxLayout = KernelRowLayout(dx)!
        let (causal, offset, window) = mask.cArguments
        y.withUnsafePointer { py in
            dy.withUnsafePointer { pdy in
                dx.withUnsafeMutablePointer { pdx in
                    tk_softmax_backward(
                        py, yLayout.batchStride, yLayout.rowStride, pdy, dyLayout.batchStride, dyLayout.rowStride,
                        pdx, dxLayout.batchStride, dxLayout.rowStride,
                        yLayout.batches, yLayout.rows, yLayout.cols, scale, causal, offset, window)
                }
            }
        }
        return dx
    }

    /// `softmaxBackward(output:gradient:scale:mask:)` overwriting the gradient with the result.
    /// Runs `tk_softmax_backward` with the output on the gradient.
    public static func softmaxBackward(output: Tensor, gradientInPlace gradient: inout Tensor, scale: Float = 1, mask: SoftmaxMask) {
        precondition(
            output.shape == gradient.shape,
            "softmaxBackward: output \(output.shape) and gradient \(gradient.shape) differ in shape")
        let (y, yLayout) = rowInput(output)
        let layout = prepareInPlace(&gradient)
        let (causal, offset, window) = mask.cArguments
        y.withUnsafePointer { py in
            gradient.withUnsafeMutablePointer { p in
                tk_softmax_backward(
                    py, yLayout.batchStride, yLayout.rowStride, p, layout.batchStride, layout.rowStride,
                    p, layout.batchStride, layout.rowStride,
                    yLayout.batches, yLayout.rows, yLayout.cols, scale, causal, offset, window)
            }
        }
    }
}

// MARK: RMSNorm

extension Kernels {
    /// RMSNorm over the last axis, as Hugging Face's `LlamaRMSNorm` in float32:
    /// `y = weight * (x * rstd)`, `rstd = 1 / sqrt(mean(x^2) + epsilon)` per row.
    /// Returns `y` (the shape of `x`) and `rstd` (the shape of `x` without its last axis), which the
    /// backward takes. Runs `tk_rmsnorm_forward`.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) -> (output: Tensor, rstd: Tensor) {
        precondition(x.rank >= 1, "rmsNorm takes a tensor of rank >= 1, got shape \(x.shape)")
        let (input, layout) = rowInput(x)
        let w = denseVector(weight, count: layout.cols, name: "rmsNorm weight")
        var y = Tensor(unfilled: x.shape)
        var rstd = Tensor(unfilled: Array(x.shape.dropLast()))
        let out = KernelRowLayout(y)!
        input.withUnsafePointer { px in
            w.withUnsafePointer { pw in
                y.withUnsafeMutablePointer { py in
                    rstd.withUnsafeMutablePointer { pr in
                        forEachRowRun([layout, out]) { rows, offsets, firstRow in
                            tk_rmsnorm_forward(
                                px + offsets[0], layout.rowStride, pw, py + offsets[1], out.rowStride,
                                pr + firstRow, rows, layout.cols, epsilon)
                        }
                    }
                }
            }
        }
        return (y, rstd)
    }

    /// The input gradient of `rmsNorm`, from its input, weight, saved `rstd` and the output gradient,
    /// for a frozen weight (LoRA): no weight gradient. Runs `tk_rmsnorm_backward`.
    public static func rmsNormBackward(input: Tensor, weight: Tensor, rstd: Tensor, gradient: Tensor) -> Tensor {
        rmsNormBackward(input: input, weight: weight, rstd: rstd, gradient: gradient, weightGradient: nil)
    }

    /// The input gradient of `rmsNorm`, also ADDING the weight gradient, the sum over rows of
    /// `dy * (x * rstd)`, into `weightGradient` (not overwriting it), so the caller can sum over
    /// batches. Runs `tk_rmsnorm_backward`.
    public static func rmsNormBackward(
        input: Tensor, weight: Tensor, rstd: Tensor, gradient: Tensor, accumulatingWeightGradient weightGradient: inout Tensor
    ) -> Tensor {
        precondition(
            weightGradient.count == weight.count,
            "rmsNormBackward: weight gradient has shape \(weightGradient.shape), weight \(weight.shape)")
        if !weightGradient.isContiguous { weightGradient = weightGradient.contiguous() }
        return weightGradient.withUnsafeMutablePointer { pdw in
            rmsNormBackward(input: input, weight: weight, rstd: rstd, gradient: gradient, weightGradient: pdw)
        }
    }

    /// The shared body: `weightGradient` is nil or the dense weight gradient to add into.
    private static func rmsNormBackward(
        input x: Tensor, weight: Tensor, rstd: Tensor, gradient: Tensor, weightGradient pdw: UnsafeMutablePointer<Float>?
    ) -> Tensor {
        precondition(x.rank >= 1, "rmsNormBackward takes a tensor of rank >= 1, got shape \(x.shape)")
        precondition(x.shape == gradient.shape, "rmsNormBackward: input \(x.shape) and gradient \(gradient.shape) differ in shape")
        let (input, layout) = rowInput(x)
        let (dy, dyLayout) = rowInput(gradient)
        let w = denseVector(weight, count: layout.cols, name: "rmsNormBackward weight")
        let r = denseVector(rstd, count: layout.rowCount, name: "rmsNormBackward rstd")
        var dx = Tensor(unfilled: x.shape)
        let dxLayout = KernelRowLayout(dx)!
        input.withUnsafePointer { px in
            dy.withUnsafePointer { pdy in
                w.withUnsafePointer { pw in
                    r.withUnsafePointer { pr in
                        dx.withUnsafeMutablePointer { pdx in
                            forEachRowRun([layout, dyLayout, dxLayout]) { rows, offsets, firstRow in
                                tk_rmsnorm_backward(
                                    px + offsets[0], layout.rowStride, pw, pr + firstRow, pdy + offsets[1], dyLayout.rowStride,
                                    pdx + offsets[2], dxLayout.rowStride, pdw, rows, layout.cols)
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}

// MARK: SiLU and SwiGLU

extension Kernels {
    /// `x * sigmoid(x)` elementwise, as PyTorch computes it: `x / (1 + exp(-x))`. Runs `tk_silu_forward`.
    public static func silu(_ x: Tensor) -> Tensor {
        let (input, layout) = rowInput(x)
        var y = Tensor(unfilled: x.shape)
        let out = KernelRowLayout(y)!
        input.withUnsafePointer { px in
            y.withUnsafeMutablePointer { py in
                forEachRowRun([layout, out]) { rows, offsets, _ in
                    tk_silu_forward(px + offsets[0], layout.rowStride, py + offsets[1], out.rowStride, rows, layout.cols)
                }
            }
        }
        return y
    }

    /// The gradient of `silu` at `input`: `gradient * s * (1 + x * (1 - s))`, `s = sigmoid(x)`.
    /// Runs `tk_silu_backward`.
    public static func siluBackward(input x: Tensor, gradient: Tensor) -> Tensor {
        precondition(x.shape == gradient.shape, "siluBackward: input \(x.shape) and gradient \(gradient.shape) differ in shape")
        let (input, layout) = rowInput(x)
        let (dy, dyLayout) = rowInput(gradient)
        var dx = Tensor(unfilled: x.shape)
        let out = KernelRowLayout(dx)!
        input.withUnsafePointer { px in
            dy.withUnsafePointer { pdy in
                dx.withUnsafeMutablePointer { pdx in
                    forEachRowRun([layout, dyLayout, out]) { rows, offsets, _ in
                        tk_silu_backward(
                            px + offsets[0], layout.rowStride, pdy + offsets[1], dyLayout.rowStride,
                            pdx + offsets[2], out.rowStride, rows, layout.cols)
                    }
                }
            }
        }
        return dx
    }

    /// The SwiGLU of Llama's MLP: `silu(gate) * up`. `gate` and `up` may be column views of one
    /// fused `[tokens, 2 * intermediate]` projection. Runs `tk_swiglu_forward`.
    public static func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        precondition(gate.shape == up.shape, "swiglu: gate \(gate.shape) and up \(up.shape) differ in shape")
        let (g, gLayout) = rowInput(gate)
        let (u, uLayout) = rowInput(up)
        var h = Tensor(unfilled: gate.shape)
        let out = KernelRowLayout(h)!
        g.withUnsafePointer { pg in
            u.withUnsafePointer { pu in
                h.withUnsafeMutablePointer { ph in
                    forEachRowRun([gLayout, uLayout, out]) { rows, offsets, _ in
                        tk_swiglu_forward(
                            pg + offsets[0], gLayout.rowStride, pu + offsets[1], uLayout.rowStride,
                            ph + offsets[2], out.rowStride, rows, gLayout.cols)
                    }
                }
            }
        }
        return h
    }

    /// The gradients of `swiglu` with respect to `gate` and `up`:
    /// `gradient * up * silu'(gate)` and `gradient * silu(gate)`. Runs `tk_swiglu_backward`.
    public static func swigluBackward(gate: Tensor, up: Tensor, gradient: Tensor) -> (gate: Tensor, up: Tensor) {
        precondition(
            gate.shape == up.shape && gate.shape == gradient.shape,
            "swigluBackward: gate \(gate.shape), up \(up.shape) and gradient \(gradient.shape) differ in shape")
        let (g, gLayout) = rowInput(gate)
        let (u, uLayout) = rowInput(up)
        let (dh, dhLayout) = rowInput(gradient)
        var dGate = Tensor(unfilled: gate.shape), dUp = Tensor(unfilled: gate.shape)
        let out = KernelRowLayout(dGate)!
        g.withUnsafePointer { pg in
            u.withUnsafePointer { pu in
                dh.withUnsafePointer { pdh in
                    dGate.withUnsafeMutablePointer { pdg in
                        dUp.withUnsafeMutablePointer { pdu in
                            forEachRowRun([gLayout, uLayout, dhLayout, out]) { rows, offsets, _ in
                                tk_swiglu_backward(
                                    pg + offsets[0], gLayout.rowStride, pu + offsets[1], uLayout.rowStride,
                                    pdh + offsets[2], dhLayout.rowStride, pdg + offsets[3], out.rowStride,
                                    pdu + offsets[3], out.rowStride, rows, gLayout.cols)
                            }
                        }
                    }
                }
            }
        }
        return (dGate, dUp)
    }
}

// MARK: exp

extension Kernels {
    /// `exp` elementwise with the kernels' own vectorised exp (about 1 ulp), for tests and
    /// diagnostics. Runs `tk_exp_f32`.
    static func exp(_ x: Tensor) -> Tensor {
        let input = x.contiguous()
        var y = Tensor(unfilled: x.shape)
        input.withUnsafePointer { px in
            y.withUnsafeMutablePointer { py in tk_exp_f32(px, py, x.count) }
        }
        return y
    }
}
