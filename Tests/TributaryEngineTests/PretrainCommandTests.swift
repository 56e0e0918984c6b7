import Foundation
import LlamaModel
import Testing
import Training

/// `tributary-engine pretrain` run as a user runs it.
@Suite struct PretrainCommandTests {
    func engine(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let run = try runEngine(arguments)
        return (run.status, String(decoding: run.output, as: UTF8.self), run.errors)
    }

    func folder(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    }

    /// A recipe small enough for a debug build.
    func tinyRecipeFile() throws -> String {
        var recipe = PretrainingRecipe.builtIn
        recipe.architecture = .init(
            hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
            contextLength: 64, ropeTheta: 10_000, rmsNormEpsilon: 1e-5)
        recipe.documentCount = 8
        recipe.sequenceLength = 32
        recipe.training.batchSize = 2
        recipe.training.warmupSteps = 1
        let path = folder("recipe") + ".json"
        try recipe.write(to: path)
        return path
    }

    @Test func writesAFolderThatLoadsAndGenerates() throws {
        let out = folder("pretrained")
        let run = try engine(["pretrain", "--out", out, "--recipe", try tinyRecipeFile(), "--steps", "3", "--checkpoint-every", "2", "--json"])
        #expect(run.status == 0, "\(run.error)")
        let lines = run.output.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.count == 4)
        #expect(lines.prefix(3).map { $0["step"] as? Int } == [1, 2, 3])
        #expect(lines[3]["model"] as? String == out && lines[3]["steps"] as? Int == 3)
        // Checkpoints at 2 and at the end; the folder loads with its byte-level specials.
        #expect(FileManager.default.fileExists(atPath: out + "/checkpoints/checkpoint-2/optimizer.safetensors"))
        #expect(FileManager.default.fileExists(atPath: out + "/checkpoints/checkpoint-3/trainer_state.json"))
        let generator = try TextGenerator(folder: out)
        #expect(generator.model.config.vocabularySize == 264 && generator.promptPrefix == [256] && generator.defaultStopTokens == [257])
        let generate = try engine(["generate", "--model", out, "--prompt", "Wind", "--max-tokens", "4", "--json"])
        #expect(generate.status == 0, "\(generate.error)")
    }

    @Test func resumeNeedsACheckpointOfTheSameRecipe() throws {
        let out = folder("pretrained")
        let recipe = try tinyRecipeFile()
        var run = try engine(["pretrain", "--out", out, "--recipe", recipe, "--resume"])
        #expect(run.status != 0 && run.error.contains("--resume: no checkpoint-N folder in \(out)/checkpoints"), "\(run.error)")
        run = try engine(["pretrain", "--out", out, "--recipe", recipe, "--steps", "2", "--checkpoint-every", "1"])
        #expect(run.status == 0, "\(run.error)")
        run = try engine(["pretrain", "--out", out, "--recipe", recipe, "--steps", "4", "--resume"])
        #expect(run.status != 0 && run.error.contains("was trained with another recipe"), "\(run.error)")
        run = try engine(["pretrain", "--out", out, "--recipe", recipe, "--steps", "2", "--checkpoint-every", "1", "--resume"])
        #expect(run.status == 0, "\(run.error)")
    }

    @Test func badRecipeIsNamed() throws {
        let path = folder("bad") + ".json"
        try Data(#"{"corpusSeed": 1}"#.utf8).write(to: URL(fileURLWithPath: path))
        let run = try engine(["pretrain", "--out", folder("never"), "--recipe", path])
        #expect(run.status != 0 && run.error.contains("\(path): not a pretraining recipe"), "\(run.error)")
    }
}
