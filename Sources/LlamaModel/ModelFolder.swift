import Foundation
import TensorCore

extension LlamaWeights {
    /// The tensors under transformers' names, in its modules' order; no `lm_head.weight` when the config
    /// ties it to the embedding. Biases and q/k norms are listed where these weights hold them.
    public func named(config: LlamaConfig) -> [(name: String, tensor: Tensor)] {
        var tensors: [(String, Tensor)] = [("model.embed_tokens.weight", embedding)]
        for (index, layer) in layers.enumerated() {
            let prefix = "model.layers.\(index)."
            func linear(_ target: LoRATarget) {
                tensors.append((prefix + target.modulePath + ".weight", layer[target]))
                if let bias = layer.bias(target) { tensors.append((prefix + target.modulePath + ".bias", bias)) }
            }
            tensors.append((prefix + "input_layernorm.weight", layer.inputNorm))
            for target in [LoRATarget.query, .key, .value, .output] { linear(target) }
            if let queryNorm = layer.queryNorm { tensors.append((prefix + "self_attn.q_norm.weight", queryNorm)) }
            if let keyNorm = layer.keyNorm { tensors.append((prefix + "self_attn.k_norm.weight", keyNorm)) }
            tensors.append((prefix + "post_attention_layernorm.weight", layer.postAttentionNorm))
            for target in [LoRATarget.gate, .up, .down] { linear(target) }
        }
        tensors.append(("model.norm.weight", finalNorm))
        if !config.tieWordEmbeddings { tensors.append(("lm_head.weight", head)) }
        return tensors
    }

    /// transformers' `LlamaPreTrainedModel._init_weights`: linear and embedding weights from
    /// N(0, `standardDeviation`), biases zero, norm weights one. Seeded, so the same on every machine.
    public init(initializing config: LlamaConfig, seed: UInt64, standardDeviation: Float = 0.02) {
        var random = SeededRandom(seed: seed)
        var tensors: [String: Tensor] = [:]
        for (name, shape) in Self.expectedShapes(config) {
            tensors[name] = shape.count == 2
                ? random.normalTensor(shape: shape, standardDeviation: standardDeviation)
                : Tensor(shape: shape, repeating: name.hasSuffix(".bias") ? 0 : 1)
        }
        self.init(named: tensors, config: config)
    }
}

extension LlamaConfig {
    /// `config.json` as transformers' config class of the family writes it (SiLU; the family's biases,
    /// q/k norm, sliding window and rope scaling). A Llama's biases are written as `attention_bias` (any of
    /// q, k, v, o) and `mlp_bias` (any of gate, up, down); Qwen2's are implied by the family.
    public func huggingFaceJSON(dtype: SafeTensors.Dtype) -> [String: Any] {
        var json: [String: Any] = [
            "architectures": [family.architecture], "model_type": family.rawValue, "hidden_act": "silu",
            "vocab_size": vocabularySize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": layerCount, "num_attention_heads": headCount, "num_key_value_heads": keyValueHeadCount,
            "head_dim": headDimension, "max_position_embeddings": maxPositions, "rms_norm_eps": Double("\(rmsNormEpsilon)")!,
            "rope_theta": ropeTheta, "tie_word_embeddings": tieWordEmbeddings,
            "initializer_range": 0.02, "torch_dtype": Self.torchName(dtype),
        ]
        switch family {
        case .llama:
            json["attention_bias"] = attentionBias
            json["mlp_bias"] = !biasTargets.isDisjoint(with: [.gate, .up, .down])
        case .qwen3:
            json["attention_bias"] = attentionBias
            json["use_sliding_window"] = false
        case .qwen2:
            json["use_sliding_window"] = false
        case .mistral:
            json["sliding_window"] = slidingWindow ?? NSNull()
        }
        switch ropeScaling {
        case .none: break
        case .linear(let factor):
            json["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        case .llama3(let factor, let low, let high, let original):
            json["rope_scaling"] = [
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                "original_max_position_embeddings": original,
            ] as [String: Any]
        }
        if let bosTokenID { json["bos_token_id"] = bosTokenID }
        if eosTokenIDs.count == 1 { json["eos_token_id"] = eosTokenIDs[0] } else if !eosTokenIDs.isEmpty { json["eos_token_id"] = eosTokenIDs }
        return json
    }

    static func torchName(_ dtype: SafeTensors.Dtype) -> String {
        switch dtype {
        case .f16: "float16"
        case .bf16: "bfloat16"
        default: "float32"
        }
    }
}

extension LlamaModel {
    /// Writes a Hugging Face model folder that this loader and transformers both load: `config.json`,
    /// `model.safetensors` in `dtype` (F32, F16 or BF16), and `generation_config.json` with the
    /// config's bos/eos ids plus `extra` generation fields (e.g. `pad_token_id`).
    public func save(to folder: String, dtype: SafeTensors.Dtype = .f32, extraConfig: [String: Any] = [:]) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try SafeTensors.write(weights.named(config: config), metadata: ["format": "pt"], to: folder + "/model.safetensors", dtype: dtype)
        var json = config.huggingFaceJSON(dtype: dtype)
        json.merge(extraConfig) { _, new in new }
        try Self.writeJSON(json, to: folder + "/config.json")
        var generation: [String: Any] = [:]
        for key in ["bos_token_id", "eos_token_id", "pad_token_id"] { generation[key] = json[key] }
        try Self.writeJSON(generation, to: folder + "/generation_config.json")
    }

    static func writeJSON(_ object: [String: Any], to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
