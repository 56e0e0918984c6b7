import ArgumentParser
import Foundation
import LlamaModel
import TensorCore
import Tokenizers
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a LoRA adapter on JSON Lines records; writes a PEFT adapter and its checkpoints.",
        discussion: """
            Text is encoded with the model folder's tokenizer.json (byte-level BPE) when it has one, else \
            as bytes. Special tokens come only from that tokenizer's post-processor template (e.g. Llama 3's \
            <|begin_of_text|>), put once around a text record and once around prompt + completion; the \
            byte tokenizer adds none. Pre-tokenized records are used verbatim. Training is deterministic \
            for a seed and a BLAS thread count (OPENBLAS_NUM_THREADS).
            """)

    @Option(help: "A Hugging Face Llama model folder.") var model: String
    @Option(help: "JSON Lines records (text, prompt/completion, or pre-tokenized).") var data: String
    @Option(help: "Folder for the PEFT adapter and checkpoint-N folders.") var out: String
    @Option(help: "Start from this PEFT adapter instead of a fresh one.") var initAdapter: String?
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "LoRA alpha.") var alpha = 16.0
    @Option(help: "LoRA dropout on the input of lora_A in training, in [0, 1) (PEFT's lora_dropout).") var dropout = 0.0
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
        ComputeMemory.retainFreedBuffers(upTo: 1 << 30)
        let (base, records) = try loadModelAndRecords(model: model, data: data)
        if let long = records.first(where: { $0.sequence.tokens.count > seqLen }) {
            throw CommandFailure("\(data): record \"\(long.id)\" has \(long.sequence.tokens.count) tokens, more than --seq-len \(seqLen)")
        }
        let adapter: LoRAAdapter
        do {
            if let initAdapter {
                adapter = try LoRAAdapter(folder: initAdapter, model: base.config)
            } else {
                let targetList = try LoRATarget.parse(targets)
                adapter = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: targetList), model: base.config, seed: seed)
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
