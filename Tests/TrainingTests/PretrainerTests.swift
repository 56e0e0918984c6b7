import Foundation
import Testing
import TensorCore
@testable import LlamaModel
@testable import Training

/// A tiny recipe: the real corpus and vocabulary, a model small enough for debug builds.
func tinyRecipe(steps: Int = 12) -> PretrainingRecipe {
    var recipe = PretrainingRecipe.builtIn
    recipe.architecture = .init(
        hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
        contextLength: 32, ropeTheta: 10_000, rmsNormEpsilon: 1e-5)
    recipe.documentCount = 8
    recipe.sequenceLength = 32
    recipe.training.totalSteps = steps
    recipe.training.batchSize = 4
    recipe.training.warmupSteps = 2
    recipe.training.learningRate = 1e-2
    recipe.training.checkpointEvery = nil
    return recipe
}

func temporaryFolder(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
}

@Suite struct PretrainerTests {
    func pretrainer(_ recipe: PretrainingRecipe) -> Pretrainer { recipe.pretrainer }

    @Test func lossFallsFromUniform() throws {
        var trainer = pretrainer(tinyRecipe(steps: 30))
        var reports: [StepReport] = []
        while !trainer.isFinished { reports.append(try trainer.trainStep()) }
        // Initial weights are small, so the first loss is about ln(vocabulary).
        #expect(abs(reports[0].loss - log(Float(PretrainingRecipe.vocabularySize))) < 0.1)
        #expect(reports.suffix(3).map(\.loss).max()! < 0.7 * reports[0].loss, "\(reports.map(\.loss))")
        #expect(reports.allSatisfy { $0.tokens == 4 * 31 && $0.gradientNorm.isFinite })
    }

    @Test func everyParameterMoves() throws {
        // The first warmup step has learning rate 0 (as transformers' schedules); the second moves.
        let recipe = tinyRecipe(steps: 2)
        var trainer = pretrainer(recipe)
        _ = try trainer.trainStep()
        _ = try trainer.trainStep()
        let before = recipe.initialModel.weights.named(config: recipe.modelConfig)
        for ((name, old), (_, new)) in zip(before, trainer.model.weights.named(config: recipe.modelConfig)) {
            #expect(old != new, "\(name) did not change")
        }
        #expect(trainer.model.weights.head == trainer.model.weights.embedding, "tied head follows the embedding")
    }

    @Test func resumingFromACheckpointGivesTheSameWeights() throws {
        let recipe = tinyRecipe(steps: 6)
        var straight = pretrainer(recipe)
        while !straight.isFinished { _ = try straight.trainStep() }

        var first = pretrainer(recipe)
        var rate: Float = 0
        for _ in 0..<3 { rate = try first.trainStep().learningRate }
        let folder = temporaryFolder("pretrain-checkpoint")
        try first.saveCheckpoint(to: folder + "/checkpoint-3", learningRate: rate)
        #expect(Pretrainer.latestCheckpoint(in: folder) == folder + "/checkpoint-3")
        let corpus = recipe.corpusTokens
        var resumed = try Pretrainer(resumingFrom: folder + "/checkpoint-3", stream: corpus.stream, windowStarts: corpus.documentStarts)
        #expect(resumed.step == 3)
        while !resumed.isFinished { _ = try resumed.trainStep() }
        for ((name, a), (_, b)) in zip(straight.model.weights.named(config: recipe.modelConfig), resumed.model.weights.named(config: recipe.modelConfig)) {
            #expect(a == b, "\(name)")
        }
    }

    @Test func savedFolderLoadsWithTheSameLogits() throws {
        let recipe = tinyRecipe()
        let model = recipe.initialModel
        let tokens = [PretrainingRecipe.bosToken] + Array("Wind: southwest 5".utf8).map(Int.init)
        let expected = try model.logits(tokens)
        for (dtype, tolerance) in [(SafeTensors.Dtype.f32, Float(0)), (.f16, 1e-3), (.bf16, 1e-2)] {
            let folder = temporaryFolder("model-\(dtype)")
            try recipe.saveModel(model, to: folder, dtype: dtype)
            let loaded = try LlamaModel(folder: folder)
            #expect(loaded.config == recipe.modelConfig)
            let logits = try loaded.logits(tokens)
            let worst = zip(logits.scalars, expected.scalars).map { abs($0 - $1) }.max()!
            #expect(worst <= tolerance * expected.scalars.map(abs).max()!, "\(dtype): \(worst)")
            let generation = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/generation_config.json"))) as! [String: Int]
            #expect(generation == ["bos_token_id": 256, "eos_token_id": 257, "pad_token_id": 258])
            let saved = try JSONDecoder().decode(PretrainingRecipe.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/recipe.json")))
            #expect(saved == recipe)
        }
    }

    @Test func invalidRecipesNameTheirField() {
        var recipe = tinyRecipe()
        recipe.sequenceLength = 64
        #expect(throws: RecipeError("sequenceLength 64 must lie in 2...32 (architecture.contextLength)")) { try recipe.validate() }
        recipe = tinyRecipe()
        recipe.architecture.keyValueHeadCount = 3
        #expect(throws: RecipeError("architecture.keyValueHeadCount 3 does not divide headCount 4")) { try recipe.validate() }
        recipe = tinyRecipe()
        recipe.training.batchSize = 0
        #expect(throws: RecipeError("training.batchSize must be at least 1, got 0")) { try recipe.validate() }
        #expect(throws: Never.self) { try PretrainingRecipe.builtIn.validate() }
    }
}
