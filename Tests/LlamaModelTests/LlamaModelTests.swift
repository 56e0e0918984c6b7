import Foundation
import Testing
import TensorCore
@testable import LlamaModel

@Suite struct LlamaParityTests {
    @Test(arguments: ["tiny-llama-sharded", "tiny-llama-tied"])
    func logitsMatchTransformers(name: String) throws {
        let model = try LlamaModel(folder: fixture(name))
        let reference = try expectedLogits(name)
        let logits = try model.logits(reference.tokens)
        #expect(logits.shape == [reference.tokens.count, model.config.vocabularySize])
        let error = worstRelativeError(logits, reference.logits)
        #expect(error <= 1e-4, "worst relative error \(error)")
    }

    @Test func incrementalDecodingWithTheCacheMatchesTheFullSequence() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        let reference = try expectedLogits("tiny-llama-sharded")
        var cache = KVCache(config: model.config)
        // A prompt of 5 tokens, then one token at a time.
        var rows = try model.forward(Array(reference.tokens.prefix(5)), cache: &cache).scalars
        for token in reference.tokens.dropFirst(5) {
            rows += try model.forward([token], cache: &cache).scalars
        }
        #expect(cache.count == reference.tokens.count)
        let stepwise = Tensor(shape: [reference.tokens.count, model.config.vocabularySize], scalars: rows)
        #expect(worstRelativeError(stepwise, reference.logits) <= 1e-4)
    }

    @Test func badInputIsRefusedByName() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        #expect(throws: ModelInputError.tokenOutOfRange(position: 1, token: 300, vocabularySize: 300)) {
            try model.logits([5, 300])
        }
        #expect(throws: ModelInputError.emptyInput) { try model.logits([]) }
        var cache = KVCache(config: model.config, capacity: 2)
        #expect(throws: ModelInputError.contextOverflow(positions: 3, capacity: 2)) {
            try model.forward([1, 2, 3], cache: &cache)
        }
    }
}

@Suite struct LlamaLoadingTests {
    /// A copy of a fixture folder in a temporary directory, with `edit` applied to its config.
    func folder(from name: String, editingConfig edit: (inout [String: Any]) -> Void) throws -> String {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("llama-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixture(name)), to: target)
        let configURL = target.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        return target.path
    }

    func loadError(_ path: String) -> String? {
        do {
            _ = try LlamaModel(folder: path)
            return nil
        } catch {
            return error.description
        }
    }

    /// (field, its new value as JSON, what the error must mention)
    @Test(arguments: [
        ("architectures", #"["MistralForCausalLM"]"#, "MistralForCausalLM"),
        ("rope_scaling", #"{"rope_type": "yarn", "factor": 4.0}"#, "yarn"),
        ("attention_bias", #""no""#, "true or false"),
        ("mlp_bias", #""yes""#, "true or false"),
        ("hidden_act", #""gelu""#, "gelu"),
        ("rope_parameters", #"{"rope_type": "llama3", "rope_theta": 1.0}"#, "llama3"),
        ("num_key_value_heads", "3", "does not divide"),
    ])
    func unsupportedConfigNamesTheField(field: String, json: String, mentions: String) throws {
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let path = try folder(from: "tiny-llama-tied") { $0[field] = value }
        let message = try #require(loadError(path))
        #expect(message.contains("\"\(field)") && message.contains(mentions), "\(message)")
        #expect(message.hasPrefix(path + "/config.json"))
    }

    @Test func missingFieldIsNamed() throws {
        let path = try folder(from: "tiny-llama-tied") { $0["hidden_size"] = nil }
        #expect(loadError(path)?.contains("field \"hidden_size\": missing") == true)
    }

    @Test func weightsThatDoNotFitTheConfigAreNamed() throws {
        let wider = try folder(from: "tiny-llama-tied") { $0["intermediate_size"] = 45 }
        let message = try #require(loadError(wider))
        #expect(message.contains("model.layers.0.mlp.gate_proj.weight") && message.contains("[44, 32]"), "\(message)")

        let untied = try folder(from: "tiny-llama-tied") { $0["tie_word_embeddings"] = false }
        #expect(loadError(untied)?.contains("tensor \"lm_head.weight\" is missing") == true)
    }
}
