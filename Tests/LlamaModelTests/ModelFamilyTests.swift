import Foundation
import Testing
import TensorCore
@testable import LlamaModel

/// Qwen2 (Qwen2.5), Qwen3, Mistral and Llama's rope scaling (make_family_fixtures.py): configs, weights and,
/// against transformers' and PEFT's fp32 logits, the forward.
private func familyFixture(_ name: String) -> String { fixture("families/" + name) }

/// A fixture's rotary inverse frequencies as transformers computed them.
private func expectedInverseFrequencies(_ name: String) throws -> [Float] {
    struct Expected: Decodable { let inv_freq: [Double] }
    let url = URL(fileURLWithPath: familyFixture(name) + "/expected_logits.json")
    return try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url)).inv_freq.map { Float($0) }
}

private func scratchFolder() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("families-\(UUID().uuidString)").path
}

/// A copy of a family fixture with `edit` applied to its config.json and `editTensors` to its tensors.
private func editedFixture(
    _ name: String, config edit: (inout [String: Any]) -> Void = { _ in },
    tensors editTensors: ((inout [String: Tensor]) -> Void)? = nil
) throws -> String {
    let target = scratchFolder()
    try FileManager.default.copyItem(atPath: familyFixture(name), toPath: target)
    let configURL = URL(fileURLWithPath: target + "/config.json")
    var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
    edit(&config)
    try JSONSerialization.data(withJSONObject: config).write(to: configURL)
    if let editTensors {
        let file = try SafeTensorsFile(path: target + "/model.safetensors")
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(named: name).contiguous() }
        editTensors(&tensors)
        try FileManager.default.removeItem(atPath: target + "/model.safetensors")
        try SafeTensors.write(tensors, to: target + "/model.safetensors")
    }
    return target
}

private func loadError(_ folder: String) -> String? {
    do {
        _ = try LlamaModel(folder: folder)
        return nil
    } catch {
        return error.description
    }
}

/// The error of parsing `json` (a small valid config of `family` with `edit` applied), nil if it parses.
private func configError(_ family: ModelFamily, _ edit: (inout [String: Any]) -> Void) -> String? {
    var json: [String: Any] = [
        "model_type": family.rawValue, "architectures": [family.architecture], "vocab_size": 10, "hidden_size": 16,
        "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64,
    ]
    edit(&json)
    do {
        _ = try LlamaConfig(json: json, path: "config.json")
        return nil
    } catch {
        return error.description
    }
}

private func parsed(_ family: ModelFamily, _ edit: (inout [String: Any]) -> Void = { _ in }) throws -> LlamaConfig {
    var json: [String: Any] = [
        "model_type": family.rawValue, "architectures": [family.architecture], "vocab_size": 10, "hidden_size": 16,
        "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64,
    ]
    edit(&json)
    return try LlamaConfig(json: json, path: "config.json")
}

@Suite struct ModelFamilyConfigTests {
    @Test func fixturesParseAsTheirFamilies() throws {
        let qwen2 = try LlamaConfig(contentsOf: familyFixture("qwen2-tied") + "/config.json")
        #expect(qwen2.family == .qwen2 && qwen2.biasTargets == [.query, .key, .value] && qwen2.attentionBias)
        #expect(!qwen2.queryKeyNorm && qwen2.slidingWindow == nil && qwen2.tieWordEmbeddings && qwen2.ropeScaling == .none)
        let untied = try LlamaConfig(contentsOf: familyFixture("qwen2-untied") + "/config.json")
        #expect(untied.family == .qwen2 && !untied.tieWordEmbeddings && untied.ropeTheta == 1_000_000)

        let qwen3 = try LlamaConfig(contentsOf: familyFixture("qwen3") + "/config.json")
        #expect(qwen3.family == .qwen3 && qwen3.biasTargets.isEmpty && qwen3.queryKeyNorm)
        #expect(qwen3.headDimension == 12 && qwen3.hiddenSize / qwen3.headCount == 8)

        let mistral = try LlamaConfig(contentsOf: familyFixture("mistral-window") + "/config.json")
        #expect(mistral.family == .mistral && mistral.slidingWindow == 5 && mistral.biasTargets.isEmpty && !mistral.queryKeyNorm)

        let llama3 = try LlamaConfig(contentsOf: familyFixture("llama-rope-llama3") + "/config.json")
        #expect(llama3.family == .llama && llama3.ropeScaling == .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 64))
        let linear = try LlamaConfig(contentsOf: familyFixture("llama-rope-linear") + "/config.json")
        #expect(linear.ropeScaling == .linear(factor: 4))
    }

