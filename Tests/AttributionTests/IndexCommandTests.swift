import Foundation
import LlamaModel
import TensorCore
import Testing
import Training
@testable import Attribution

/// `tributary-engine train` then `tributary-engine index`, as a user runs them.
@Suite struct IndexCommandTests {
    static let engine = URL(fileURLWithPath: CommandLine.arguments[0])
        .deletingLastPathComponent().appendingPathComponent("tributary-engine").path

    struct Run {
        var status: Int32
        var output: String
        var error: String
    }

    func engine(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.engine)
        process.arguments = arguments
        let (output, error) = (Pipe(), Pipe())
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), error: String(decoding: err, as: UTF8.self))
    }

    func writeRecords(_ records: [TrainingRecord], to path: String) throws {
        let lines = try records.map { record -> String in
            let prompt = record.sequence.labels.prefix { $0 == TrainingSequence.ignoreIndex }.count
            var object: [String: Any] = [
                "id": record.id, "contributor": record.contributor,
                "prompt_tokens": Array(record.sequence.tokens.prefix(prompt)), "completion_tokens": Array(record.sequence.tokens.dropFirst(prompt)),
            ]
            if let datanet = record.datanet { object["datanet"] = datanet }
            if let version = record.datanetVersion { object["datanet_version"] = version }
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func trainThenIndexThenAppend() throws {
        let folder = try temporaryFolder()
        let model = try tinyLlama()
        let records = randomRecords(6, seed: 51, vocabularySize: model.config.vocabularySize)
        try writeRecords(Array(records.prefix(4)), to: "\(folder)/first.jsonl")
        try writeRecords(Array(records.dropFirst(4)), to: "\(folder)/more.jsonl")
        let train = try engine([
            "train", "--model", fixture("tiny-llama"), "--data", "\(folder)/first.jsonl", "--out", "\(folder)/adapter",
            "--steps", "2", "--batch-size", "2", "--rank", "2", "--targets", "q,v", "--checkpoint-every", "1", "--seq-len", "64",
        ])
        #expect(train.status == 0, "\(train.error)")

        let arguments = [
            "index", "--model", fixture("tiny-llama"), "--adapter", "\(folder)/adapter", "--out", "\(folder)/index",
            "--projection", "rademacher", "--dim", "5", "--seed", "3", "--json",
        ]
        let build = try engine(arguments + ["--data", "\(folder)/first.jsonl"])
        #expect(build.status == 0, "\(build.error)")
        let lines = build.output.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.dropLast().allSatisfy { $0["records_per_second"] != nil && $0["checkpoint"] != nil })
        #expect(lines.last?["records"] as? Int == 4)
        #expect(lines.last?["checkpoints"] as? [String] == ["checkpoint-1", "checkpoint-2"])

        let append = try engine(arguments + ["--data", "\(folder)/more.jsonl"])
        #expect(append.status == 0, "\(append.error)")
        let index = try GradientIndex(folder: "\(folder)/index")
        #expect(index.records.map(\.id) == records.map(\.id))
        #expect(index.records.map(\.datanet) == records.map(\.datanet))
        for (position, checkpoint) in index.checkpoints.enumerated() {
            let adapter = try LoRAAdapter(folder: "\(folder)/adapter/\(checkpoint.name)", model: model.config)
            let layout = try GradientLayout(adapter: adapter, projection: ProjectionSpec(kind: .rademacher, dimension: 5, seed: 3))
            let expected = try GradientExtractor(model: model, adapter: adapter, layout: layout).rows(for: records.map(\.sequence))
            let error = relativeError(try index.rows(checkpoint: position).scalars, expected.scalars)
            // The command runs one BLAS thread per pass, this process BLAS's default: the same sums in another order
            // (1.01e-6 here with Debian's OpenBLAS 0.3.21 pthread build).
            #expect(error <= 1e-5, "checkpoint \(checkpoint.name): relative error \(error)")
        }

        // Appending the same records again, or with another projection, is refused with the reason.
        let again = try engine(arguments + ["--data", "\(folder)/more.jsonl"])
        #expect(again.status != 0 && again.error.contains("record \"r4\" is already in the index"), "\(again.error)")
        var otherProjection = arguments + ["--data", "\(folder)/more.jsonl"]
        otherProjection[otherProjection.firstIndex(of: "5")!] = "6"
        let refused = try engine(otherProjection)
        #expect(refused.status != 0 && refused.error.contains("the index was built with projection"), "\(refused.error)")
    }

    @Test func badArgumentsAreNamed() throws {
        let folder = try temporaryFolder()
        let unknown = try engine(["index", "--model", fixture("tiny-llama"), "--adapter", folder, "--data", "x", "--out", folder, "--projection", "sketch"])
        #expect(unknown.status != 0 && unknown.error.contains("sketch"), "\(unknown.error)")
        let noDim = try engine(["index", "--model", fixture("tiny-llama"), "--adapter", folder, "--data", "x", "--out", folder, "--projection", "gaussian"])
        #expect(noDim.status != 0 && noDim.error.contains("--dim is required"), "\(noDim.error)")
        let missing = try engine(["index", "--model", fixture("tiny-llama"), "--adapter", folder, "--data", "\(folder)/none.jsonl", "--out", "\(folder)/index"])
        #expect(missing.status != 0 && missing.error.contains("none.jsonl"), "\(missing.error)")
    }
}
