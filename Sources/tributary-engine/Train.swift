import ArgumentParser
import Foundation
import LlamaModel
import Tokenizers
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a LoRA adapter on JSON Lines records; writes a PEFT adapter and its checkpoints.")

    @Option(help: "A Hugging Face Llama model folder.") var model: String
    @Option(help: "JSON Lines records (text, prompt/completion, or pre-tokenized).") var data: String
    @Option(help: "Folder for the PEFT adapter and checkpoint-N folders.") var out: String
    @Option(help: "Start from this PEFT adapter instead of a fresh one.") var initAdapter: String?
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "LoRA alpha.") var alpha = 16.0
    @Option(help: "Targets: q,k,v,o,gate,up,down or all-linear.") var targets = "q,k,v,o"
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Passes over the data (ignored with --steps).") var epochs = 1
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Sequences per step.") var batchSize = 8
    @Option(help: "Longest sequence; longer records are refused.") var seqLen = 256
    @Option(help: "Seed for initialisation and shuffling.") var seed: UInt64 = 0
    @Option(help: "Save a checkpoint every N steps.") var checkpointEvery: Int?
    @Flag(help: "Print one JSON object per step, then a summary.") var json = false

    func run() throws {
        let base: LlamaModel
        do { base = try LlamaModel(folder: model) } catch { throw CommandFailure(error.description) }
        guard !FileManager.default.fileExists(atPath: model + "/tokenizer.json") else {
            throw CommandFailure("\(model)/tokenizer.json: BPE tokenizers are not supported by train yet; use pre-tokenized records or a byte-level model")
        }
        let records: [TrainingRecord]
        do {
            let tokenizer = try ByteTokenizer(vocabularySize: base.config.vocabularySize)
            records = try readTrainingRecords(path: data, vocabularySize: base.config.vocabularySize, encode: tokenizer.encode)
        } catch { throw CommandFailure("\(error)") }
        guard !records.isEmpty else { throw CommandFailure("\(data): no records") }
        if let long = records.first(where: { $0.sequence.tokens.count > seqLen }) {
            throw CommandFailure("\(data): record \"\(long.id)\" has \(long.sequence.tokens.count) tokens, more than --seq-len \(seqLen)")
        }
        let adapter: LoRAAdapter
        do {
            if let initAdapter {
                adapter = try LoRAAdapter(folder: initAdapter, model: base.config)
            } else {
                let targetList = try LoRATarget.parse(targets)
                adapter = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: alpha, targets: targetList), model: base.config, seed: seed)
            }
        } catch { throw CommandFailure(error.description) }
        var options = TrainingOptions(totalSteps: steps ?? max(1, epochs * ((records.count + batchSize - 1) / batchSize)))
        options.learningRate = lr
        options.batchSize = batchSize
        options.seed = seed
        options.checkpointEvery = checkpointEvery
        options.warmupSteps = options.totalSteps / 20

        var trainer = LoRATrainer(model: base, adapter: adapter, records: records.map(\.sequence), options: options)
        let progress = ProgressDisplay(total: options.totalSteps, json: json)
        try trainer.run(output: out) { progress.show($0) }
        progress.finish(output: out)
    }
}
