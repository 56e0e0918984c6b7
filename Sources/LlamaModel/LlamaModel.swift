import Foundation
import TensorCore

/// Keys and values of every layer for the positions seen so far, for incremental decoding.
public struct KVCache: Sendable {
    /// Per layer, [capacity, keyValueHeads * headDimension]; rows 0..<count hold positions 0..<count.
    var keys: [Tensor]
    var values: [Tensor]
    public private(set) var count = 0
    public let capacity: Int

    public init(config: LlamaConfig, capacity: Int? = nil) {
        let rows = capacity ?? config.maxPositions
        self.capacity = rows
        let width = config.keyValueHeadCount * config.headDimension
        keys = (0..<config.layerCount).map { _ in Tensor(zeros: [rows, width]) }
        values = keys
    }

    mutating func append(layer: Int, keys newKeys: Tensor, values newValues: Tensor) {
        keys[layer].replaceRows(startingAt: count, with: newKeys)
        values[layer].replaceRows(startingAt: count, with: newValues)
    }

    mutating func advance(by tokens: Int) { count += tokens }

    /// A cache of no layers, only to stand in for a moved one.
    static let empty = KVCache(keys: [], values: [], capacity: 0)

    private init(keys: [Tensor], values: [Tensor], capacity: Int) {
        self.keys = keys
        self.values = values
        self.capacity = capacity
    }
}

/// transformers' `LlamaForCausalLM` in inference: embedding, decoder layers (RMSNorm, grouped-query
/// attention with rotary embedding, SwiGLU MLP), final norm and LM head, in Float32.
public struct LlamaModel: Sendable {
    public let config: LlamaConfig
    public var weights: LlamaWeights
    public let rotary: RotaryTable

    public init(config: LlamaConfig, weights: LlamaWeights) {
        self.config = config
        self.weights = weights
        rotary = config.rotaryTable
    }

    /// Loads a Hugging Face model folder: `config.json` and `model.safetensors` (or a sharded index).
    public init(folder: String) throws(ModelLoadError) {
        let config = try LlamaConfig(contentsOf: folder + "/config.json")
        self.init(config: config, weights: try LlamaWeights(folder: folder, config: config))
    }

    /// Logits [tokens.count, vocabulary] for `tokens` following the `cache.count` positions already
    /// in `cache`, whose keys and values this call appends; with `adapter`, through its LoRA layers.
    public func forward(_ tokens: [Int], cache: inout KVCache, adapter: LoRAAdapter? = nil) throws(ModelInputError) -> Tensor {
        var caches = [KVCache.empty]
        swap(&caches[0], &cache)  // the cache moves into the array and back, never shared, so never copied
        defer { swap(&caches[0], &cache) }
        return try forward(streams: [tokens], caches: &caches, adapters: [adapter])
    }

    /// Several independent streams in one pass (LoRAX / Punica style): stream i's `tokens[i]` follow
    /// `caches[i]` through `adapters[i]` (nil: the base). Each linear layer runs the base weight once
    /// over the rows of every stream, then each stream's own LoRA on its rows; attention stays within
    /// a stream. Returns the logits of all rows, stream after stream.
    public func forward(
        streams tokens: [[Int]], caches: inout [KVCache], adapters: [LoRAAdapter?]
    ) throws(ModelInputError) -> Tensor {
        precondition(tokens.count == caches.count && tokens.count == adapters.count, "one cache and one adapter per stream")
        for adapter in adapters {
            precondition(adapter == nil || adapter!.pairs.count == config.layerCount, "adapter has \(adapter!.pairs.count) layers, model \(config.layerCount)")
        }
        var spans: [Range<Int>] = [], positions: [Int32] = []
        for (stream, streamTokens) in tokens.enumerated() {
            let start = caches[stream].count
            guard !streamTokens.isEmpty else { throw .emptyInput }
            guard start + streamTokens.count <= caches[stream].capacity else {
                throw .contextOverflow(positions: start + streamTokens.count, capacity: caches[stream].capacity)
            }
            if let (position, token) = streamTokens.enumerated().first(where: { $0.element < 0 || $0.element >= config.vocabularySize }) {
                throw .tokenOutOfRange(position: position, token: token, vocabularySize: config.vocabularySize)
            }
            let first = spans.last?.upperBound ?? 0
            spans.append(first..<first + streamTokens.count)
            positions += (start..<start + streamTokens.count).map { Int32($0) }
        }
        let rows = PackedRows(spans: spans, positions: positions)
        let lora = LoRARows(segments: zip(spans, adapters).compactMap { span, adapter in adapter.map { (span, $0) } })
        var x = Embedding.forward(table: weights.embedding, tokens: tokens.flatMap { $0 })
        for layer in 0..<config.layerCount {
            x = layerForward(x, layer: layer, rows: rows, lora: lora, caches: &caches, saving: false).output
        }
        for (stream, span) in spans.enumerated() { caches[stream].advance(by: span.count) }
        return headForward(x, saving: false).logits
    }

    /// Logits for a whole sequence from an empty cache.
    public func logits(_ tokens: [Int], adapter: LoRAAdapter? = nil) throws(ModelInputError) -> Tensor {
        var cache = KVCache(config: config, capacity: tokens.count)
        return try forward(tokens, cache: &cache, adapter: adapter)
    }

    /// `x Wᵀ` for a Hugging Face linear weight W [out, in].
    public func linear(_ x: Tensor, _ weight: Tensor) -> Tensor {
        var y = Tensor(unfilled: [x.shape[0], weight.shape[0]])
        Self.linear(x, weight, into: &y)
        return y
    }

    /// `y = alpha x Wᵀ + beta y` for a Hugging Face linear weight W [out, in].
    static func linear(_ x: Tensor, _ weight: Tensor, into y: inout Tensor, alpha: Float = 1, beta: Float = 0) {
        // A few rows (decoding steps, short prompts) are bound by reading W: the skinny kernel is 1.5-3x
        // faster than sgemm from 2 to 16 rows and splits even one row across threads (docs/PERFORMANCE.md).
        if x.shape[0] <= Kernels.skinnyRowLimit {
            Kernels.skinnyProduct(x, transposedWeight: weight, into: &y, alpha: alpha, beta: beta)
        } else {
            BLAS.gemm(x, weight.transposed(), into: &y, alpha: alpha, beta: beta)
        }
    }

    /// Causal grouped-query attention of `queries` ([t, heads * d], rotated) over `keys` and `values`
    /// ([seen, kvHeads * d], rotated keys; the queries are the last t of the seen positions).
    /// Returns the output [t, heads * d] and the attention probabilities [kvHeads, group, t, seen].
    public func attend(queries: Tensor, keys: Tensor, values: Tensor) -> (output: Tensor, probabilities: Tensor) {
        let (output, probabilities) = Attention.forward(queries: queries, keys: keys, values: values, config: config, saving: true)
        return (output, probabilities!)
    }
}

/// Input that a model cannot run on.
public enum ModelInputError: Error, Equatable, CustomStringConvertible {
    case emptyInput
    case tokenOutOfRange(position: Int, token: Int, vocabularySize: Int)
    case contextOverflow(positions: Int, capacity: Int)

    public var description: String {
        switch self {
        case .emptyInput: "no input tokens"
        case .tokenOutOfRange(let position, let token, let vocabularySize):
            "token \(token) at position \(position) is outside the vocabulary 0..<\(vocabularySize)"
        case .contextOverflow(let positions, let capacity):
            "\(positions) positions exceed the context of \(capacity)"
        }
    }
}
