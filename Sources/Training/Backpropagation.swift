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

/// One forward pass that keeps what the backward pass needs, then the backward pass.
struct TrainingPass {
    let model: LlamaModel
    let config: LlamaConfig
    let batch: [TrainingSequence]
    let adapter: LoRAAdapter?
    let full: Bool
    /// First row of each sequence in the packed [rows, ...] matrices.
    let starts: [Int]
    let rows: Int
    let positions: [Int32]
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
        var starts: [Int] = [], positions: [Int32] = [], rows = 0
        for sequence in batch {
            guard !sequence.tokens.isEmpty else { throw .emptyInput }
            guard sequence.tokens.count <= config.maxPositions else {
                throw .contextOverflow(positions: sequence.tokens.count, capacity: config.maxPositions)
            }
            for (position, token) in sequence.tokens.enumerated() where token < 0 || token >= config.vocabularySize {
                throw .tokenOutOfRange(position: position, token: token, vocabularySize: config.vocabularySize)
            }
            starts.append(rows)
            positions += (0..<sequence.tokens.count).map { Int32($0) }
            rows += sequence.tokens.count
        }
        guard rows > 0 else { throw .emptyInput }
        self.starts = starts
        self.rows = rows
        self.positions = positions
    }

    // MARK: Linear layers

    /// What a linear layer's backward needs: its input and, with LoRA, x' Aᵀ and the dropout mask of x'.
    struct LinearCache {
        var input: Tensor
        var down: Tensor?
        var dropoutMask: Tensor?
    }

    func linearForward(_ x: Tensor, _ weight: Tensor, layer: Int?, target: LoRATarget?) -> (Tensor, LinearCache) {
        if let layer, let target, adapter?.pairs[layer][target] != nil {
            let mask = dropout.flatMap { $0.mask(layer: layer, target: target, shape: x.shape) }
            let (y, down) = adapter!.apply(x, weight: weight, layer: layer, target: target, dropoutMask: mask)!
            return (y, LinearCache(input: x, down: down, dropoutMask: mask))
        }
        return (model.linear(x, weight), LinearCache(input: x))
    }

    /// dL/dx of y = x Wᵀ + s (x' Aᵀ) Bᵀ with x' = x ⊙ mask, accumulating dW (full mode) or dA, dB (LoRA);
    /// nil without `needsInputGradient` (nothing below has parameters).
    func linearBackward(
        _ dy: Tensor, _ weight: Tensor, _ cache: LinearCache, layer: Int?, target: LoRATarget?,
        needsInputGradient: Bool = true, weightGradient: inout Tensor, gradients: inout Gradients
    ) -> Tensor? {
        var dx = needsInputGradient ? BLAS.matmul(dy, weight) : nil
        if full { BLAS.gemm(dy.transposed(), cache.input, into: &weightGradient, beta: 1) }
        if let layer, let target, let pair = adapter?.pairs[layer][target], let down = cache.down {
            let s = adapter!.config.scaling
            let dyB = BLAS.matmul(dy, pair.b)  // [rows, rank]
            let loraInput = cache.dropoutMask.map { Kernels.multiply(cache.input, $0) } ?? cache.input
            if dx != nil {
                if let mask = cache.dropoutMask {
                    BLAS.axpy(s, Kernels.multiply(BLAS.matmul(dyB, pair.a), mask), &dx!)
                } else {
                    BLAS.gemm(dyB, pair.a, into: &dx!, alpha: s, beta: 1)
                }
            }
            if let loraTrace {
                loraTrace(LoRALinearTrace(layer: layer, target: target, input: loraInput, down: down, outputGradient: dy, outputGradientB: dyB))
            } else {
                BLAS.gemm(dyB.transposed(), loraInput, into: &gradients.lora![layer][target]!.a, alpha: s, beta: 1)
                BLAS.gemm(dy.transposed(), down, into: &gradients.lora![layer][target]!.b, alpha: s, beta: 1)
            }
        }
        return dx
    }

    // MARK: Layers

    struct LayerCache {
        var input: Tensor
        var rstd1: Tensor
        var query: Tensor, key: Tensor, value: Tensor
        var linear: [LoRATarget: LinearCache] = [:]
        var probabilities: [Tensor]
        var middle: Tensor
        var rstd2: Tensor
        var gate: Tensor, up: Tensor
    }

    mutating func run(reduction: LossReduction) -> BackwardResult {
        let weights = model.weights
        let eps = config.rmsNormEpsilon
        let (heads, kvHeads, group, d) = (config.headCount, config.keyValueHeadCount, config.groupSize, config.headDimension)
        let scale = 1 / Float(d).squareRoot()

        // Forward, keeping activations.
        var x = Tensor.gatherRows(of: weights.embedding, at: batch.flatMap(\.tokens))
        var caches: [LayerCache] = []
        for (layer, w) in weights.layers.enumerated() {
            let (normed, rstd1) = Kernels.rmsNorm(x, weight: w.inputNorm, epsilon: eps)
            var linear: [LoRATarget: LinearCache] = [:]
            func project(_ input: Tensor, _ target: LoRATarget) -> Tensor {
                let (y, cache) = linearForward(input, w[target], layer: layer, target: target)
                linear[target] = cache
                return y
            }
            var q = project(normed, .query), k = project(normed, .key)
            let v = project(normed, .value)
            Kernels.rotary(&q, positions: positions, table: model.rotary)
            Kernels.rotary(&k, positions: positions, table: model.rotary)
            var attended = Tensor(unfilled: [rows, heads * d])  // every sequence's rows replaced
            var probabilities: [Tensor] = []
            for (index, start) in starts.enumerated() {
                let t = batch[index].tokens.count
                let span = start..<start + t
                let (out, scores) = model.attend(queries: q.slice(0, span), keys: k.slice(0, span), values: v.slice(0, span))
                attended.replaceRows(startingAt: start, with: out)
                probabilities.append(scores)
            }
            let o = project(attended, .output)
            let middle = add(o, x)
            let (normed2, rstd2) = Kernels.rmsNorm(middle, weight: w.postAttentionNorm, epsilon: eps)
            let gate = project(normed2, .gate), up = project(normed2, .up)
            let down = project(Kernels.swiglu(gate: gate, up: up), .down)
            caches.append(LayerCache(
                input: x, rstd1: rstd1, query: q, key: k, value: v, linear: linear, probabilities: probabilities,
                middle: middle, rstd2: rstd2, gate: gate, up: up))
            x = add(down, middle)
        }
        let (finalNormed, finalRstd) = Kernels.rmsNorm(x, weight: weights.finalNorm, epsilon: eps)
        let (logits, headCache) = linearForward(finalNormed, weights.head, layer: nil, target: nil)

        // Loss.
        let targets = batch.flatMap(\.shiftedTargets)
        let entropy = try! Kernels.crossEntropy(logits: logits, targets: targets)  // tokens were checked
        var sequenceLosses: [Float] = [], tokenCounts: [Int] = [], rowWeights = [Float](repeating: 0, count: rows)
        let totalCount = max(entropy.count, 1)
        for (index, start) in starts.enumerated() {
            let span = start..<start + batch[index].tokens.count
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
            full: full ? Self.zeros(like: weights) : nil)
        var unusedWeightGradient = Tensor(zeros: [0])
        let dLogits = try! Kernels.crossEntropyBackward(
            logits: logits, targets: targets, logsumexp: entropy.logsumexp,
            rowGradients: Tensor(shape: [rows], scalars: rowWeights))
        var headGradient = full ? gradients.full!.head : unusedWeightGradient
        let dFinal = linearBackward(dLogits, weights.head, headCache, layer: nil, target: nil, weightGradient: &headGradient, gradients: &gradients)!
        var finalNormGradient = full ? gradients.full!.finalNorm : Tensor(zeros: weights.finalNorm.shape)
        var dx = Kernels.rmsNormBackward(
            input: x, weight: weights.finalNorm, rstd: finalRstd, gradient: dFinal, accumulatingWeightGradient: &finalNormGradient)
        if full {
            gradients.full!.finalNorm = finalNormGradient
            // Tied embeddings: the head gradient joins the embedding gradient below.
            if config.tieWordEmbeddings { gradients.full!.embedding = headGradient } else { gradients.full!.head = headGradient }
        }

        for layer in stride(from: config.layerCount - 1, through: 0, by: -1) {
            let w = weights.layers[layer], cache = caches[layer]
            var layerGradient = full ? gradients.full!.layers[layer] : nil
            // In LoRA mode nothing below layer 0's projections has parameters: no input gradient there.
            let needsInputGradient = full || layer > 0
            func back(_ dy: Tensor, _ target: LoRATarget, needsInputGradient: Bool = true) -> Tensor? {
                guard full else {
                    return linearBackward(
                        dy, w[target], cache.linear[target]!, layer: layer, target: target, needsInputGradient: needsInputGradient,
                        weightGradient: &unusedWeightGradient, gradients: &gradients)
                }
                var weightGradient = layerGradient![target]
                let dx = linearBackward(dy, w[target], cache.linear[target]!, layer: layer, target: target, weightGradient: &weightGradient, gradients: &gradients)
                layerGradient!.update(target) { $0 = weightGradient }
                return dx
            }
            // MLP.
            let dHidden = back(dx, .down)!
            let (dGate, dUp) = Kernels.swigluBackward(gate: cache.gate, up: cache.up, gradient: dHidden)
            let dNormed2 = add(back(dGate, .gate)!, back(dUp, .up)!)
            var norm2Gradient = full ? layerGradient!.postAttentionNorm : Tensor(zeros: w.postAttentionNorm.shape)
            let dMiddle = add(Kernels.rmsNormBackward(
                input: cache.middle, weight: w.postAttentionNorm, rstd: cache.rstd2, gradient: dNormed2,
                accumulatingWeightGradient: &norm2Gradient), dx)
            // Attention.
            let dAttended = back(dMiddle, .output)!
            // Every sequence's rows are replaced below.
            var dq = Tensor(unfilled: [rows, heads * d])
            var dk = Tensor(unfilled: [rows, kvHeads * d]), dv = Tensor(unfilled: [rows, kvHeads * d])
            for (index, start) in starts.enumerated() {
                let t = batch[index].tokens.count
                let span = start..<start + t
                let probabilities = cache.probabilities[index]
                let dOutSpan = dAttended.slice(0, span), querySpan = cache.query.slice(0, span)
                let dOut = dOutSpan.viewing(shape: [kvHeads, group, t, d], strides: [group * d, d, heads * d, 1])
                let vT = cache.value.slice(0, span).viewing(shape: [kvHeads, group, d, t], strides: [d, 0, 1, kvHeads * d])
                var dScores = Tensor(unfilled: [kvHeads, group, t, t])
                BLAS.batchedGEMM(dOut, vT, into: &dScores)
                Kernels.softmaxBackward(output: probabilities, gradientInPlace: &dScores, mask: .causal(queryOffset: 0))
                // dQ = dS K · scale, written head by head into a [t, heads * d] matrix.
                let kh = cache.key.slice(0, span).viewing(shape: [kvHeads, group, t, d], strides: [d, 0, kvHeads * d, 1])
                var dqSpan = Tensor(unfilled: [t, heads * d]).viewing(shape: [kvHeads, group, t, d], strides: [group * d, d, heads * d, 1])
                BLAS.batchedGEMM(dScores, kh, into: &dqSpan, alpha: scale)
                dq.replaceRows(startingAt: start, with: dqSpan.viewing(shape: [t, heads * d], strides: [heads * d, 1]))
                // dK = Σ_group dSᵀ Q · scale and dV = Σ_group Pᵀ dO, one GEMM per key head and group member,
                // accumulated in place: strided views, no copies.
                var dkSpan = Tensor(unfilled: [t, kvHeads * d]).viewing(shape: [kvHeads, t, d], strides: [d, kvHeads * d, 1])
                var dvSpan = Tensor(unfilled: [t, kvHeads * d]).viewing(shape: [kvHeads, t, d], strides: [d, kvHeads * d, 1])
                for member in 0..<group {
                    let byKeyHead = [group * t * t, t, 1], memberOffset = member * t * t
                    let dScoresT = dScores.viewing(shape: [kvHeads, t, t], strides: byKeyHead, offset: memberOffset).transposed()
                    let probabilitiesT = probabilities.viewing(shape: [kvHeads, t, t], strides: byKeyHead, offset: memberOffset).transposed()
                    let headRows = [group * d, heads * d, 1]
                    let q = querySpan.viewing(shape: [kvHeads, t, d], strides: headRows, offset: member * d)
                    let dO = dOutSpan.viewing(shape: [kvHeads, t, d], strides: headRows, offset: member * d)
                    let beta: Float = member == 0 ? 0 : 1
                    BLAS.batchedGEMM(dScoresT, q, into: &dkSpan, alpha: scale, beta: beta)
                    BLAS.batchedGEMM(probabilitiesT, dO, into: &dvSpan, beta: beta)
                }
                dk.replaceRows(startingAt: start, with: dkSpan.viewing(shape: [t, kvHeads * d], strides: [kvHeads * d, 1]))
                dv.replaceRows(startingAt: start, with: dvSpan.viewing(shape: [t, kvHeads * d], strides: [kvHeads * d, 1]))
            }
            Kernels.rotaryBackward(&dq, positions: positions, table: model.rotary)
            Kernels.rotaryBackward(&dk, positions: positions, table: model.rotary)
            guard needsInputGradient else {
                for (gradient, target) in [(dq, LoRATarget.query), (dk, .key), (dv, .value)] {
                    _ = back(gradient, target, needsInputGradient: false)
                }
                continue
            }
            let dNormed1 = add(add(back(dq, .query)!, back(dk, .key)!), back(dv, .value)!)
            var norm1Gradient = full ? layerGradient!.inputNorm : Tensor(zeros: w.inputNorm.shape)
            dx = add(Kernels.rmsNormBackward(
                input: cache.input, weight: w.inputNorm, rstd: cache.rstd1, gradient: dNormed1,
                accumulatingWeightGradient: &norm1Gradient), dMiddle)
            if full {
                layerGradient!.inputNorm = norm1Gradient
                layerGradient!.postAttentionNorm = norm2Gradient
                gradients.full!.layers[layer] = layerGradient!
            }
        }
        if full {
            gradients.full!.embedding.addRows(dx, at: batch.flatMap(\.tokens))
        }
        return BackwardResult(
            sequenceLosses: sequenceLosses, tokenCounts: tokenCounts,
            loss: entropy.count > 0 ? entropy.losses.scalars.reduce(0, +) / Float(entropy.count) : 0,
            gradients: gradients)
    }

    /// `a + b`, in `a`'s storage when `a` is a temporary (pass the fresh operand first).
    func add(_ a: consuming Tensor, _ b: Tensor) -> Tensor {
        var sum = a
        BLAS.axpy(1, b, &sum)
        return sum
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
        }
        return zero
    }
}
