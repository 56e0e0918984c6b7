import LlamaModel
import TensorCore

/// A training example: tokens and, per position, the label it is scored against or `ignoreIndex`.
/// As in transformers, position t's logits predict `labels[t + 1]`.
public struct TrainingSequence: Sendable, Equatable {
    public var tokens: [Int]
    public var labels: [Int]

    public static let ignoreIndex = -100

    public init(tokens: [Int], labels: [Int]) {
        precondition(tokens.count == labels.count, "\(tokens.count) tokens but \(labels.count) labels")
        self.tokens = tokens
        self.labels = labels
    }

    /// Every token scored (a text record).
    public init(text tokens: [Int]) { self.init(tokens: tokens, labels: tokens) }

    /// Only the completion scored (a prompt/completion record).
    public init(prompt: [Int], completion: [Int]) {
        self.init(tokens: prompt + completion, labels: Array(repeating: Self.ignoreIndex, count: prompt.count) + completion)
    }

    /// The target of each position's logits: the next label, or the ignore index at the end.
    var shiftedTargets: [Int32] { (labels.dropFirst() + [Self.ignoreIndex]).map { Int32($0) } }
}

/// Which parameters get gradients.
public enum GradientMode: Sendable {
    /// The base is frozen; gradients for the adapter's A and B only.
    case lora(LoRAAdapter)
    /// Every base parameter (pretraining the built-in model).
    case full
}

/// Gradients of every parameter kind; nil where the mode computes none, and `lora` nil when a LoRA
/// trace was asked for (the traces carry what per-example gradients need; the batch sum is not formed).
public struct Gradients: Sendable {
    /// Same layout as the adapter's pairs: dL/dA and dL/dB.
    public var lora: [[LoRATarget: LoRAPair]]?
    public var full: LlamaWeights?
}

/// Loss and gradients of a batch.
public struct BackwardResult: Sendable {
    /// Each sequence's mean cross-entropy over its scored tokens (0 when it scores none).
    public var sequenceLosses: [Float]
    /// Scored tokens per sequence.
    public var tokenCounts: [Int]
    /// The batch loss: the mean over all scored tokens of the batch, as transformers computes it.
    public var loss: Float
    public var gradients: Gradients
}

/// What one adapted linear layer saw in a backward pass, rows in packed-batch order: enough for
/// per-example LoRA gradients (attribution), dL/dA_i = s Ĝ_iᵀ X_i and dL/dB_i = s Δ_iᵀ U_i over sequence i's rows.
public struct LoRALinearTrace: Sendable {
    public var layer: Int
    public var target: LoRATarget
    /// X, the layer's input [rows, in].
    public var input: Tensor
    /// U = X Aᵀ [rows, rank].
    public var down: Tensor
    /// Δ = dL/dy [rows, out].
    public var outputGradient: Tensor
    /// Ĝ = Δ B [rows, rank].
    public var outputGradientB: Tensor
}

/// How each sequence's token losses are weighted into the loss that is differentiated.
public enum LossReduction: Sendable {
    /// Mean over all scored tokens of the batch (transformers' training loss).
    case tokenMean
    /// Sum over sequences of each sequence's own mean (per-example losses, for attribution).
    case sumOfSequenceMeans
}

extension LlamaModel {
    /// Loss and gradients for `batch`, by a hand-written backward pass. Sequences are packed one after
    /// another; each attends only to itself, so the result equals running them one by one.
    /// `dropout` (LoRA mode, training only) drops out the input of each lora_A, as PEFT does.
    public func backward(
        _ batch: [TrainingSequence], mode: GradientMode, reduction: LossReduction = .tokenMean,
        dropout: LoRADropout? = nil, loraTrace: ((LoRALinearTrace) -> Void)? = nil
    ) throws(ModelInputError) -> BackwardResult {
        var pass = try TrainingPass(model: self, batch: batch, mode: mode)
        pass.dropout = dropout
        pass.loraTrace = loraTrace
        return pass.run(reduction: reduction)
    }
}

