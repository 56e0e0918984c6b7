import TensorCore

// The forward halves of the model's operations, llm.c style: each op is a namespace whose `forward` is the one
// implementation that inference and training both run, returning what its backward needs when asked to save.
// The backward halves live in Training (Operations+Backward.swift), beside the gradients they produce.
// RMSNorm, rotary embedding, SwiGLU and cross-entropy are single kernels with their own backward in TensorCore.

/// The rows of one pass: sequences (training) or streams (inference) packed one after another, each a span of
/// rows that attends only to itself (and, in inference, to its cache), with each row's position.
package struct PackedRows: Sendable {
    package var spans: [Range<Int>]
    package var positions: [Int32]

    package init(spans: [Range<Int>], positions: [Int32]) {
        self.spans = spans
        self.positions = positions
    }

    package var count: Int { spans.last?.upperBound ?? 0 }
}

/// Which LoRA adapter adapts which rows: one per stream (inference, Punica style: the base weight runs once over
/// every row, each adapter on its own rows) or one over every row (training), with training's dropout of the
/// input of each lora_A.
package struct LoRARows {
    package var segments: [(rows: Range<Int>, adapter: LoRAAdapter)]
    package var dropout: LoRADropout?

    package init(segments: [(rows: Range<Int>, adapter: LoRAAdapter)] = [], dropout: LoRADropout? = nil) {
        self.segments = segments
        self.dropout = dropout
    }

    /// One adapter (or none) over every row.
    package init(adapter: LoRAAdapter?, rows: Int, dropout: LoRADropout?) {
        self.init(segments: adapter.map { [(0..<rows, $0)] } ?? [], dropout: dropout)
    }
}

// MARK: Embedding

/// Token embedding: the rows of the table at the tokens.
package enum Embedding {
    package static func forward(table: Tensor, tokens: [Int]) -> Tensor {
        Tensor.gatherRows(of: table, at: tokens)
    }
}

// MARK: Linear

/// What a linear layer's backward needs: its input and, with LoRA, x' Aᵀ and the dropout mask of x'.
package struct LinearActivations: Sendable {
    package var input: Tensor
    package var down: Tensor?
    package var dropoutMask: Tensor?

    package init(input: Tensor, down: Tensor? = nil, dropoutMask: Tensor? = nil) {
        self.input = input
        self.down = down
        self.dropoutMask = dropoutMask
    }
}

/// A Hugging Face linear layer y = x Wᵀ (W [out, in]), with LoRA's s (x' Aᵀ) Bᵀ added on each adapted segment's
/// rows, x' = x ⊙ dropout mask in training (PEFT drops out the input of lora_A only, never of the base weight).
package enum Linear {
    /// A layer no adapter targets (the LM head).
    package static func forward(_ x: Tensor, weight: Tensor) -> Tensor {
        var y = Tensor(unfilled: [x.shape[0], weight.shape[0]])
        LlamaModel.linear(x, weight, into: &y)
        return y
    }

    /// Layer `target` of decoder layer `layer`, with its `bias` if it has one (added before LoRA's delta, as PEFT
    /// adds the delta to the base layer's output); with `saving`, what its backward needs, which only a LoRA
    /// segment over every row (training) gives in full.
    package static func forward(
        _ x: Tensor, weight: Tensor, bias: Tensor?, layer: Int, target: LoRATarget, lora: LoRARows, saving: Bool
    ) -> (output: Tensor, saved: LinearActivations?) {
        var y = forward(x, weight: weight)
        if let bias { Kernels.addBias(&y, bias: bias) }
        var down: Tensor?, mask: Tensor?
        for (rows, adapter) in lora.segments where adapter.pairs[layer][target] != nil {
            if rows.count == x.shape[0] {
                mask = lora.dropout.flatMap { $0.mask(layer: layer, target: target, shape: x.shape) }
                down = adapter.addDelta(x, into: &y, layer: layer, target: target, dropoutMask: mask)
            } else {
                precondition(!saving, "a pass that saves activations has one adapter over every row")
                var part = y.slice(0, rows)
                adapter.addDelta(x.slice(0, rows), into: &part, layer: layer, target: target)
                y.replaceRows(startingAt: rows.lowerBound, with: part)
            }
        }
        return (y, saving ? LinearActivations(input: x, down: down, dropoutMask: mask) : nil)
    }
}

// MARK: Attention

