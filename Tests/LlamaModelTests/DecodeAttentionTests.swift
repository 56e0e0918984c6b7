import Testing
import TensorCore
@testable import LlamaModel

@Suite struct DecodeAttentionTests {
    /// The decoding steps' attention kernel gives `attend`'s output: grouped heads, awkward head
    /// (even, as rotary needs) dimensions and cache lengths, and keys and values as rows of a larger cache.
    @Test(arguments: [(8, 4, 32), (6, 2, 10), (3, 3, 16), (4, 1, 34)])
    func equalsAttend(heads: Int, keyValueHeads: Int, headDimension: Int) {
        let config = LlamaConfig(
            vocabularySize: 8, hiddenSize: heads * headDimension, intermediateSize: 8, layerCount: 1, headCount: heads,
            keyValueHeadCount: keyValueHeads, headDimension: headDimension, maxPositions: 300)
        // attend reads only the configuration.
        let none = Tensor(zeros: [1, 1])
        let model = LlamaModel(config: config, weights: LlamaWeights(embedding: none, layers: [], finalNorm: none, head: none))
        var random = SeededRandom(seed: UInt64(heads * 100 + headDimension))
        let width = keyValueHeads * headDimension
        for seen in [1, 7, 33, 257] {
            for queries in 1...min(3, seen) {
                let cacheKeys = random.normalTensor(shape: [seen + 4, width]), cacheValues = random.normalTensor(shape: [seen + 4, width])
                let (keys, values) = (cacheKeys.slice(0, 0..<seen), cacheValues.slice(0, 0..<seen))
                let q = random.normalTensor(shape: [queries, heads * headDimension + 3]).slice(1, 0..<heads * headDimension)
                let expected = model.attend(queries: q, keys: keys, values: values).output
                let actual = Kernels.decodeAttention(
                    queries: q, keys: keys, values: values, heads: heads, keyValueHeads: keyValueHeads,
                    scale: 1 / Float(headDimension).squareRoot())
                let error = zip(actual.scalars, expected.scalars).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? 0
                #expect(actual.shape == expected.shape)
                #expect(error <= 1e-5, "seen \(seen), queries \(queries): worst error \(error)")
            }
        }
    }
}