/// The training pass: the model's forward, keeping what the backward needs, the loss, then the backward, each
/// layer by LlamaModel's `layerForward` and `layerBackward` here.
struct TrainingPass {
    let model: LlamaModel
    let config: LlamaConfig
    let batch: [TrainingSequence]
    let adapter: LoRAAdapter?
    let full: Bool
    /// Each sequence's rows in the packed [rows, ...] matrices, and each row's position.
    let rows: PackedRows
    /// Sees each adapted linear layer's backward (per-example gradients).
    var loraTrace: ((LoRALinearTrace) -> Void)?
    var dropout: LoRADropout?

    init(model: LlamaModel, batch: [TrainingSequence], mode: GradientMode) throws(ModelInputError) {
        self.model = model
        config = model.config
        self.batch = batch
        switch mode {
        case .lora(let adapter):
            precondition(adapter.pairs.count == config.layerCount, "adapter does not fit the model")
            self.adapter = adapter
            full = false
        case .full:
            adapter = nil
            full = true
        }
        var spans: [Range<Int>] = [], positions: [Int32] = []
        for sequence in batch {
            guard !sequence.tokens.isEmpty else { throw .emptyInput }
            guard sequence.tokens.count <= config.maxPositions else {
                throw .contextOverflow(positions: sequence.tokens.count, capacity: config.maxPositions)
            }
            for (position, token) in sequence.tokens.enumerated() where token < 0 || token >= config.vocabularySize {
                throw .tokenOutOfRange(position: position, token: token, vocabularySize: config.vocabularySize)
            }
            let start = spans.last?.upperBound ?? 0
            spans.append(start..<start + sequence.tokens.count)
            positions += (0..<sequence.tokens.count).map { Int32($0) }
        }
        guard !spans.isEmpty else { throw .emptyInput }
        rows = PackedRows(spans: spans, positions: positions)
    }

    mutating func run(reduction: LossReduction) -> BackwardResult {
        let tokens = batch.flatMap(\.tokens)

        // Forward, keeping activations.
        let lora = LoRARows(adapter: adapter, rows: rows.count, dropout: dropout)
        var noCaches: [KVCache] = []
        var x = Embedding.forward(table: model.weights.embedding, tokens: tokens)
        var saved: [LayerActivations] = []
        for layer in 0..<config.layerCount {
            let (output, activations) = model.layerForward(x, layer: layer, rows: rows, lora: lora, caches: &noCaches, saving: true)
            saved.append(activations!)
            x = output
        }
        let (logits, headSaved) = model.headForward(x, saving: true)

        // Loss.
        let targets = batch.flatMap(\.shiftedTargets)
        let entropy = try! Kernels.crossEntropy(logits: logits, targets: targets)  // tokens were checked
        var sequenceLosses: [Float] = [], tokenCounts: [Int] = [], rowWeights = [Float](repeating: 0, count: rows.count)
        let totalCount = max(entropy.count, 1)
        for span in rows.spans {
            let count = span.filter { targets[$0] != Int32(TrainingSequence.ignoreIndex) }.count
            let sum = span.reduce(Float(0)) { $0 + entropy.losses[$1] }
            tokenCounts.append(count)
            sequenceLosses.append(count > 0 ? sum / Float(count) : 0)
            for row in span {
                switch reduction {
                case .tokenMean: rowWeights[row] = 1 / Float(totalCount)
                case .sumOfSequenceMeans: rowWeights[row] = count > 0 ? 1 / Float(count) : 0
                }
            }
        }

        // Backward.
        var gradients = Gradients(
            lora: loraTrace != nil ? nil : adapter.map { $0.pairs.map { $0.mapValues { LoRAPair(a: Tensor(zeros: $0.a.shape), b: Tensor(zeros: $0.b.shape)) } } },
            full: full ? Self.zeros(like: model.weights) : nil)
        let dLogits = try! Kernels.crossEntropyBackward(
            logits: logits, targets: targets, logsumexp: entropy.logsumexp,
            rowGradients: Tensor(shape: [rows.count], scalars: rowWeights))
        var dx = headBackward(dLogits, saved: headSaved!, gradients: &gradients)
        for layer in stride(from: config.layerCount - 1, through: 0, by: -1) {
            // In LoRA mode nothing below layer 0's projections has parameters: no input gradient there.
            guard let dInput = layerBackward(dx, layer: layer, saved: saved[layer], needsInputGradient: full || layer > 0, gradients: &gradients) else { break }
            dx = dInput
        }
        if full {
            Embedding.backward(dx, tokens: tokens, tableGradient: &gradients.full!.embedding)
        }
        return BackwardResult(
            sequenceLosses: sequenceLosses, tokenCounts: tokenCounts,
            loss: entropy.count > 0 ? entropy.losses.scalars.reduce(0, +) / Float(entropy.count) : 0,
            gradients: gradients)
    }

