import Foundation
import TensorCore

extension LlamaWeights {
    /// The tensors under transformers' names, in `model.safetensors` order; no `lm_head.weight` when
    /// the config ties it to the embedding.
    public func named(config: LlamaConfig) -> [(name: String, tensor: Tensor)] {
        var tensors: [(String, Tensor)] = [("model.embed_tokens.weight", embedding)]
        for (index, layer) in layers.enumerated() {
            let prefix = "model.layers.\(index)."
            tensors += [
                (prefix + "input_layernorm.weight", layer.inputNorm),
                (prefix + "self_attn.q_proj.weight", layer.query),
                (prefix + "self_attn.k_proj.weight", layer.key),
                (prefix + "self_attn.v_proj.weight", layer.value),
                (prefix + "self_attn.o_proj.weight", layer.output),
                (prefix + "post_attention_layernorm.weight", layer.postAttentionNorm),
                (prefix + "mlp.gate_proj.weight", layer.gate),
                (prefix + "mlp.up_proj.weight", layer.up),
                (prefix + "mlp.down_proj.weight", layer.down),
            ]
        }
        tensors.append(("model.norm.weight", finalNorm))
        if !config.tieWordEmbeddings { tensors.append(("lm_head.weight", head)) }
        return tensors
    }

    /// transformers' `LlamaPreTrainedModel._init_weights`: linear and embedding weights from
    /// N(0, `standardDeviation`), norm weights one. Seeded, so the same on every machine.
    public init(initializing config: LlamaConfig, seed: UInt64, standardDeviation: Float = 0.02) {
        var random = SeededRandom(seed: seed)
        var tensors: [String: Tensor] = [:]
        for (name, shape) in Self.expectedShapes(config) {
            tensors[name] = shape.count == 1
                ? Tensor(shape: shape, repeating: 1) : random.normalTensor(shape: shape, standardDeviation: standardDeviation)
        }
        self.init(named: tensors, config: config)
    }
}

extension LlamaConfig {
    /// `config.json` as transformers' `LlamaConfig` writes it (LlamaForCausalLM, SiLU, no biases).
    public func huggingFaceJSON(dtype: SafeTensors.Dtype) -> [String: Any] {
        var json: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "vocab_size": vocabularySize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
            "num_hidden_layers": layerCount, "num_attention_heads": headCount, "num_key_value_heads": keyValueHeadCount,
            "head_dim": headDimension, "max_position_embeddings": maxPositions, "rms_norm_eps": Double("\(rmsNormEpsilon)")!,
            "rope_theta": ropeTheta, "tie_word_embeddings": tieWordEmbeddings, "attention_bias": false, "mlp_bias": false,
            "initializer_range": 0.02, "torch_dtype": Self.torchName(dtype),
        ]
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
