import ArgumentParser
import Attribution
import Foundation
import LlamaModel
import SampleCorpus
import Tokenizers
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure attribution quality on a LoRA fine-tune: LDS, corrupted-record AUC, planted-fact tracing.",
        discussion: """
            Generates the benchmark data from the sample corpus (three contributors' domains, planted facts, a fifth \
            of records corrupted), fine-tunes LoRA adapters on the model, retrains on random subsets for the linear \
            datamodeling score, and prints every scorer side by side. Method: docs/ATTRIBUTION.md, "Evaluation".
            """)

    @Option(help: "A byte-level Llama model folder.") var model = "models/tributary-base"
    @Option(help: "Subset retrains for the LDS.") var subsets = 32
    @Option(help: "Training records per domain (three domains).") var recordsPerDomain = 16
    @Option(help: "Planted facts, one record each.") var facts = 6
    @Option(help: "Held-out queries (and validation records) per domain.") var heldOut = 4
    @Option(help: "Optimizer steps per training run.") var steps = 30
    @Option(help: "Sequences per step.") var batchSize = 8
    @Option(help: "Peak learning rate.") var lr: Float = 2e-3
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "Seed of the data, the subsets and the adapters.") var seed: UInt64 = 0
    @Flag(help: "Print the results as JSON.") var json = false

    func validate() throws {
        guard subsets >= 2 else { throw ValidationError("--subsets must be at least 2") }
        guard recordsPerDomain >= 2, facts >= 1, heldOut >= 1, steps >= 1, batchSize >= 1, rank >= 1 else {
            throw ValidationError("--records-per-domain >= 2, --facts, --held-out, --steps, --batch-size and --rank >= 1")
        }
    }

    func run() throws {
        let base: LlamaModel
        do { base = try LlamaModel(folder: model) } catch { throw CommandFailure("\(error)") }
        let tokenizer = try ByteTokenizer(vocabularySize: base.config.vocabularySize)
        func sequence(_ record: AttributionBenchmark.Record) -> TrainingSequence {
            TrainingSequence(prompt: tokenizer.encode(record.prompt), completion: tokenizer.encode(record.completion))
        }
        let data = AttributionBenchmark(
            seed: seed, recordsPerDomain: recordsPerDomain, factCount: facts, heldOutPerDomain: heldOut)
        var options = TrainingOptions(totalSteps: steps)
        options.learningRate = lr
        options.batchSize = batchSize
        options.seed = seed
        let recipe = EvaluationRecipe(
            lora: LoRAConfig(rank: rank, alpha: Double(2 * rank), targets: [.query, .key, .value, .output]),
            options: options, adapterSeed: seed, checkpointEvery: max(1, steps / 3))
        let evaluator = AttributionEvaluator(model: base, recipe: recipe)
        let start = Date()
        // Progress goes to standard error, so stdout holds only the results.
        func note(_ message: String) { FileHandle.standardError.write(Data((message + "\n").utf8)) }

        note("planted facts: training on \(data.training.count) records")
        let tracing = try evaluator.factTracing(
            records: data.training.map(sequence), contributors: data.training.map(\.contributor),
            facts: data.facts.map { (sequence($0.output), $0.record) })
        note("corrupted records: training on \(data.corruptedTraining.count) records, \(data.corrupted.filter { $0 }.count) corrupted")
        let corruption = try evaluator.corruptionDetection(
            records: data.corruptedTraining.map(sequence), corrupted: data.corrupted,
            validation: data.validation.map(sequence))
        let lds = try evaluator.linearDatamodelingScore(
            records: data.training.map(sequence), queries: data.queries.map(sequence), subsets: subsets, seed: seed
        ) { done, total in note("LDS: retrain \(done)/\(total)") }

        let results = EvaluationResults(
            methods: recipe.methods.map { method in
                EvaluationResults.Method(
                    method: method.rawValue, lds: lds.interval(method),
                    ldsOverGradDot: lds.difference(method, over: .gradDot), corruption: corruption[method]!,
                    factTracing: tracing[method]!)
            },
            subsets: subsets, trainingRecords: data.training.count, queries: data.queries.count, seed: seed,
            seconds: Date().timeIntervalSince(start))
        if json { try printJSON(results) } else { print(results.markdownTable) }
    }
}

/// What `evaluate` reports, one row per scorer.
struct EvaluationResults: Encodable {
    struct Method: Encodable {
        var method: String
        var lds: MeanInterval
        /// The paired per-query difference from Grad-Dot's LDS.
        var ldsOverGradDot: MeanInterval
        var corruption: CorruptionDetection
        var factTracing: FactTracing
    }
    var methods: [Method]
    var subsets, trainingRecords, queries: Int
    var seed: UInt64
    var seconds: Double

    var markdownTable: String {
        var lines = [
            "| method | LDS (mean Spearman, 95% CI) | LDS minus Grad-Dot (paired, 95% CI) | corrupted AUC, self-influence | corrupted AUC, validation influence | planted facts: top-1 record | top-1 contributor |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in methods {
            let selfAUC = row.corruption.selfInfluenceAUC.map { String(format: "%.3f", $0) } ?? "n/a"
            lines.append(String(
                format: "| %@ | %.3f [%.3f, %.3f] | %+.3f [%+.3f, %+.3f] | %@ | %.3f | %.2f | %.2f |", row.method,
                row.lds.mean, row.lds.low, row.lds.high, row.ldsOverGradDot.mean, row.ldsOverGradDot.low,
                row.ldsOverGradDot.high, selfAUC, row.corruption.validationAUC, row.factTracing.recordAccuracy,
                row.factTracing.contributorAccuracy))
        }
        lines.append("")
        lines.append(String(
            format: "%d subsets, %d training records, %d queries, seed %llu, %.0f s", subsets, trainingRecords, queries,
            seed, seconds))
        return lines.joined(separator: "\n")
    }
}