    /// dL/dx of the final norm and head, adding their gradients in full mode (the head's into the embedding's
    /// when they are tied).
    func headBackward(_ dLogits: Tensor, saved: HeadActivations, gradients: inout Gradients) -> Tensor {
        let weights = model.weights
        let headInput = LinearActivations(input: saved.normed)
        let dNormed = Linear.backward(dLogits, weight: weights.head, saved: headInput)!
        guard full else {
            return Kernels.rmsNormBackward(input: saved.input, weight: weights.finalNorm, rstd: saved.rstd, gradient: dNormed)
        }
        // Tied embeddings: the head gradient starts the embedding gradient, which the embedding backward adds to.
        if config.tieWordEmbeddings {
            Linear.accumulateWeightGradient(dLogits, saved: headInput, into: &gradients.full!.embedding)
        } else {
            Linear.accumulateWeightGradient(dLogits, saved: headInput, into: &gradients.full!.head)
        }
        return Kernels.rmsNormBackward(
            input: saved.input, weight: weights.finalNorm, rstd: saved.rstd, gradient: dNormed,
            accumulatingWeightGradient: &gradients.full!.finalNorm)
    }

    /// dL/d(input) of decoder layer `layer` from dL/d(output), adding the layer's parameter gradients (full mode,
    /// LoRA's, or LoRA traces); nil without `needsInputGradient`.
    func layerBackward(
        _ dOutput: Tensor, layer: Int, saved: LayerActivations, needsInputGradient: Bool, gradients: inout Gradients
    ) -> Tensor? {
        let w = model.weights.layers[layer]
        func back(_ dy: Tensor, _ target: LoRATarget, needsInputGradient: Bool = true) -> Tensor? {
            let linear = saved.linear[target]!
            if full {
                gradients.full!.layers[layer].update(target) { Linear.accumulateWeightGradient(dy, saved: linear, into: &$0) }
                if w.bias(target) != nil { Linear.accumulateBiasGradient(dy, into: &gradients.full!.layers[layer].biases[target]!) }
            }
            let lora = adapter?.pairs[layer][target].map { LoRALinear(layer: layer, target: target, pair: $0, scaling: adapter!.config.scaling) }
            return Linear.backward(dy, weight: w[target], saved: linear, needsInputGradient: needsInputGradient, lora: lora) { trace in
                if let loraTrace { loraTrace(trace) } else { trace.accumulate(into: &gradients.lora![layer][target]!, scaling: lora!.scaling) }
            }
        }
        func normBackward(_ dy: Tensor, input: Tensor, weight: Tensor, rstd: Tensor, gradient: WritableKeyPath<LlamaLayerWeights, Tensor>) -> Tensor {
            guard full else { return Kernels.rmsNormBackward(input: input, weight: weight, rstd: rstd, gradient: dy) }
            return Kernels.rmsNormBackward(
                input: input, weight: weight, rstd: rstd, gradient: dy, accumulatingWeightGradient: &gradients.full!.layers[layer][keyPath: gradient])
        }

        // MLP.
        let dNormed2 = MLP.backward(dOutput, saved: saved.mlp) { back($0, $1)! }
        let dMiddle = adding(
            normBackward(dNormed2, input: saved.middle, weight: w.postAttentionNorm, rstd: saved.middleRstd, gradient: \.postAttentionNorm),
            dOutput)

        // Attention.
        let dAttended = back(dMiddle, .output)!
        let (heads, kvHeads, d) = (config.headCount, config.keyValueHeadCount, config.headDimension)
        let single = rows.spans.count == 1
        // Every span's rows are replaced below.
        var dq = Tensor(unfilled: [rows.count, heads * d])
        var dk = Tensor(unfilled: [rows.count, kvHeads * d]), dv = Tensor(unfilled: [rows.count, kvHeads * d])
        for (index, span) in rows.spans.enumerated() {
            let (dqSpan, dkSpan, dvSpan) = Attention.backward(
                dAttended.slice(0, span), queries: saved.query.slice(0, span), keys: saved.key.slice(0, span),
                values: saved.value.slice(0, span), probabilities: saved.probabilities[index], config: config)
            if single {
                (dq, dk, dv) = (dqSpan, dkSpan, dvSpan)
            } else {
                dq.replaceRows(startingAt: span.lowerBound, with: dqSpan)
                dk.replaceRows(startingAt: span.lowerBound, with: dkSpan)
                dv.replaceRows(startingAt: span.lowerBound, with: dvSpan)
            }
        }
        Kernels.rotaryBackward(&dq, positions: rows.positions, table: model.rotary)
        Kernels.rotaryBackward(&dk, positions: rows.positions, table: model.rotary)
        func headNormBackward(_ dy: Tensor, _ norm: HeadNormActivations?, weight: Tensor?, gradient: WritableKeyPath<LlamaLayerWeights, Tensor?>) -> Tensor {
            guard let norm, let weight else { return dy }
            guard full else { return Kernels.headRMSNormBackward(input: norm.input, weight: weight, rstd: norm.rstd, gradient: dy, headDimension: d) }
            return Kernels.headRMSNormBackward(
                input: norm.input, weight: weight, rstd: norm.rstd, gradient: dy, headDimension: d,
                accumulatingWeightGradient: &gradients.full!.layers[layer][keyPath: gradient]!)
        }
        dq = headNormBackward(dq, saved.queryNorm, weight: w.queryNorm, gradient: \.queryNorm)
        dk = headNormBackward(dk, saved.keyNorm, weight: w.keyNorm, gradient: \.keyNorm)
        guard needsInputGradient else {
            for (gradient, target) in [(dq, LoRATarget.query), (dk, .key), (dv, .value)] {
                _ = back(gradient, target, needsInputGradient: false)
            }
            return nil
        }
        let dNormed1 = adding(adding(back(dq, .query)!, back(dk, .key)!), back(dv, .value)!)
        return adding(
            normBackward(dNormed1, input: saved.input, weight: w.inputNorm, rstd: saved.inputRstd, gradient: \.inputNorm),
            dMiddle)
    }

    static func zeros(like weights: LlamaWeights) -> LlamaWeights {
        var zero = weights
        zero.embedding = Tensor(zeros: weights.embedding.shape)
        zero.finalNorm = Tensor(zeros: weights.finalNorm.shape)
        zero.head = Tensor(zeros: weights.head.shape)
        for layer in zero.layers.indices {
            for target in LoRATarget.allCases { zero.layers[layer].update(target) { $0 = Tensor(zeros: $0.shape) } }
            zero.layers[layer].inputNorm = Tensor(zeros: weights.layers[layer].inputNorm.shape)
            zero.layers[layer].postAttentionNorm = Tensor(zeros: weights.layers[layer].postAttentionNorm.shape)
            zero.layers[layer].biases = weights.layers[layer].biases.mapValues { Tensor(zeros: $0.shape) }
            zero.layers[layer].queryNorm = weights.layers[layer].queryNorm.map { Tensor(zeros: $0.shape) }
            zero.layers[layer].keyNorm = weights.layers[layer].keyNorm.map { Tensor(zeros: $0.shape) }
        }
        return zero
    }
}
