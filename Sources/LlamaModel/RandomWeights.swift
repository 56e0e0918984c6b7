import TensorCore

extension LlamaWeights {
    /// Seeded random weights for `config`: every matrix normal(0, `standardDeviation`), the norms ones (as
    /// transformers initialises them) or uniform in `normRange`, the head tied when the config ties it. Speed
    /// does not depend on weights, so benchmarks use these; tests use them for models of awkward shapes.
    /// Drawn in the order embedding, then per layer input norm, q, k, v, o, post-attention norm, gate, up,
    /// down (then, where the config has them, the biases in q, k, v, o, gate, up, down order from
    /// N(0, `standardDeviation`) and the q and k norms as the other norms), then final norm and head.
    public init(random config: LlamaConfig, seed: UInt64, standardDeviation: Float = 0.02, normRange: Range<Float>? = nil) {
        var random = SeededRandom(seed: seed)
        func matrix(_ rows: Int, _ columns: Int) -> Tensor {
            random.normalTensor(shape: [rows, columns], standardDeviation: standardDeviation)
        }
        func norm(_ count: Int) -> Tensor {
            normRange.map { random.uniformTensor(shape: [count], in: $0) } ?? Tensor(shape: [count], repeating: 1)
        }
        let (h, i, v) = (config.hiddenSize, config.intermediateSize, config.vocabularySize)
        let (q, kv) = (config.headCount * config.headDimension, config.keyValueHeadCount * config.headDimension)
        let embedding = matrix(v, h)
        let widths: [LoRATarget: Int] = [.query: q, .key: kv, .value: kv, .output: h, .gate: i, .up: i, .down: h]
        let layers = (0..<config.layerCount).map { _ in
            var layer = LlamaLayerWeights(
                inputNorm: norm(h), query: matrix(q, h), key: matrix(kv, h), value: matrix(kv, h), output: matrix(h, q),
                postAttentionNorm: norm(h), gate: matrix(i, h), up: matrix(i, h), down: matrix(h, i))
            for target in LoRATarget.allCases where config.hasBias(target) {
                layer.biases[target] = random.normalTensor(shape: [widths[target]!], standardDeviation: standardDeviation)
            }
            if config.queryKeyNorm {
                layer.queryNorm = norm(config.headDimension)
                layer.keyNorm = norm(config.headDimension)
            }
            return layer
        }
        let finalNorm = norm(h)
        self.init(embedding: embedding, layers: layers, finalNorm: finalNorm, head: config.tieWordEmbeddings ? embedding : matrix(v, h))
    }
}
