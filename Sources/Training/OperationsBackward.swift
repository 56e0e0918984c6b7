import LlamaModel
import TensorCore

// The backward halves of LlamaModel's operations (Operations.swift there), each beside its forward's name.

extension Embedding {
    /// Adds each row's gradient into the table rows of its token.
    static func backward(_ gradient: Tensor, tokens: [Int], tableGradient: inout Tensor) {
        tableGradient.addRows(gradient, at: tokens)
    }
}

/// The LoRA pair a linear layer ran through, for its backward.
struct LoRALinear {
    var layer: Int
    var target: LoRATarget
    var pair: LoRAPair
    var scaling: Float
}

extension Linear {
    /// dL/dx of y = x Wᵀ + s (x' Aᵀ) Bᵀ with x' = x ⊙ mask (nil without `needsInputGradient`: nothing below has
    /// parameters). With `lora`, what its gradients need goes to `trace`: dL/dA = s Ĝᵀ X', dL/dB = s Δᵀ U.
    static func backward(
        _ dy: Tensor, weight: Tensor, saved: LinearActivations, needsInputGradient: Bool = true, lora: LoRALinear? = nil,
        trace: (LoRALinearTrace) -> Void = { _ in }
    ) -> Tensor? {
        var dx = needsInputGradient ? BLAS.matmul(dy, weight) : nil
        if let lora, let down = saved.down {
            let dyB = BLAS.matmul(dy, lora.pair.b)  // [rows, rank]
            let loraInput = saved.dropoutMask.map { Kernels.multiply(saved.input, $0) } ?? saved.input
            if dx != nil {
                if let mask = saved.dropoutMask {
                    BLAS.axpy(lora.scaling, Kernels.multiply(BLAS.matmul(dyB, lora.pair.a), mask), &dx!)
                } else {
                    BLAS.gemm(dyB, lora.pair.a, into: &dx!, alpha: lora.scaling, beta: 1)
                }
            }
            trace(LoRALinearTrace(
                layer: lora.layer, target: lora.target, input: loraInput, down: down, outputGradient: dy, outputGradientB: dyB))
        }
        return dx
    }

    /// Adds dL/db = the column sums of dy into `biasGradient` (full mode).
    static func accumulateBiasGradient(_ dy: Tensor, into biasGradient: inout Tensor) {
        Kernels.addBiasBackward(gradient: dy, accumulatingBiasGradient: &biasGradient)
    }

    /// Adds dL/dW = dyᵀ x into `weightGradient` (full mode).
    static func accumulateWeightGradient(_ dy: Tensor, saved: LinearActivations, into weightGradient: inout Tensor) {
        BLAS.gemm(dy.transposed(), saved.input, into: &weightGradient, beta: 1)
    }
}

extension LoRALinearTrace {
    /// Adds this trace's batch gradients into `gradient`: dA += s Ĝᵀ X', dB += s Δᵀ U.
    func accumulate(into gradient: inout LoRAPair, scaling: Float) {
        BLAS.gemm(outputGradientB.transposed(), input, into: &gradient.a, alpha: scaling, beta: 1)
        BLAS.gemm(outputGradient.transposed(), down, into: &gradient.b, alpha: scaling, beta: 1)
    }
}

extension Attention {
    /// The gradients of one span's queries, keys and values ([t, heads * d], [t, kvHeads * d] twice), from the
    /// output gradient and what the forward saw: its queries, keys, values and probabilities [kvHeads, group, t, t]
    /// (a span attending to itself, as training runs).
    static func backward(
        _ dOutput: Tensor, queries: Tensor, keys: Tensor, values: Tensor, probabilities: Tensor, config: LlamaConfig
    ) -> (query: Tensor, key: Tensor, value: Tensor) {
        let (heads, kvHeads, group, d) = (config.headCount, config.keyValueHeadCount, config.groupSize, config.headDimension)
        let t = queries.shape[0]
        let scale = 1 / Float(d).squareRoot()
        let dOut = dOutput.viewing(shape: [kvHeads, group, t, d], strides: [group * d, d, dOutput.strides[0], 1])
        let vT = values.viewing(shape: [kvHeads, group, d, t], strides: [d, 0, 1, values.strides[0]])
        var dScores = Tensor(unfilled: [kvHeads, group, t, t])
        BLAS.batchedGEMM(dOut, vT, into: &dScores)
        Kernels.softmaxBackward(output: probabilities, gradientInPlace: &dScores, mask: config.attentionMask(queryOffset: 0))
        // dQ = dS K · scale, written head by head into a [t, heads * d] matrix.
        let kh = keys.viewing(shape: [kvHeads, group, t, d], strides: [d, 0, keys.strides[0], 1])
        var dq = Tensor(unfilled: [t, heads * d]).viewing(shape: [kvHeads, group, t, d], strides: [group * d, d, heads * d, 1])
        BLAS.batchedGEMM(dScores, kh, into: &dq, alpha: scale)
        // dK = Σ_group dSᵀ Q · scale and dV = Σ_group Pᵀ dO, one GEMM per key head and group member,
        // accumulated in place: strided views, no copies.
        var dk = Tensor(unfilled: [t, kvHeads * d]).viewing(shape: [kvHeads, t, d], strides: [d, kvHeads * d, 1])
        var dv = Tensor(unfilled: [t, kvHeads * d]).viewing(shape: [kvHeads, t, d], strides: [d, kvHeads * d, 1])
        for member in 0..<group {
            let byKeyHead = [group * t * t, t, 1], memberOffset = member * t * t
            let dScoresT = dScores.viewing(shape: [kvHeads, t, t], strides: byKeyHead, offset: memberOffset).transposed()
            let probabilitiesT = probabilities.viewing(shape: [kvHeads, t, t], strides: byKeyHead, offset: memberOffset).transposed()
            let q = queries.viewing(shape: [kvHeads, t, d], strides: [group * d, queries.strides[0], 1], offset: member * d)
            let dO = dOutput.viewing(shape: [kvHeads, t, d], strides: [group * d, dOutput.strides[0], 1], offset: member * d)
            let beta: Float = member == 0 ? 0 : 1
            BLAS.batchedGEMM(dScoresT, q, into: &dk, alpha: scale, beta: beta)
            BLAS.batchedGEMM(probabilitiesT, dO, into: &dv, beta: beta)
        }
        return (
            dq.viewing(shape: [t, heads * d], strides: [heads * d, 1]),
            dk.viewing(shape: [t, kvHeads * d], strides: [kvHeads * d, 1]),
            dv.viewing(shape: [t, kvHeads * d], strides: [kvHeads * d, 1]))
    }
}

extension MLP {
    /// dL/dx of down(silu(gate(x)) ⊙ up(x)), through `back` (the layer's linear backwards, which add their
    /// parameter gradients).
    static func backward(_ dOutput: Tensor, saved: MLPActivations, back: (Tensor, LoRATarget) -> Tensor) -> Tensor {
        let dHidden = back(dOutput, .down)
        let (dGate, dUp) = Kernels.swigluBackward(gate: saved.gate, up: saved.up, gradient: dHidden)
        return adding(back(dGate, .gate), back(dUp, .up))
    }
}

/// `a + b` in `a`'s storage (pass the temporary first): where the gradients of two branches meet.
func adding(_ a: consuming Tensor, _ b: Tensor) -> Tensor {
    var sum = a
    BLAS.axpy(1, b, &sum)
    return sum
}
