import LlamaModel
import TensorCore
import Training

/// Per-example gradients of the training loss (each record's mean cross-entropy over its scored
/// tokens) with respect to every LoRA matrix, projected as `layout` says: one row per record.
///
/// Records are packed into a few backward passes; LoRA's structure gives each record's gradient from
/// what the pass saw, with no per-record backward: for a layer with input X, output gradient Δ,
/// U = X Aᵀ, Ĝ = Δ B and scale s, record i's gradients are dL/dA = s Ĝ_iᵀ X_i and dL/dB = s Δ_iᵀ U_i
/// over its rows i.
public struct GradientExtractor: Sendable {
    public let model: LlamaModel
    public let adapter: LoRAAdapter
    public let layout: GradientLayout
    /// Tokens packed into one backward pass (a longer record gets a pass of its own).
    public var tokensPerPass: Int
    /// 512: on the reference model, passes of 256-512 tokens ran 1.3x faster than passes of 2,048,
    /// their activations staying in cache, and balance better across concurrent passes.
    public static let defaultTokensPerPass = 512
    /// Backward passes computed at once, each on its own thread; the BLAS thread count is the caller's
    /// (`index` sets one each: a small model's passes scale better side by side with one BLAS thread each
    /// than one at a time with many, docs/PERFORMANCE.md).
    public var concurrentPasses: Int

    public init(model: LlamaModel, adapter: LoRAAdapter, layout: GradientLayout, tokensPerPass: Int = GradientExtractor.defaultTokensPerPass, concurrentPasses: Int = 1) {
        precondition(concurrentPasses >= 1, "at least one pass at a time, got \(concurrentPasses)")
        self.model = model
        self.adapter = adapter
        self.layout = layout
        self.tokensPerPass = tokensPerPass
        self.concurrentPasses = concurrentPasses
    }

    /// [sequences.count, layout.width]: row i is sequence i's (projected) gradient, blocks in layout order.
    /// `progress` sees the count of sequences done after each pass.
    public func rows(for sequences: [TrainingSequence], progress: (Int) -> Void = { _ in }) throws(ModelInputError) -> Tensor {
        let passes = Self.passes(tokenCounts: sequences.map(\.tokens.count), tokensPerPass: tokensPerPass)
        var rows = Tensor(unfilled: [sequences.count, layout.width])  // every pass replaces its rows
        let extract: @Sendable (Int) throws(ModelInputError) -> [Tensor] = { [self] pass throws(ModelInputError) in
            try blockRows(for: Array(sequences[passes[pass]]))
        }
        try orderedConcurrentWork(count: passes.count, workers: concurrentPasses, work: extract) { (pass: Int, blocks: [Tensor]) throws(ModelInputError) in
            for (block, columns) in zip(blocks, layout.blocks.map(\.columns)) {
                rows.replaceBlock(row: passes[pass].lowerBound, column: columns.lowerBound, with: block)
            }
            progress(passes[pass].upperBound)
        }
        return rows
    }

    /// Consecutive sequences packed greedily into passes of at most `tokensPerPass` tokens.
    static func passes(tokenCounts: [Int], tokensPerPass: Int) -> [Range<Int>] {
        var passes: [Range<Int>] = [], start = 0
        while start < tokenCounts.count {
            var end = start + 1, tokens = tokenCounts[start]
            while end < tokenCounts.count && tokens + tokenCounts[end] <= tokensPerPass {
                tokens += tokenCounts[end]
                end += 1
            }
            passes.append(start..<end)
            start = end
        }
        return passes
    }

