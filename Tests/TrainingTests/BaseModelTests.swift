import Foundation
import Testing
import TensorCore
import LlamaModel
import SampleCorpus
import Training

/// The committed built-in base model, `models/tributary-base`.
@Suite struct BaseModelTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../models/tributary-base").standardized.path

    @Test func loadsAndFitsTheSizeLimit() throws {
        let generator = try TextGenerator(folder: Self.folder)
        let recipe = try PretrainingRecipe(contentsOf: Self.folder + "/recipe.json")
        #expect(generator.model.config == recipe.modelConfig)
        #expect(generator.promptPrefix == [PretrainingRecipe.bosToken] && generator.defaultStopTokens == [PretrainingRecipe.eosToken])
        let size = try FileManager.default.attributesOfItem(atPath: Self.folder + "/model.safetensors")[.size] as! Int
        #expect(size <= 16 << 20, "\(size) bytes")
    }

    /// The base model has learnt the corpus: held-out documents of every domain cost far less than
    /// the uniform ln(264) = 5.58 nats per byte.
    @Test func heldOutDocumentsAreWellPredicted() throws {
        let model = try LlamaModel(folder: Self.folder)
        let heldOut = SampleCorpus(seed: 424_242)
        for domain in CorpusDomain.allCases {
            let tokens = [PretrainingRecipe.bosToken] + heldOut.records(domain, count: 1, contributor: "x")[0].text.utf8.map(Int.init)
            let targets = (tokens.dropFirst() + [-100]).map(Int32.init)
            let loss = try Kernels.crossEntropy(logits: model.logits(tokens), targets: targets).meanLoss
            #expect(loss < 1.2, "\(domain): \(loss) nats per byte")
        }
    }

    /// A short LoRA run on one domain's records makes the model write like that domain: from a
    /// neutral start (only `<bos>`), seeded samples read as that domain far more often than the base's.
    @Test func aShortLoRARunSpecialisesTheBase() throws {
        let domain = CorpusDomain.astronomy
        let generator = try TextGenerator(folder: Self.folder)
        let records = SampleCorpus(seed: 77).records(domain, count: 32, contributor: "dana").map {
            TrainingSequence(text: [PretrainingRecipe.bosToken] + $0.text.utf8.map(Int.init) + [PretrainingRecipe.eosToken])
        }
        var options = TrainingOptions(totalSteps: 30)
        options.learningRate = 3e-3
        options.batchSize = 4
        options.warmupSteps = 3
        options.seed = 5
        let adapter = try LoRAAdapter(config: LoRAConfig(rank: 8, alpha: 16, targets: [.query, .key, .value, .output]), model: generator.model.config, seed: 6)
        var trainer = LoRATrainer(model: generator.model, adapter: adapter, records: records, options: options)
        while !trainer.isFinished { _ = try trainer.trainStep() }

        let classifier = DomainClassifier()
        func share(_ adapter: LoRAAdapter?) throws -> Double {
            var total = 0.0
            for seed in 0..<4 {
                let options = GenerationOptions(maxNewTokens: 160, sampling: SamplingParameters(temperature: 0.8, seed: UInt64(seed)))
                let text = try generator.generate(prompt: "", options: options, adapter: adapter).text
                total += classifier.scores(text)[domain]!
            }
            return total / 4
        }
        let base = try share(nil), specialised = try share(trainer.adapter)
        #expect(specialised >= 0.75 && specialised >= base + 0.3, "base \(base), adapter \(specialised)")

        // Greedy from a prompt of the domain stays in the domain.
        let greedy = try generator.generate(prompt: "Session notes", options: GenerationOptions(maxNewTokens: 120), adapter: trainer.adapter).text
        #expect(classifier.classify(greedy) == domain, "\(greedy)")
    }
}