/// Causal grouped-query attention of one span.
package enum Attention {
    /// The most query rows of a span that take `Kernels.decodeAttention` when nothing is saved.
    package static let decodeRowLimit = 8

    /// `queries` ([t, heads * d], rotated) are the last t of the positions of `keys` and `values`
    /// ([seen, kvHeads * d], rotated keys). Returns the output [t, heads * d] and, with `saving`, the attention
    /// probabilities [kvHeads, group, t, seen]; without, a few query rows (decoding steps) skip the per-head
    /// BLAS calls and the probabilities. The mask is causal, within the config's sliding window if it has one.
    package static func forward(
        queries: Tensor, keys: Tensor, values: Tensor, config: LlamaConfig, saving: Bool
    ) -> (output: Tensor, probabilities: Tensor?) {
        let (heads, kvHeads, group, d) = (config.headCount, config.keyValueHeadCount, config.groupSize, config.headDimension)
        let (tokens, seen) = (queries.shape[0], keys.shape[0])
        let scale = 1 / Float(d).squareRoot()
        if !saving && tokens <= decodeRowLimit {
            let output = Kernels.decodeAttention(
                queries: queries, keys: keys, values: values, heads: heads, keyValueHeads: kvHeads, scale: scale,
                window: config.slidingWindow)
            return (output, nil)
        }
        // Heads as batches [kvHeads, group, ...]: query head h uses key/value head h / group through a zero stride.
        let q = queries.viewing(shape: [kvHeads, group, tokens, d], strides: [group * d, d, queries.strides[0], 1])
        let kT = keys.viewing(shape: [kvHeads, group, d, seen], strides: [d, 0, 1, keys.strides[0]])
        let v = values.viewing(shape: [kvHeads, group, seen, d], strides: [d, 0, values.strides[0], 1])
        var probabilities = Tensor(unfilled: [kvHeads, group, tokens, seen])
        BLAS.batchedGEMM(q, kT, into: &probabilities, alpha: scale)
        Kernels.softmax(inPlace: &probabilities, mask: config.attentionMask(queryOffset: seen - tokens))
        // Head h's output lands in columns h*d..<(h+1)*d of a [tokens, heads * d] matrix.
        var output = Tensor(unfilled: [tokens, heads * d])
            .viewing(shape: [kvHeads, group, tokens, d], strides: [group * d, d, heads * d, 1])
        BLAS.batchedGEMM(probabilities, v, into: &output)
        return (output.viewing(shape: [tokens, heads * d], strides: [heads * d, 1]), probabilities)
    }
}

// MARK: SwiGLU MLP

/// What the MLP's backward needs besides its linear layers' activations.
package struct MLPActivations: Sendable {
    package var gate: Tensor
    package var up: Tensor
}

/// down(silu(gate(x)) ⊙ up(x)), through `project` (the layer's linear layers, with their LoRA).
package enum MLP {
    package static func forward(
        _ x: Tensor, saving: Bool, project: (Tensor, LoRATarget) -> Tensor
    ) -> (output: Tensor, saved: MLPActivations?) {
        let gate = project(x, .gate), up = project(x, .up)
        let output = project(Kernels.swiglu(gate: gate, up: up), .down)
        return (output, saving ? MLPActivations(gate: gate, up: up) : nil)
    }
}

// MARK: Residual

/// The residual stream's add: `branch + x`, in the branch's storage (a temporary), so x stays as it is for
/// whoever saved it. Its backward passes the gradient to both operands unchanged.
package enum Residual {
    package static func forward(_ branch: consuming Tensor, _ x: Tensor) -> Tensor {
        var sum = branch
        BLAS.axpy(1, x, &sum)
        return sum
    }
}

// MARK: Final norm and head

/// What the head's backward needs.
package struct HeadActivations: Sendable {
    /// The last layer's output.
    package var input: Tensor
    package var normed: Tensor
    package var rstd: Tensor
}

extension LlamaModel {
    /// The final RMSNorm and the LM head: logits [rows, vocabulary]; with `saving`, what the backward needs.
    package func headForward(_ x: Tensor, saving: Bool) -> (logits: Tensor, saved: HeadActivations?) {
        let (normed, rstd) = Kernels.rmsNorm(x, weight: weights.finalNorm, epsilon: config.rmsNormEpsilon)
        let logits = Linear.forward(normed, weight: weights.head)
        return (logits, saving ? HeadActivations(input: x, normed: normed, rstd: rstd) : nil)
    }
}