    @Test func familyComesFromModelTypeOrArchitectures() throws {
        #expect(try parsed(.qwen3) { $0["model_type"] = nil }.family == .qwen3)
        #expect(try parsed(.mistral) { $0["architectures"] = nil }.family == .mistral)
        #expect(try parsed(.llama) { $0["architectures"] = nil; $0["model_type"] = nil }.family == .llama)
    }

    @Test func biasesFollowEachFamilysFlags() throws {
        #expect(try parsed(.llama) { $0["attention_bias"] = true }.biasTargets == [.query, .key, .value, .output])
        #expect(try parsed(.llama) { $0["mlp_bias"] = true }.biasTargets == [.gate, .up, .down])
        #expect(try parsed(.qwen3) { $0["attention_bias"] = true }.biasTargets == [.query, .key, .value, .output])
        #expect(try parsed(.qwen2).biasTargets == [.query, .key, .value])
        #expect(try parsed(.mistral).biasTargets.isEmpty)
    }

    @Test func slidingWindows() throws {
        // MistralConfig's default window when the field is absent, none when it is null.
        #expect(try parsed(.mistral).slidingWindow == 4096)
        #expect(try parsed(.mistral) { $0["sliding_window"] = NSNull() }.slidingWindow == nil)
        // Qwen's window only counts with use_sliding_window, and only on the layers it marks.
        #expect(try parsed(.qwen2) { $0["sliding_window"] = 4 }.slidingWindow == nil)
        #expect(try parsed(.qwen2) { $0["use_sliding_window"] = true; $0["sliding_window"] = 4 }.slidingWindow == nil)  // max_window_layers 28 > 2 layers
        #expect(try parsed(.qwen3) { $0["use_sliding_window"] = true; $0["sliding_window"] = 64; $0["max_window_layers"] = 0 }.slidingWindow == nil)
        #expect(try parsed(.qwen2) {
            $0["use_sliding_window"] = true; $0["sliding_window"] = 4; $0["layer_types"] = ["full_attention", "full_attention"]
        }.slidingWindow == nil)
    }

    @Test func attentionMasksFollowTheWindow() throws {
        #expect(try parsed(.mistral) { $0["sliding_window"] = 7 }.attentionMask(queryOffset: 3) == .slidingWindow(queryOffset: 3, window: 7))
        #expect(try parsed(.mistral) { $0["sliding_window"] = NSNull() }.attentionMask(queryOffset: 3) == .causal(queryOffset: 3))
        #expect(try parsed(.qwen3).attentionMask() == .causal())
    }

    @Test func ropeScalingReadsBothSpellings() throws {
        let legacy = try parsed(.llama) {
            $0["rope_theta"] = 500_000
            $0["rope_scaling"] = ["type": "linear", "factor": 2.0]
        }
        #expect(legacy.ropeScaling == .linear(factor: 2) && legacy.ropeTheta == 500_000)
        let current = try parsed(.llama) {
            $0["rope_parameters"] = [
                "rope_type": "llama3", "rope_theta": 500_000.0, "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
            ] as [String: Any]
        }
        #expect(current.ropeScaling == .llama3(factor: 32, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 8192))
        #expect(current.ropeTheta == 500_000)
        #expect(try parsed(.qwen2) { $0["rope_scaling"] = ["rope_type": "default"] }.ropeScaling == .none)
    }

    /// (family, edit, the field the error must name, what else it must mention)
    static let refusals: [(ModelFamily, @Sendable (inout [String: Any]) -> Void, String, String)] = [
        (.llama, { $0["model_type"] = "gemma" }, "model_type", "gemma"),
        (.llama, { $0["architectures"] = ["GemmaForCausalLM"]; $0["model_type"] = nil }, "architectures", "GemmaForCausalLM"),
        (.qwen2, { $0["architectures"] = ["Qwen3ForCausalLM"] }, "architectures", "contradicts"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0] }, "rope_scaling.rope_type", "\"yarn\""),
        (.qwen2, { $0["rope_scaling"] = ["type": "dynamic", "factor": 4.0] }, "rope_scaling.type", "\"dynamic\""),
        (.llama, { $0["rope_parameters"] = ["rope_type": "longrope", "rope_theta": 10_000.0] }, "rope_parameters.rope_type", "\"longrope\""),
        (.llama, { $0["rope_scaling"] = ["rope_type": 3] }, "rope_scaling.rope_type", "3"),
        (.llama, { $0["rope_scaling"] = 2.0 }, "rope_scaling", "expected an object"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "linear"] }, "rope_scaling.factor", "missing"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "linear", "factor": -2.0] }, "rope_scaling.factor", "positive"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192] as [String: Any] },
         "rope_scaling.low_freq_factor", "missing"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192] as [String: Any] },
         "rope_scaling.high_freq_factor", "must exceed"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0] },
         "rope_scaling.original_max_position_embeddings", "missing"),
        (.llama, { $0["rope_scaling"] = ["rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5] }, "rope_scaling.partial_rotary_factor", "0.5"),
        (.qwen3, { $0["partial_rotary_factor"] = 0.5 }, "partial_rotary_factor", "0.5"),
        (.qwen2, { $0["use_sliding_window"] = true; $0["sliding_window"] = 4; $0["max_window_layers"] = 1 }, "use_sliding_window", "window 4"),
        (.qwen3, { $0["use_sliding_window"] = true; $0["sliding_window"] = 4; $0["layer_types"] = ["sliding_attention", "full_attention"] },
         "use_sliding_window", "layers [0]"),
        (.qwen2, { $0["use_sliding_window"] = true; $0["sliding_window"] = 4; $0["layer_types"] = ["full_attention"] }, "layer_types", "2 strings"),
        (.qwen2, { $0["use_sliding_window"] = "yes" }, "use_sliding_window", "true or false"),
        (.qwen2, { $0["layer_types"] = ["chunked_attention", "full_attention"] }, "layer_types", "chunked_attention"),
        (.mistral, { $0["sliding_window"] = 0 }, "sliding_window", "positive integer"),
        (.mistral, { $0["sliding_window"] = true }, "sliding_window", "positive integer"),
        (.qwen3, { $0["head_dim"] = 7 }, "head_dim", "even"),
        (.qwen3, { $0["head_dim"] = 2.5 }, "head_dim", "positive integer"),
        (.qwen2, { $0["num_attention_heads"] = 5 }, "head_dim", "not a multiple"),
        (.llama, { $0["attention_bias"] = "yes" }, "attention_bias", "true or false"),
        (.qwen3, { $0["hidden_act"] = "gelu" }, "hidden_act", "gelu"),
        (.llama, { $0["pretraining_tp"] = 2 }, "pretraining_tp", "2"),
    ]

    @Test(arguments: 0..<refusals.count)
    func unsupportedConfigsNameTheField(index: Int) throws {
        let (family, edit, field, mentions) = Self.refusals[index]
        let message = try #require(configError(family, edit), "case \(index) (\(field)) parsed")
        #expect(message.contains("field \"\(field)\"") && message.contains(mentions), "\(message)")
    }
}

@Suite struct ModelFamilyWeightTests {
    @Test(arguments: ["qwen2-tied", "qwen2-untied", "qwen3", "mistral-window", "llama-rope-llama3", "llama-rope-linear"])
    func fixturesLoadWithTheirTensors(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let config = model.config
        let file = try SafeTensorsFile(path: familyFixture(name) + "/model.safetensors")
        for (index, layer) in model.weights.layers.enumerated() {
            for target in LoRATarget.allCases {
                let bias = layer.bias(target)
                #expect((bias != nil) == config.hasBias(target), "layer \(index) \(target)")
                if let bias {
                    let stored = try file.tensor(named: "model.layers.\(index).\(target.modulePath).bias")
                    #expect(bias == stored && bias.shape == [layer[target].shape[0]])
                }
            }
            #expect((layer.queryNorm != nil) == config.queryKeyNorm && (layer.keyNorm != nil) == config.queryKeyNorm)
            if let queryNorm = layer.queryNorm, let keyNorm = layer.keyNorm {
                #expect(queryNorm == (try file.tensor(named: "model.layers.\(index).self_attn.q_norm.weight")))
                #expect(keyNorm == (try file.tensor(named: "model.layers.\(index).self_attn.k_norm.weight")))
                #expect(queryNorm.shape == [config.headDimension])
            }
        }
        // Every stored tensor is one the weights hold, under transformers' name.
        let named = model.weights.named(config: config)
        #expect(Set(named.map(\.name)) == Set(file.names), "\(Set(file.names).symmetricDifference(named.map(\.name)))")
        for (tensorName, tensor) in named { #expect(tensor == (try file.tensor(named: tensorName)), "\(tensorName)") }
    }

    @Test(arguments: ["qwen2-untied", "qwen3", "mistral-window", "llama-rope-llama3"])
    func savedFoldersLoadBackTheSame(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let folder = scratchFolder()
        try model.save(to: folder)
        let reloaded = try LlamaModel(folder: folder)
        #expect(reloaded.config == model.config)
        let (before, after) = (model.weights.named(config: model.config), reloaded.weights.named(config: reloaded.config))
        #expect(before.map(\.name) == after.map(\.name))
        for (a, b) in zip(before, after) { #expect(a.tensor == b.tensor, "\(a.name)") }
    }

    @Test func randomAndInitialWeightsHoldTheFamilysTensors() throws {
        let qwen3 = try parsed(.qwen3) { $0["attention_bias"] = true; $0["head_dim"] = 6 }
        let random = LlamaWeights(random: qwen3, seed: 5, normRange: 0.5..<1.5)
        let names = Set(random.named(config: qwen3).map(\.name))
        #expect(names == Set(LlamaWeights.expectedShapes(qwen3).map(\.name)))
        #expect(random.layers[1].bias(.output)?.shape == [16] && random.layers[1].keyNorm?.shape == [6])
        let initial = LlamaWeights(initializing: qwen3, seed: 5)
        #expect(initial.layers[0].bias(.query)?.scalars.allSatisfy { $0 == 0 } == true, "transformers zeroes biases")
        #expect(initial.layers[0].queryNorm?.scalars.allSatisfy { $0 == 1 } == true)
        // A Llama draws what it drew before the families: the same weights for the same seed.
        let llama = try parsed(.llama)
        let plain = LlamaWeights(random: llama, seed: 5).named(config: llama)
        #expect(plain.count == 2 + 2 * 9 + 1 && plain.allSatisfy { !$0.name.hasSuffix(".bias") })
    }

    @Test func missingUnexpectedAndMisshapenTensorsAreNamed() throws {
        // A Llama config that claims attention biases the file does not have.
        let claimsBias = try editedFixture("llama-rope-linear") { $0["attention_bias"] = true }
        #expect(loadError(claimsBias)?.contains("tensor \"model.layers.0.self_attn.q_proj.bias\" is missing") == true, "\(loadError(claimsBias) ?? "")")
        // Qwen2 weights under a Llama config: the q/k/v biases would be ignored, so loading refuses them.
        let asLlama = try editedFixture("qwen2-untied") { $0["model_type"] = "llama"; $0["architectures"] = ["LlamaForCausalLM"] }
        let unexpected = try #require(loadError(asLlama))
        #expect(unexpected.contains("tensor \"model.layers.0.self_attn.k_proj.bias\" is not used"), "\(unexpected)")
        // Qwen3 without its q/k norms, and with one of the wrong shape.
        let noNorms = try editedFixture("qwen3", tensors: { tensors in
            for name in tensors.keys where name.contains("q_norm") || name.contains("k_norm") { tensors[name] = nil }
        })
        #expect(loadError(noNorms)?.contains("tensor \"model.layers.0.self_attn.q_norm.weight\" is missing") == true)
        let wideNorm = try editedFixture("qwen3", tensors: { $0["model.layers.1.self_attn.k_norm.weight"] = Tensor(shape: [13], repeating: 1) })
        let misshapen = try #require(loadError(wideNorm))
        #expect(misshapen.contains("model.layers.1.self_attn.k_norm.weight") && misshapen.contains("[13]") && misshapen.contains("[12]"), "\(misshapen)")
        let shortBias = try editedFixture("qwen2-tied", tensors: { $0["model.layers.0.self_attn.v_proj.bias"] = Tensor(shape: [15], repeating: 0) })
        #expect(loadError(shortBias)?.contains("tensor \"model.layers.0.self_attn.v_proj.bias\" has shape [15], config needs [16]") == true)
    }
}

@Suite struct ModelFamilyLogitsTests {
    @Test(arguments: ["llama-rope-llama3", "llama-rope-linear"])
    func rotaryTablesMatchTransformers(name: String) throws {
        let config = try LlamaConfig(contentsOf: familyFixture(name) + "/config.json")
        #expect(config.rotaryTable.inverseFrequencies == (try expectedInverseFrequencies(name)))
    }

    /// Full-size heads (Llama 3.1's rope_scaling at head_dim 128 and 64, linear at 128): the config's
    /// frequencies equal transformers' float32 ones exactly, every band boundary included.
    @Test func fullSizeFrequenciesMatchTransformersExactly() throws {
        struct Case: Decodable { let rope_scaling: [String: RopeValue]; let rope_theta: Double; let head_dim: Int; let inv_freq: [Double] }
        enum RopeValue: Decodable {
            case text(String), number(Double)
            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let text = try? container.decode(String.self) { self = .text(text) } else { self = .number(try container.decode(Double.self)) }
            }
            var json: Any { switch self { case .text(let text): text; case .number(let number): number } }
        }
        let url = URL(fileURLWithPath: familyFixture("rope_frequencies.json"))
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
        #expect(cases.count == 3)
        for (index, item) in cases.enumerated() {
            let config = try parsed(.llama) {
                $0["head_dim"] = item.head_dim
                $0["rope_theta"] = item.rope_theta
                $0["rope_scaling"] = item.rope_scaling.mapValues(\.json)
            }
            let expected = item.inv_freq.map { Float($0) }
            let actual = RotaryTable(headDimension: item.head_dim, maxPositions: 0, theta: item.rope_theta, scaling: config.ropeScaling).inverseFrequencies
            #expect(actual == expected, "case \(index): \(zip(actual, expected).filter { $0 != $1 }.count) frequencies differ")
        }
    }

    @Test func llama3ScalingKeepsSmoothsAndDividesFrequencies() {
        let plain = RotaryTable(headDimension: 16, maxPositions: 0, theta: 10_000).inverseFrequencies
        let scaled = RotaryScaling.llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 64).scaled(plain)
        #expect(scaled[0] == plain[0], "wavelength 6.3 < 16: kept")
        #expect(scaled[1] < plain[1] && scaled[1] > plain[1] / 8, "wavelength 20: smoothed")
        #expect(scaled[3] == plain[3] / 8, "wavelength 199 > 64: divided")
    }

    /// Logits of the Llama rope-scaling fixtures.
    @Test(arguments: ["llama-rope-llama3", "llama-rope-linear"])
    func llamaRopeScalingMatchesTransformers(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let (tokens, logits) = try expectedLogits("families/" + name)
        let error = worstRelativeError(try model.logits(tokens), logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
        // The scaling matters: without it the logits are far off.
        var unscaled = model.config
        unscaled.ropeScaling = .none
        let plain = LlamaModel(config: unscaled, weights: model.weights)
        #expect(worstRelativeError(try plain.logits(tokens), logits) > 1e-3)
    }

    @Test(arguments: ["llama-rope-llama3", "llama-rope-linear"])
    func llamaRopeScalingAdaptersMatchPEFT(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let adapter = try LoRAAdapter(folder: familyFixture(name + "-lora"), model: model.config)
        let (tokens, logits) = try expectedLogits("families/" + name + "-lora")
        let error = worstRelativeError(try model.logits(tokens, adapter: adapter), logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
        #expect(worstRelativeError(try model.logits(tokens), logits) > 1e-2)
    }

    @Test(arguments: ["qwen2-tied", "qwen2-untied", "qwen3", "mistral-window"])
    func familyAdaptersLoad(name: String) throws {
        // PEFT names the same projections in every family: the adapter reads, with all seven targets.
        let config = try LlamaConfig(contentsOf: familyFixture(name) + "/config.json")
        let adapter = try LoRAAdapter(folder: familyFixture(name + "-lora"), model: config)
        #expect(Set(adapter.config.targets) == Set(LoRATarget.allCases) && adapter.pairs.count == config.layerCount)
    }

    @Test(arguments: ["qwen2-tied", "qwen2-untied", "qwen3", "mistral-window"])
    func familyLogitsMatchTransformers(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let (tokens, logits) = try expectedLogits("families/" + name)
        let error = worstRelativeError(try model.logits(tokens), logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
    }

    @Test(arguments: ["qwen2-tied", "qwen2-untied", "qwen3", "mistral-window"])
    func familyAdaptersMatchPEFT(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let adapter = try LoRAAdapter(folder: familyFixture(name + "-lora"), model: model.config)
        let (tokens, logits) = try expectedLogits("families/" + name + "-lora")
        let error = worstRelativeError(try model.logits(tokens, adapter: adapter), logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
    }

    @Test func mistralDecodingStepsMatchTheWholeSequence() throws {
        // Token-by-token decoding through the KV cache sees the same window as the whole-sequence pass.
        let model = try LlamaModel(folder: familyFixture("mistral-window"))
        let (tokens, logits) = try expectedLogits("families/mistral-window")
        var cache = KVCache(config: model.config, capacity: tokens.count)
        for (position, token) in tokens.enumerated() {
            let step = try model.forward([token], cache: &cache)
            let error = worstRelativeError(step, [logits[position]])
            #expect(error <= 1e-4, "position \(position): worst relative error \(error)")
        }
    }
}

/// The families' decoder layer composed from the kernels alone (bias, per-head RMSNorm, sliding-window
/// softmax), whole sequence, no cache: proves that the fixtures, the weights as loaded and the kernels
/// together give transformers' and PEFT's logits before the model's own forward wires them in.
private func composedLogits(_ model: LlamaModel, _ tokens: [Int], adapter: LoRAAdapter? = nil) -> Tensor {
    let config = model.config
    let (heads, kvHeads, d) = (config.headCount, config.keyValueHeadCount, config.headDimension)
    let positions = (0..<tokens.count).map { Int32($0) }
    let mask = config.attentionMask()
    var x = Tensor.gatherRows(of: model.weights.embedding, at: tokens)
    for (layer, weights) in model.weights.layers.enumerated() {
        func project(_ input: Tensor, _ target: LoRATarget) -> Tensor {
            var y = model.linear(input, weights[target])
            if let bias = weights.bias(target) { Kernels.addBias(&y, bias: bias) }
            _ = adapter?.addDelta(input, into: &y, layer: layer, target: target)
            return y
        }
        let normed = Kernels.rmsNorm(x, weight: weights.inputNorm, epsilon: config.rmsNormEpsilon).output
        var q = project(normed, .query), k = project(normed, .key)
        let v = project(normed, .value)
        if let queryNorm = weights.queryNorm, let keyNorm = weights.keyNorm {
            q = Kernels.headRMSNorm(q, weight: queryNorm, headDimension: d, epsilon: config.rmsNormEpsilon).output
            k = Kernels.headRMSNorm(k, weight: keyNorm, headDimension: d, epsilon: config.rmsNormEpsilon).output
        }
        Kernels.rotary(&q, positions: positions, table: model.rotary)
        Kernels.rotary(&k, positions: positions, table: model.rotary)
        var attended = Tensor(zeros: [tokens.count, heads * d])
        for h in 0..<heads {
            let g = h / (heads / kvHeads)
            let scores = BLAS.matmul(q.slice(1, h * d..<(h + 1) * d), k.slice(1, g * d..<(g + 1) * d), transposeB: true)
            let probabilities = Kernels.softmax(scores, scale: 1 / Float(d).squareRoot(), mask: mask)
            attended.replaceBlock(row: 0, column: h * d, with: BLAS.matmul(probabilities, v.slice(1, g * d..<(g + 1) * d)))
        }
        BLAS.axpy(1, project(attended, .output), &x)
        let normed2 = Kernels.rmsNorm(x, weight: weights.postAttentionNorm, epsilon: config.rmsNormEpsilon).output
        BLAS.axpy(1, project(Kernels.swiglu(gate: project(normed2, .gate), up: project(normed2, .up)), .down), &x)
    }
    return model.linear(Kernels.rmsNorm(x, weight: model.weights.finalNorm, epsilon: config.rmsNormEpsilon).output, model.weights.head)
}

@Suite struct ModelFamilyComposedLayerTests {
    @Test(arguments: ["qwen2-tied", "qwen2-untied", "qwen3", "mistral-window", "llama-rope-llama3"])
    func kernelsComposeToTransformersLogits(name: String) throws {
        let model = try LlamaModel(folder: familyFixture(name))
        let (tokens, logits) = try expectedLogits("families/" + name)
        let error = worstRelativeError(composedLogits(model, tokens), logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
        let adapter = try LoRAAdapter(folder: familyFixture(name + "-lora"), model: model.config)
        let (adaptedTokens, adaptedLogits) = try expectedLogits("families/" + name + "-lora")
        let adaptedError = worstRelativeError(composedLogits(model, adaptedTokens, adapter: adapter), adaptedLogits)
        #expect(adaptedError <= 1e-4, "adapted: worst relative error \(adaptedError)")
    }

    /// Each family's addition matters: leaving it out moves the logits far from transformers'.
    @Test func leavingOutAnAdditionIsCaught() throws {
        let mistral = try LlamaModel(folder: familyFixture("mistral-window"))
        let (tokens, logits) = try expectedLogits("families/mistral-window")
        var noWindow = mistral.config
        noWindow.slidingWindow = nil
        #expect(worstRelativeError(composedLogits(LlamaModel(config: noWindow, weights: mistral.weights), tokens), logits) > 1e-2)
        #expect(worstRelativeError(try LlamaModel(config: noWindow, weights: mistral.weights).logits(tokens), logits) > 1e-2)

        let qwen3 = try LlamaModel(folder: familyFixture("qwen3"))
        var noNorm = qwen3.weights
        for layer in noNorm.layers.indices { (noNorm.layers[layer].queryNorm, noNorm.layers[layer].keyNorm) = (nil, nil) }
        let (qwenTokens, qwenLogits) = try expectedLogits("families/qwen3")
        #expect(worstRelativeError(composedLogits(LlamaModel(config: qwen3.config, weights: noNorm), qwenTokens), qwenLogits) > 1e-2)
        #expect(worstRelativeError(try LlamaModel(config: qwen3.config, weights: noNorm).logits(qwenTokens), qwenLogits) > 1e-2)

        let qwen2 = try LlamaModel(folder: familyFixture("qwen2-untied"))
        var noBias = qwen2.weights
        for layer in noBias.layers.indices { noBias.layers[layer].biases = [:] }
        let (qwen2Tokens, qwen2Logits) = try expectedLogits("families/qwen2-untied")
        #expect(worstRelativeError(composedLogits(LlamaModel(config: qwen2.config, weights: noBias), qwen2Tokens), qwen2Logits) > 1e-2)
        #expect(worstRelativeError(try LlamaModel(config: qwen2.config, weights: noBias).logits(qwen2Tokens), qwen2Logits) > 1e-2)
    }
}
