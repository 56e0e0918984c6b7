import TensorCore

extension LlamaWeights {
    /// Seeded random weights for `config`: every matrix normal(0, `standardDeviation`), the norms ones (as
    /// transformers initialises them) or uniform in `normRange`, the head tied when the config ties it. Speed
    /// does not depend on weights, so benchmarks use these; tests use them for models of awkward shapes.
    /// Drawn in the order embedding, then per layer input norm, q, k, v, o, post-attention norm, gate, up,
    /// down, then final norm and head.
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
        let layers = (0..<config.layerCount).map { _ in
            LlamaLayerWeights(
                inputNorm: norm(h), query: matrix(q, h), key: matrix(kv, h), value: matrix(kv, h), output: matrix(h, q),
                postAttentionNorm: norm(h), gate: matrix(i, h), up: matrix(i, h), down: matrix(h, i))
        }
        let finalNorm = norm(h)
        self.init(embedding: embedding, layers: layers, finalNorm: finalNorm, head: config.tieWordEmbeddings ? embedding : matrix(v, h))
    }
}
