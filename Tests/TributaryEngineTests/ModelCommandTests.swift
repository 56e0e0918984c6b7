import Foundation
import TensorCore
import Testing
@testable import LlamaModel
import Tokenizers

/// `logits` and `train` run as a user runs them, checked against the libraries they wire together.
@Suite struct ModelCommandTests {
    static let modelFixtures = sourceFixture("LlamaModelTests/Fixtures")

    struct LogitsReport: Decodable { let logits: [[Float]] }

    @Test func logitsWithAnAdapterEqualTheLibraryAndPEFT() throws {
        let (modelFolder, adapterFolder) = (Self.modelFixtures + "/tiny-llama-sharded", Self.modelFixtures + "/lora-all-linear")
        struct Expected: Decodable { let tokens: [Int]; let logits: [[Float]] }
        let expected = try JSONDecoder().decode(
            Expected.self, from: Data(contentsOf: URL(fileURLWithPath: adapterFolder + "/expected_logits.json")))
        let run = try runEngine([
            "logits", "--model", modelFolder, "--adapter", adapterFolder,
            "--tokens", expected.tokens.map(String.init).joined(separator: ","), "--json",
        ])
        #expect(run.status == 0, "\(run.errors)")
        let printed = try JSONDecoder().decode(LogitsReport.self, from: run.output).logits

        let model = try LlamaModel(folder: modelFolder)
        let library = try model.logits(expected.tokens, adapter: LoRAAdapter(folder: adapterFolder, model: model.config))
        #expect(printed.count == expected.tokens.count)
        for (row, values) in printed.enumerated() {
            #expect(values == (0..<library.shape[1]).map { library[row, $0] }, "row \(row): the library's logits, exactly")
            let scale = expected.logits[row].map(abs).max()!
            let worst = zip(values, expected.logits[row]).map { abs($0 - $1) / scale }.max()!
            #expect(worst <= 1e-4, "row \(row) against PEFT: \(worst)")
        }
        // Without the adapter the logits differ: the flag is not ignored.
        let base = try runEngine(["logits", "--model", modelFolder, "--tokens", "1,2,3", "--json"])
        let adapted = try runEngine(["logits", "--model", modelFolder, "--adapter", adapterFolder, "--tokens", "1,2,3", "--json"])
        #expect(base.output != adapted.output)
    }

    @Test func logitsRefuseABadAdapterByName() throws {
        let run = try runEngine(["logits", "--model", Self.modelFixtures + "/tiny-llama-tied", "--adapter", "/nonexistent-adapter", "--tokens", "1", "--json"])
        #expect(run.status != 0)
        #expect(run.errors.contains("/nonexistent-adapter"), "\(run.errors)")
    }

