import Foundation
import Testing
import TensorCore
@testable import LlamaModel

private func temporaryFolder() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString)").path
}

@Suite struct LoRATests {
    /// (adapter fixture saved by PEFT, its base model)
    @Test(arguments: [("lora-all-linear", "tiny-llama-sharded"), ("lora-qv-rslora", "tiny-llama-tied")])
    func peftAdaptersGivePEFTLogits(adapterName: String, baseName: String) throws {
        let model = try LlamaModel(folder: fixture(baseName))
        let adapter = try LoRAAdapter(folder: fixture(adapterName), model: model.config)
        let (tokens, logits) = try expectedLogits(adapterName)
        let error = worstRelativeError(try model.logits(tokens, adapter: adapter), logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
        // The adapter changes the output: the base alone is far from PEFT's adapted logits.
        #expect(worstRelativeError(try model.logits(tokens), logits) > 1e-2)
    }

    @Test func peftConfigIsReadWithPEFTSemantics() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        let adapter = try LoRAAdapter(folder: fixture("lora-qv-rslora"), model: model.config)
        #expect(adapter.config.rank == 3 && adapter.config.alpha == 5 && adapter.config.useRSLoRA)
        #expect(adapter.config.targets == [.query, .value])
        #expect(abs(adapter.config.scaling - Float(5 / 3.0.squareRoot())) < 1e-6)
    }

    @Test func exportUsesPEFTNamesAndRoundTrips() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        let adapter = try LoRAAdapter(folder: fixture("lora-all-linear"), model: model.config)
        let folder = temporaryFolder()
        try adapter.save(to: folder, baseModel: "tiny-llama-sharded")
        let ours = try SafeTensorsFile(path: folder + "/adapter_model.safetensors")
        let peft = try SafeTensorsFile(path: fixture("lora-all-linear") + "/adapter_model.safetensors")
        #expect(Set(ours.names) == Set(peft.names), "the tensor names PEFT writes and reads")
        for name in peft.names { #expect(try ours.tensor(named: name) == peft.tensor(named: name), "\(name)") }
        let reloaded = try LoRAAdapter(folder: folder, model: model.config)
        let (tokens, _) = try expectedLogits("lora-all-linear")
        #expect(try model.logits(tokens, adapter: reloaded) == model.logits(tokens, adapter: adapter))
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/adapter_config.json"))) as! [String: Any]
        #expect(config["peft_type"] as? String == "LORA" && config["r"] as? Int == 4)
        #expect(config["target_modules"] as? [String] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    }

    @Test func mergeEqualsTheAdapterAndUnmergeRestoresTheBase() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        let adapter = try LoRAAdapter(folder: fixture("lora-all-linear"), model: model.config)
        let (tokens, _) = try expectedLogits("lora-all-linear")
        let merged = LlamaModel(config: model.config, weights: adapter.merged(into: model.weights))
        let viaAdapter = try model.logits(tokens, adapter: adapter)
        #expect(worstRelativeError(try merged.logits(tokens), (0..<tokens.count).map { row in (0..<model.config.vocabularySize).map { viaAdapter[row, $0] } }) <= 1e-5)
        let restored = adapter.merged(into: merged.weights, sign: -1)
        for (layer, weights) in restored.layers.enumerated() {
            for target in LoRATarget.allCases {
                let difference = zip(weights[target].scalars, model.weights.layers[layer][target].scalars).map { abs($0 - $1) }.max()!
                #expect(difference <= 1e-6, "layer \(layer) \(target)")
            }
        }
    }

    @Test func freshAdaptersFollowPEFTInitialisationAndLeaveTheBaseUnchanged() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        let config = LoRAConfig(rank: 8, alpha: 16, targets: try LoRATarget.parse("q,k,v,o"))
        let first = try LoRAAdapter(config: config, model: model.config, seed: 7)
        let again = try LoRAAdapter(config: config, model: model.config, seed: 7)
        let other = try LoRAAdapter(config: config, model: model.config, seed: 8)
        let bound = 1 / Float(model.config.hiddenSize).squareRoot()
        for (layer, pairs) in first.pairs.enumerated() {
            #expect(Set(pairs.keys) == [.query, .key, .value, .output])
            for (target, pair) in pairs {
                #expect(pair.b.scalars.allSatisfy { $0 == 0 }, "B starts at zero")
                #expect(pair.a.scalars.allSatisfy { abs($0) <= bound }, "A is Kaiming-uniform")
                #expect(pair.a == again.pairs[layer][target]!.a && pair.a != other.pairs[layer][target]!.a, "seeded")
            }
        }
        let tokens = [1, 2, 3, 250]
        #expect(try model.logits(tokens, adapter: first) == model.logits(tokens))
        // Several adapters stay resident on one base: each call names its own.
        #expect(try model.logits(tokens, adapter: other) == model.logits(tokens))
    }

    @Test func unsupportedOrMismatchedAdaptersAreNamed() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        func edited(_ edit: (inout [String: Any]) -> Void) throws -> String {
            let folder = temporaryFolder()
            try FileManager.default.copyItem(atPath: fixture("lora-qv-rslora"), toPath: folder)
            let url = URL(fileURLWithPath: folder + "/adapter_config.json")
            var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            edit(&json)
            try JSONSerialization.data(withJSONObject: json).write(to: url)
            return folder
        }
        func message(_ folder: String) -> String {
            do { _ = try LoRAAdapter(folder: folder, model: model.config); return "" } catch { return error.description }
        }
        #expect(message(try edited { $0["use_dora"] = true }).contains("field \"use_dora\""))
        #expect(message(try edited { $0["target_modules"] = ["lm_head"] }).contains("\"lm_head\""))
        #expect(message(try edited { $0["r"] = 4 }).contains("has shape [3, 32], expected [4, 32]"))
        #expect(message(try edited { $0["target_modules"] = ["q_proj"] }).contains("does not belong"))
        #expect(throws: LoRAError.unknownTarget("qq")) { try LoRATarget.parse("q,qq") }
        #expect(try LoRATarget.parse("all-linear") == LoRATarget.allCases)
    }
}