    /// Per block, [batch.count, block width], from one packed backward pass.
    func blockRows(for batch: [TrainingSequence]) throws(ModelInputError) -> [Tensor] {
        var spans: [Range<Int>] = [], row = 0
        for sequence in batch {
            spans.append(row..<row + sequence.tokens.count)
            row += sequence.tokens.count
        }
        var firstBlock: [Int: Int] = [:]
        for (index, block) in layout.blocks.enumerated() where block.matrix == .a {
            firstBlock[Self.key(block.layer, block.target)] = index
        }
        let scaling = adapter.config.scaling
        var results = [Tensor](repeating: Tensor(zeros: [0]), count: layout.blocks.count)
        // Each trace yields both matrices of a pair: lora_A from (Ĝ, X), lora_B from (Δ, U).
        _ = try model.backward(batch, mode: .lora(adapter), reduction: .sumOfSequenceMeans) { trace in
            let a = firstBlock[Self.key(trace.layer, trace.target)]!
            results[a] = project(block: a, left: trace.outputGradientB, right: trace.input, spans: spans, scaling: scaling)
            results[a + 1] = project(block: a + 1, left: trace.outputGradient, right: trace.down, spans: spans, scaling: scaling)
        }
        return results
    }

    static func key(_ layer: Int, _ target: LoRATarget) -> Int {
        layer * LoRATarget.allCases.count + LoRATarget.allCases.firstIndex(of: target)!
    }

    /// Rows of block `index`, whose per-example gradient is s left_iᵀ right_i.
    func project(block index: Int, left: Tensor, right: Tensor, spans: [Range<Int>], scaling: Float) -> Tensor {
        switch layout.projections[index] {
        case .identity:
            return Self.outerProducts(left, right, spans: spans, scaling: scaling)
        case .dense(let projection):
            return BLAS.matmul(Self.outerProducts(left, right, spans: spans, scaling: scaling), projection, transposeB: true)
        case .factored(let output, let input):
            // P_out (s leftᵢᵀ rightᵢ) P_inᵀ = s (left P_outᵀ)ᵢᵀ (right P_inᵀ)ᵢ: both sides projected over all rows at once.
            return Self.outerProducts(
                BLAS.matmul(left, output, transposeB: true), BLAS.matmul(right, input, transposeB: true),
                spans: spans, scaling: scaling)
        }
    }

    /// Row i: the row-major flattening of s left[spans[i]]ᵀ right[spans[i]].
    static func outerProducts(_ left: Tensor, _ right: Tensor, spans: [Range<Int>], scaling: Float) -> Tensor {
        let (p, q) = (left.shape[1], right.shape[1])
        var rows = Tensor(unfilled: [spans.count, p * q])  // each example replaces its row
        for (example, span) in spans.enumerated() {
            var gradient = Tensor(unfilled: [p, q])  // beta 0
            BLAS.gemm(left.slice(0, span).transposed(), right.slice(0, span), into: &gradient, alpha: scaling)
            rows.replaceRows(startingAt: example, with: gradient.reshaped([1, p * q]))
        }
        return rows
    }
}

extension GradientExtractor {
    /// An upper estimate of the bytes one backward pass of `tokens` tokens holds, its records at most
    /// `recordTokens` long: per layer and token what the layer forward saves (norm inputs and outputs, q, k, v,
    /// the attention output, the MLP's gate, up and product, and the LoRA products) and the attention
    /// probabilities (heads x record length); per token the logits and their gradient. The measured figure on
    /// the real-scale model is about three quarters of it (docs/PERFORMANCE.md, "Real scale: memory").
    public static func passBytes(config: LlamaConfig, tokens: Int, recordTokens: Int) -> Double {
        let queryWidth = Double(config.headCount * config.headDimension)
        let keyValueWidth = Double(config.keyValueHeadCount * config.headDimension)
        let perLayer = 6 * Double(config.hiddenSize) + 2 * queryWidth + 4 * keyValueWidth
            + 4 * Double(config.intermediateSize) + Double(config.headCount) * Double(recordTokens)
        let perToken = Double(config.layerCount) * perLayer + 3 * Double(config.vocabularySize)
        return Double(tokens) * perToken * Double(MemoryLayout<Float>.size)
    }
}