    /// A random model whose vocabulary holds the Llama 3 fixture tokenizer's 903 ids, with that tokenizer.json.
    static func modelWithTokenizer() throws -> String {
        let folder = temporaryFolder("bpe-model")
        let config = LlamaConfig(
            vocabularySize: 960, hiddenSize: 16, intermediateSize: 24, layerCount: 1, headCount: 2, keyValueHeadCount: 1,
            maxPositions: 64, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, tieWordEmbeddings: true)
        let json: [String: Any] = [
            "model_type": "llama", "vocab_size": 960, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
            "rope_theta": 10_000, "tie_word_embeddings": true,
        ]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: folder + "/config.json"))
        var random = SeededRandom(seed: 41)
        let tensors = LlamaWeights.expectedShapes(config).map { (name: $0.name, tensor: random.normalTensor(shape: $0.shape, standardDeviation: 0.2)) }
        try SafeTensors.write(tensors, to: folder + "/model.safetensors")
        try FileManager.default.copyItem(
            atPath: sourceFixture("TokenizersTests/Fixtures/llama3/tokenizer.json"), toPath: folder + "/tokenizer.json")
        return folder
    }

    struct Summary: Decodable { let tokens: Int; let steps: Int }

    /// Runs `train --json` for one step over every record and returns the scored tokens it reports.
    func trainedTokens(model: String, records: [String], extra: [String] = []) throws -> Int {
        let folder = temporaryFolder("train")
        let data = folder + "/records.jsonl"
        try records.joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let run = try runEngine([
            "train", "--model", model, "--data", data, "--out", folder + "/adapter", "--steps", "1",
            "--batch-size", "\(records.count)", "--rank", "2", "--json",
        ] + extra)
        #expect(run.status == 0, "\(run.errors)")
        let lines = String(decoding: run.output, as: UTF8.self).split(separator: "\n")
        return try JSONDecoder().decode(Summary.self, from: Data(lines.last!.utf8)).tokens
    }

    /// Text and prompt/completion records are encoded with tokenizer.json, the post-processor's
    /// beginning-of-text token once in front; pre-tokenized records are used verbatim.
    @Test func tokenizePrintsTheIdsTheModelsTokenizerGives() throws {
        let model = try Self.modelWithTokenizer()
        let tokenizer = try BPETokenizer(contentsOf: model + "/tokenizer.json")
        let text = "\u{FEFF}Hello world, how are you?"
        let run = try runEngine(["tokenize", "--model", model, "--text", text, "--json"])
        #expect(run.status == 0, "\(run.errors)")
        struct Printed: Decodable { let tokens: [Int] }
        #expect(try JSONDecoder().decode(Printed.self, from: run.output).tokens == tokenizer.encode(text, addSpecialTokens: true))
        let bare = try runEngine(["tokenize", "--model", model, "--text", text, "--bare"])
        #expect(String(decoding: bare.output, as: UTF8.self) == tokenizer.encode(text, addSpecialTokens: false).map(String.init).joined(separator: ",") + "\n")
        let file = NSTemporaryDirectory() + "tokenize-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        let fromFile = try runEngine(["tokenize", "--model", model, "--file", file, "--json"])
        #expect(try JSONDecoder().decode(Printed.self, from: fromFile.output).tokens == tokenizer.encode(text, addSpecialTokens: true))
        let both = try runEngine(["tokenize", "--model", model, "--text", text, "--file", file])
        #expect(both.status != 0 && both.errors.contains("--file"), "\(both.errors)")
        let missing = try runEngine(["tokenize", "--model", "/nonexistent-model", "--text", "x"])
        #expect(missing.status != 0 && missing.errors.contains("/nonexistent-model"), "\(missing.errors)")
    }

    @Test func trainEncodesRecordsWithTheModelsTokenizer() throws {
        let model = try Self.modelWithTokenizer()
        let tokenizer = try BPETokenizer(contentsOf: model + "/tokenizer.json")
        #expect(tokenizer.prefixTokens.count == 1 && tokenizer.suffixTokens.isEmpty, "the fixture's template: <|begin_of_text|> $A")
        let text = "Hello world, how are you?", prompt = "Question: two plus two?", completion = " Four."
        // Scored tokens: every next token of a text record; the completion's of a prompt/completion record.
        let textTokens = tokenizer.encode(text, addSpecialTokens: true)
        #expect(textTokens.first == tokenizer.prefixTokens.first)
        #expect(try trainedTokens(model: model, records: [#"{"id":"t","contributor":"c","text":"\#(text)"}"#]) == textTokens.count - 1)
        let completionTokens = tokenizer.encode(completion, addSpecialTokens: false)
        #expect(try trainedTokens(model: model, records: [
            #"{"id":"p","contributor":"c","prompt":"\#(prompt)","completion":"\#(completion)"}"#,
        ]) == completionTokens.count)
        #expect(try trainedTokens(model: model, records: [
            #"{"id":"k","contributor":"c","prompt_tokens":[900,5],"completion_tokens":[7,8,9]}"#,
        ]) == 3)
    }

    /// The same seed and BLAS thread count give a bit-identical adapter, with dropout on.
    @Test(arguments: [1, 2])
    func trainIsBitIdenticalForASeedAndThreadCount(threads: Int) throws {
        let model = try Self.modelWithTokenizer()
        let folder = temporaryFolder("determinism")
        let data = folder + "/records.jsonl"
        let records = (0..<6).map { #"{"id":"\#($0)","contributor":"c","text":"record \#($0): the quick brown fox jumps over the lazy dog"}"# }
        try records.joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        func train(_ name: String) throws -> Data {
            let run = try runEngine(
                ["train", "--model", model, "--data", data, "--out", folder + "/" + name, "--steps", "4", "--batch-size", "3",
                 "--rank", "4", "--dropout", "0.1", "--seed", "7", "--json"],
                environment: ["OPENBLAS_NUM_THREADS": "\(threads)"])
            #expect(run.status == 0, "\(run.errors)")
            return try Data(contentsOf: URL(fileURLWithPath: folder + "/\(name)/adapter_model.safetensors"))
        }
        let first = try train("first"), second = try train("second")
        #expect(first == second)
    }

    /// `index` and `attribute` encode text as `train` does: querying a training record's own prompt and
    /// completion as text finds that record first by Grad-Cos (cosine 1), on a model with a tokenizer.json.
    @Test func indexAndAttributeEncodeTextAsTrainDoes() throws {
        let model = try Self.modelWithTokenizer()
        let folder = temporaryFolder("bpe-attribution")
        let data = folder + "/records.jsonl"
        let records = (0..<4).map { #"{"id":"r\#($0)","contributor":"c\#($0 % 2)","prompt":"Question \#($0): what comes next?","completion":" Answer \#($0 * 7)."}"# }
        try records.joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        let train = try runEngine(["train", "--model", model, "--data", data, "--out", folder + "/adapter", "--steps", "2", "--batch-size", "2", "--rank", "2"])
        #expect(train.status == 0, "\(train.errors)")
        let index = try runEngine(["index", "--model", model, "--adapter", folder + "/adapter", "--data", data, "--out", folder + "/index"])
        #expect(index.status == 0, "\(index.errors)")
        // Passes whose activations the budget cannot hold are refused before anything is written.
        let refused = try runEngine([
            "index", "--model", model, "--adapter", folder + "/adapter", "--data", data, "--out", folder + "/index-refused",
            "--tokens-per-pass", "100000", "--activation-memory-mib", "1",
        ])
        #expect(refused.status != 0 && refused.errors.contains("raise --activation-memory-mib"), "\(refused.errors)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/index-refused"))
        let attribute = try runEngine([
            "attribute", "--index", folder + "/index", "--method", "gradcos", "--top", "1", "--json",
            "--prompt", "Question 2: what comes next?", "--completion", " Answer 14.",
        ])
        #expect(attribute.status == 0, "\(attribute.errors)")
        let report = try #require(try JSONSerialization.jsonObject(with: attribute.output) as? [String: Any])
        let top = try #require((report["records"] as? [[String: Any]])?.first)
        #expect(top["id"] as? String == "r2")
        #expect(abs((top["score"] as? Double ?? 0) - 1) < 1e-4)
    }
}
