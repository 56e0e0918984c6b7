import Foundation
import TensorCore

/// The weights of one decoder layer, in Hugging Face's layout: linear weights are [out, in], biases [out].
public struct LlamaLayerWeights: Sendable {
    public init(
        inputNorm: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor,
        postAttentionNorm: Tensor, gate: Tensor, up: Tensor, down: Tensor,
        biases: [LoRATarget: Tensor] = [:], queryNorm: Tensor? = nil, keyNorm: Tensor? = nil
    ) {
        (self.inputNorm, self.query, self.key, self.value, self.output) = (inputNorm, query, key, value, output)
        (self.postAttentionNorm, self.gate, self.up, self.down) = (postAttentionNorm, gate, up, down)
        (self.biases, self.queryNorm, self.keyNorm) = (biases, queryNorm, keyNorm)
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
    /// The biases of the linear layers that have one (`LlamaConfig.biasTargets`), each [out].
    public var biases: [LoRATarget: Tensor]
    /// Qwen3's per-head RMSNorm weights of queries and keys (`self_attn.q_norm.weight`, `k_norm.weight`),
    /// [headDimension]; nil for the other families.
    public var queryNorm: Tensor?
    public var keyNorm: Tensor?

    /// `target`'s bias, nil when its linear layer has none.
    public func bias(_ target: LoRATarget) -> Tensor? { biases[target] }
}

/// All weights of a `LlamaForCausalLM`, used in place from the memory-mapped safetensors where they are F32
/// and Float-aligned (no second copy); F32 tensors the file leaves misaligned for Float are copied
/// (`alignmentCopyBytes` counts them), F16 and BF16 converted.
public struct LlamaWeights: Sendable {
    /// Bytes of F32 tensors copied at load because the file placed them off a 4-byte boundary (0 for
    /// files that transformers or safetensors write; their 8-byte alignment suffices). 0 unless loaded
    /// from a folder.
    public var alignmentCopyBytes = 0
    /// Bytes of tensors used in place from the mapped files. 0 unless loaded from a folder.
    public var mappedBytes = 0

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

    /// Tensor names and shapes, as transformers names them, in its modules' order.
    static func expectedShapes(_ config: LlamaConfig) -> [(name: String, shape: [Int])] {
        let (h, i, v) = (config.hiddenSize, config.intermediateSize, config.vocabularySize)
        let qWidth = config.headCount * config.headDimension
        let kvWidth = config.keyValueHeadCount * config.headDimension
        var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [v, h])]
        for layer in 0..<config.layerCount {
            let prefix = "model.layers.\(layer)."
            shapes.append((prefix + "input_layernorm.weight", [h]))
            let linears: [(LoRATarget, [Int])] = [
                (.query, [qWidth, h]), (.key, [kvWidth, h]), (.value, [kvWidth, h]), (.output, [h, qWidth]),
            ]
            for (target, shape) in linears {
                shapes.append((prefix + target.modulePath + ".weight", shape))
                if config.hasBias(target) { shapes.append((prefix + target.modulePath + ".bias", [shape[0]])) }
            }
            if config.queryKeyNorm {
                shapes += [(prefix + "self_attn.q_norm.weight", [config.headDimension]), (prefix + "self_attn.k_norm.weight", [config.headDimension])]
            }
            shapes.append((prefix + "post_attention_layernorm.weight", [h]))
            for (target, shape) in [(LoRATarget.gate, [i, h]), (.up, [i, h]), (.down, [h, i])] {
                shapes.append((prefix + target.modulePath + ".weight", shape))
                if config.hasBias(target) { shapes.append((prefix + target.modulePath + ".bias", [shape[0]])) }
            }
        }
        shapes.append(("model.norm.weight", [h]))
        if !config.tieWordEmbeddings { shapes.append(("lm_head.weight", [v, h])) }
        return shapes
    }

    /// Whether a tensor the config does not use may be ignored: rotary buffers that old checkpoints
    /// saved, and the head of a tied checkpoint (transformers ties it to the embedding too). Any other
    /// would change the computation if ignored (a bias, a norm), so loading refuses it.
    static func isIgnorable(_ name: String, config: LlamaConfig) -> Bool {
        name.hasSuffix(".rotary_emb.inv_freq") || (config.tieWordEmbeddings && name == "lm_head.weight")
    }

    /// Loads `model.safetensors`, or the shards that `model.safetensors.index.json` lists, from `folder`.
    public init(folder: String, config: LlamaConfig) throws(ModelLoadError) {
        let files = try Self.weightFiles(folder: folder)
        let expected = Self.expectedShapes(config)
        let expectedNames = Set(expected.map(\.name))
        if let unexpected = files.keys.sorted().first(where: { !expectedNames.contains($0) && !Self.isIgnorable($0, config: config) }) {
            throw ModelLoadError(
                path: files[unexpected]!.path,
                "tensor \"\(unexpected)\" is not used by a \(config.family.architecture) with this config (check attention_bias, mlp_bias, model_type)")
        }
        var tensors: [String: Tensor] = [:]
        var (copiedBytes, mappedBytes) = (0, 0)
        for (name, shape) in expected {
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
            // Used in place: the skinny product aligns its loads of W itself (docs/PERFORMANCE.md, "Real scale: memory").
            let bytes = tensor.count * MemoryLayout<Float>.size
            if tensor.isBorrowed {
                mappedBytes += bytes
            } else if (try? file.info(name).dtype) == .f32 {
                copiedBytes += bytes
            }
            tensors[name] = tensor
        }
        self.init(named: tensors, config: config)
        (alignmentCopyBytes, self.mappedBytes) = (copiedBytes, mappedBytes)
    }

    /// The weights from tensors named as transformers names them; every name `named(config:)` lists must be there.
    public init(named tensors: [String: Tensor], config: LlamaConfig) {
        embedding = tensors["model.embed_tokens.weight"]!
        layers = (0..<config.layerCount).map { layer in
            let prefix = "model.layers.\(layer)."
            var biases: [LoRATarget: Tensor] = [:]
            for target in config.biasTargets { biases[target] = tensors[prefix + target.modulePath + ".bias"]! }
            return LlamaLayerWeights(
                inputNorm: tensors[prefix + "input_layernorm.weight"]!,
                query: tensors[prefix + "self_attn.q_proj.weight"]!,
                key: tensors[prefix + "self_attn.k_proj.weight"]!,
                value: tensors[prefix + "self_attn.v_proj.weight"]!,
                output: tensors[prefix + "self_attn.o_proj.weight"]!,
                postAttentionNorm: tensors[prefix + "post_attention_layernorm.weight"]!,
                gate: tensors[prefix + "mlp.gate_proj.weight"]!,
                up: tensors[prefix + "mlp.up_proj.weight"]!,
                down: tensors[prefix + "mlp.down_proj.weight"]!,
                biases: biases,
                queryNorm: config.queryKeyNorm ? tensors[prefix + "self_attn.q_norm.weight"]! : nil,
                keyNorm: config.queryKeyNorm ? tensors[prefix + "self_attn.k_norm.weight"]! : nil)
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
