import Foundation
import TensorCore

/// The weights of one decoder layer, in Hugging Face's layout: linear weights are [out, in].
public struct LlamaLayerWeights: Sendable {
    public init(
        inputNorm: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor,
        postAttentionNorm: Tensor, gate: Tensor, up: Tensor, down: Tensor
    ) {
        (self.inputNorm, self.query, self.key, self.value, self.output) = (inputNorm, query, key, value, output)
        (self.postAttentionNorm, self.gate, self.up, self.down) = (postAttentionNorm, gate, up, down)
    }

    public var inputNorm: Tensor
    public var query: Tensor
    public var key: Tensor
    public var value: Tensor
    public var output: Tensor
    public var postAttentionNorm: Tensor
    public var gate: Tensor
    public var up: Tensor
    public var down: Tensor
}

/// All weights of a `LlamaForCausalLM`, memory-mapped from safetensors where they are F32 (matrices that the
/// file does not place on a 64-byte boundary are copied to aligned memory).
public struct LlamaWeights: Sendable {
    public var embedding: Tensor
    public var layers: [LlamaLayerWeights]
    public var finalNorm: Tensor
    /// The LM head, [vocabulary, hidden]; the embedding itself when the config ties them.
    public var head: Tensor

    public init(embedding: Tensor, layers: [LlamaLayerWeights], finalNorm: Tensor, head: Tensor) {
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.head = head
    }

    /// Tensor names and shapes, as transformers names them.
    static func expectedShapes(_ config: LlamaConfig) -> [(name: String, shape: [Int])] {
        let (h, i, v) = (config.hiddenSize, config.intermediateSize, config.vocabularySize)
        let qWidth = config.headCount * config.headDimension
        let kvWidth = config.keyValueHeadCount * config.headDimension
        var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [v, h])]
        for layer in 0..<config.layerCount {
            let prefix = "model.layers.\(layer)."
            shapes += [
                (prefix + "input_layernorm.weight", [h]),
                (prefix + "self_attn.q_proj.weight", [qWidth, h]),
                (prefix + "self_attn.k_proj.weight", [kvWidth, h]),
                (prefix + "self_attn.v_proj.weight", [kvWidth, h]),
                (prefix + "self_attn.o_proj.weight", [h, qWidth]),
                (prefix + "post_attention_layernorm.weight", [h]),
                (prefix + "mlp.gate_proj.weight", [i, h]),
                (prefix + "mlp.up_proj.weight", [i, h]),
                (prefix + "mlp.down_proj.weight", [h, i]),
            ]
        }
        shapes.append(("model.norm.weight", [h]))
        if !config.tieWordEmbeddings { shapes.append(("lm_head.weight", [v, h])) }
        return shapes
    }

    /// Loads `model.safetensors`, or the shards that `model.safetensors.index.json` lists, from `folder`.
    public init(folder: String, config: LlamaConfig) throws(ModelLoadError) {
        let files = try Self.weightFiles(folder: folder)
        var tensors: [String: Tensor] = [:]
        for (name, shape) in Self.expectedShapes(config) {
            guard let file = files[name] else {
                throw ModelLoadError(path: folder, "tensor \"\(name)\" is missing")
            }
            let tensor: Tensor
            do {
                tensor = try file.tensor(named: name)
            } catch {
                throw ModelLoadError(path: file.path, error.description)
            }
            guard tensor.shape == shape else {
                throw ModelLoadError(path: file.path, "tensor \"\(name)\" has shape \(tensor.shape), config needs \(shape)")
            }
            // Matrices are streamed row by row when decoding: aligned copies of those the file leaves unaligned.
            tensors[name] = shape.count == 2 ? tensor.cacheLineAligned() : tensor
        }
        self.init(named: tensors, config: config)
    }

    /// The weights from tensors named as transformers names them; every name `named(config:)` lists must be there.
    public init(named tensors: [String: Tensor], config: LlamaConfig) {
        embedding = tensors["model.embed_tokens.weight"]!
        layers = (0..<config.layerCount).map { layer in
            let prefix = "model.layers.\(layer)."
            return LlamaLayerWeights(
                inputNorm: tensors[prefix + "input_layernorm.weight"]!,
                query: tensors[prefix + "self_attn.q_proj.weight"]!,
                key: tensors[prefix + "self_attn.k_proj.weight"]!,
                value: tensors[prefix + "self_attn.v_proj.weight"]!,
                output: tensors[prefix + "self_attn.o_proj.weight"]!,
                postAttentionNorm: tensors[prefix + "post_attention_layernorm.weight"]!,
                gate: tensors[prefix + "mlp.gate_proj.weight"]!,
                up: tensors[prefix + "mlp.up_proj.weight"]!,
                down: tensors[prefix + "mlp.down_proj.weight"]!)
        }
        finalNorm = tensors["model.norm.weight"]!
        head = config.tieWordEmbeddings ? embedding : tensors["lm_head.weight"]!
    }

    /// Each tensor name's file: one `model.safetensors`, or the index's weight map.
    static func weightFiles(folder: String) throws(ModelLoadError) -> [String: SafeTensorsFile] {
        let single = folder + "/model.safetensors"
        let index = folder + "/model.safetensors.index.json"
        func open(_ path: String) throws(ModelLoadError) -> SafeTensorsFile {
            do { return try SafeTensorsFile(path: path) } catch { throw ModelLoadError(path: path, error.description) }
        }
        if FileManager.default.fileExists(atPath: single) {
            let file = try open(single)
            return Dictionary(uniqueKeysWithValues: file.names.map { ($0, file) })
        }
        guard FileManager.default.fileExists(atPath: index) else {
            throw ModelLoadError(path: folder, "no model.safetensors or model.safetensors.index.json")
        }
        let map: [String: String]
        do {
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: index)))
            guard let weightMap = (object as? [String: Any])?["weight_map"] as? [String: String] else {
                throw ModelLoadError(path: index, "field \"weight_map\" is missing or not an object of strings")
            }
            map = weightMap
        } catch let error as ModelLoadError {
            throw error
        } catch {
            throw ModelLoadError(path: index, "cannot read: \(error.localizedDescription)")
        }
        var shards: [String: SafeTensorsFile] = [:]
        var files: [String: SafeTensorsFile] = [:]
        for (name, shard) in map {
            guard !shard.contains("/") else { throw ModelLoadError(path: index, "shard \"\(shard)\" for \"\(name)\" is outside the folder") }
            if shards[shard] == nil { shards[shard] = try open(folder + "/" + shard) }
            files[name] = shards[shard]
        }
        return files
    }
}
