import Foundation
import LlamaModel
import Testing
import Training
@testable import Attribution

/// `train`, `index`, then `attribute` and `curate`, as a user runs them.
@Suite struct AttributeCommandTests {
    let commands = IndexCommandTests()

    @Test func attributeAndCurateAnIndexedAdapter() throws {
        let folder = try temporaryFolder()
        let model = try tinyLlama()
        let records = randomRecords(6, seed: 71, vocabularySize: model.config.vocabularySize)
        try commands.writeRecords(records, to: "\(folder)/data.jsonl")
        let train = try commands.engine([
            "train", "--model", fixture("tiny-llama"), "--data", "\(folder)/data.jsonl", "--out", "\(folder)/adapter",
            "--steps", "2", "--batch-size", "3", "--rank", "2", "--targets", "q,v", "--checkpoint-every", "1", "--seq-len", "64",
        ])
        #expect(train.status == 0, "\(train.error)")
        let index = try commands.engine([
            "index", "--model", fixture("tiny-llama"), "--adapter", "\(folder)/adapter", "--data", "\(folder)/data.jsonl",
            "--out", "\(folder)/index",
        ])
        #expect(index.status == 0, "\(index.error)")

        // Querying a training record's own output with Grad-Cos: its own row has cosine 1, the maximum.
        let query = records[2].sequence
        let promptLength = query.labels.prefix { $0 == TrainingSequence.ignoreIndex }.count
        func list(_ tokens: ArraySlice<Int>) -> String { tokens.map(String.init).joined(separator: ",") }
        let attribute = try commands.engine([
            "attribute", "--index", "\(folder)/index", "--method", "gradcos", "--top", "3", "--json",
            "--prompt-tokens", list(query.tokens.prefix(promptLength)),
            "--completion-tokens", list(query.tokens.dropFirst(promptLength)),
        ])
        #expect(attribute.status == 0, "\(attribute.error)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(attribute.output.utf8)) as? [String: Any])
        let top = try #require(report["records"] as? [[String: Any]])
        #expect(top.count == 3)
        #expect(top.first?["id"] as? String == records[2].id)
        #expect(top.first?["contributor"] as? String == records[2].contributor)
        // Cosine 1 at each of the two checkpoints, averaged.
        #expect(abs((top.first?["score"] as? Double ?? 0) - 1) < 1e-4)
        let contributors = try #require(report["contributors"] as? [[String: Any]])
        let shares = contributors.compactMap { $0["share"] as? Double }
        #expect(abs(shares.reduce(0, +) - 1) < 1e-9)
        #expect(report["datanets"] is [[String: Any]] && report["opposing_records"] is [[String: Any]])

        // The command's scores are the library's.
        let attributor = try Attributor(
            index: try GradientIndex(folder: "\(folder)/index"), model: model, adapterFolder: "\(folder)/adapter")
        let expected = try attributor.attribute([query], method: .dataInf, topK: 2)[0]
        let dataInf = try commands.engine([
            "attribute", "--index", "\(folder)/index", "--top", "2", "--json",
            "--prompt-tokens", list(query.tokens.prefix(promptLength)),
            "--completion-tokens", list(query.tokens.dropFirst(promptLength)),
        ])
        let dataInfReport = try #require(try JSONSerialization.jsonObject(with: Data(dataInf.output.utf8)) as? [String: Any])
        let scores = (dataInfReport["records"] as? [[String: Any]] ?? []).compactMap { $0["score"] as? Double }
        // Equal up to the decimal round trip of JSON (Foundation on Linux may print a Double with 16 digits).
        #expect(scores.count == 2 && zip(scores, expected.records.map(\.score)).allSatisfy { abs($0 - $1) <= 1e-12 * abs($1) })

        let curate = try commands.engine([
            "curate", "--index", "\(folder)/index", "--validation", "\(folder)/data.jsonl", "--method", "graddot", "--json",
        ])
        #expect(curate.status == 0, "\(curate.error)")
        let curation = try #require(try JSONSerialization.jsonObject(with: Data(curate.output.utf8)) as? [String: Any])
        #expect(curation.keys.contains { $0.lowercased().contains("harmful") })
    }

    @Test func anotherAdapterOrABadQueryIsRefusedByName() throws {
        let folder = try temporaryFolder()
        let model = try tinyLlama()
        try commands.writeRecords(randomRecords(3, seed: 72, vocabularySize: model.config.vocabularySize), to: "\(folder)/data.jsonl")
        for name in ["a", "b"] {
            let train = try commands.engine([
                "train", "--model", fixture("tiny-llama"), "--data", "\(folder)/data.jsonl", "--out", "\(folder)/\(name)",
                "--steps", "1", "--batch-size", "3", "--rank", "2", "--targets", "q", "--seed", name == "a" ? "1" : "2", "--seq-len", "64",
            ])
            #expect(train.status == 0, "\(train.error)")
        }
        _ = try commands.engine([
            "index", "--model", fixture("tiny-llama"), "--adapter", "\(folder)/a", "--data", "\(folder)/data.jsonl",
            "--out", "\(folder)/index",
        ])
        let wrongAdapter = try commands.engine([
            "attribute", "--index", "\(folder)/index", "--adapter", "\(folder)/b", "--prompt-tokens", "1", "--completion-tokens", "2",
        ])
        #expect(wrongAdapter.status != 0 && wrongAdapter.error.contains("is not the adapter the gradient index"), "\(wrongAdapter.error)")
        let outside = try commands.engine([
            "attribute", "--index", "\(folder)/index", "--prompt-tokens", "1", "--completion-tokens", "99999",
        ])
        #expect(outside.status != 0 && outside.error.contains("99999"), "\(outside.error)")
        let mixed = try commands.engine(["attribute", "--index", "\(folder)/index", "--prompt", "a", "--completion-tokens", "2"])
        #expect(mixed.status != 0 && mixed.error.contains("either --prompt and --completion"), "\(mixed.error)")
    }
}
