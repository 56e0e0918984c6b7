import ArgumentParser
import Foundation
import TensorCore
import Training

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain a byte-level Llama on the generated sample corpus; writes a Hugging Face model folder.",
        discussion: """
            Without --recipe, the recipe of models/tributary-base is used. The folder gets config.json, \
            model.safetensors (F16 or BF16), generation_config.json and the recipe as recipe.json. \
            Checkpoints go to --checkpoints every training.checkpointEvery steps; --resume continues \
            from the latest one. The same recipe and BLAS thread count give the same weights.
            """)

    @Option(help: "Folder for the model.") var out: String
    @Option(help: "A recipe JSON file (as --print-recipe writes).") var recipe: String?
    @Option(help: "Optimizer steps (overrides the recipe).") var steps: Int?
    @Option(help: "Seed of initialisation and batches (overrides the recipe's initSeed and training.seed).") var seed: UInt64?
    @Option(help: "Save a checkpoint every N steps (overrides the recipe).") var checkpointEvery: Int?
    @Option(help: "Folder for checkpoint-N folders (default: OUT/checkpoints).") var checkpoints: String?
    @Option(help: "Storage of model.safetensors: f16 or bf16.") var dtype = "f16"
    @Flag(help: "Continue from the latest checkpoint in --checkpoints.") var resume = false
    @Flag(help: "Print the recipe as JSON and exit.") var printRecipe = false
    @Flag(help: "Print one JSON object per step, then a summary.") var json = false

    func run() throws {
        var recipe = PretrainingRecipe.builtIn
        do {
            if let path = self.recipe { recipe = try PretrainingRecipe(contentsOf: path) }
        } catch { throw CommandFailure(error.description) }
        if let steps { recipe.training.totalSteps = steps }
        if let seed { (recipe.initSeed, recipe.training.seed) = (seed, seed) }
        if let checkpointEvery { recipe.training.checkpointEvery = checkpointEvery }
        do { try recipe.validate() } catch { throw CommandFailure("recipe: \(error.description)") }
        if printRecipe {
            print(recipe.json)
            return
        }
        let storage: SafeTensors.Dtype
        switch dtype {
        case "f16": storage = .f16
        case "bf16": storage = .bf16
        default: throw ValidationError("--dtype: \"\(dtype)\" is not f16 or bf16")
        }
        let checkpointFolder = checkpoints ?? out + "/checkpoints"
        let recipeFile = checkpointFolder + "/recipe.json"
        var trainer: Pretrainer
        do {
            if resume {
                guard let latest = Pretrainer.latestCheckpoint(in: checkpointFolder) else {
                    throw CommandFailure("--resume: no checkpoint-N folder in \(checkpointFolder)")
                }
                guard try PretrainingRecipe(contentsOf: recipeFile) == recipe else {
                    throw CommandFailure("--resume: \(checkpointFolder) was trained with another recipe (\(recipeFile)) than this one")
                }
                let corpus = recipe.corpusTokens
                trainer = try Pretrainer(resumingFrom: latest, stream: corpus.stream, windowStarts: corpus.documentStarts)
            } else {
                try FileManager.default.createDirectory(atPath: checkpointFolder, withIntermediateDirectories: true)
                try recipe.write(to: recipeFile)
                trainer = recipe.pretrainer
            }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("\(error)")
        }
        let progress = ProgressDisplay(total: recipe.training.totalSteps, firstStep: trainer.step, json: json)
        try trainer.run(checkpoints: checkpointFolder) { progress.show($0) }
        try recipe.saveModel(trainer.model, to: out, dtype: storage)
        progress.finish(output: out, kind: "model")
    }
}
