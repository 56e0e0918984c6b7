import Foundation
import LlamaModel
import TensorCore

/// Hyperparameters of a LoRA training run.
public struct TrainingOptions: Sendable, Equatable, Codable {
    public var learningRate: Float = 1e-3
    public var schedule: LearningRateSchedule = .cosine
    public var warmupSteps = 0
    /// Optimizer steps in the run.
    public var totalSteps: Int
    /// Sequences per micro-batch.
    public var batchSize = 8
    /// Micro-batches whose gradients are summed before each optimizer step.
    public var gradientAccumulation = 1
    /// clip_grad_norm_ limit; nil for none.
    public var maxGradientNorm: Float? = 1
    public var weightDecay: Float = 0
    public var seed: UInt64 = 0
    /// Save a checkpoint every this many optimizer steps; nil for none.
    public var checkpointEvery: Int? = nil

    public init(totalSteps: Int) { self.totalSteps = totalSteps }
}

/// What one optimizer step did.
public struct StepReport: Sendable {
    public var step: Int
    public var loss: Float
    public var learningRate: Float
    public var gradientNorm: Float
    public var tokens: Int
}

/// Trains a LoRA adapter on a frozen base: seeded shuffling per epoch, gradient accumulation,
/// AdamW (torch semantics), warmup + schedule, gradient clipping, and checkpoints that keep the
/// learning rate of their step. Deterministic for a seed and a thread count.
public struct LoRATrainer: Sendable {
    public let model: LlamaModel
    public private(set) var adapter: LoRAAdapter
    public let records: [TrainingSequence]
    var loop: OptimizerLoop
    /// The adapter's matrices in the loop's order: (layer, target, A or B).
    let keys: [(layer: Int, target: LoRATarget, isA: Bool)]
    /// Position in the epoch's order, and the epoch.
    var cursor = 0
    var epoch = 0
    var order: [Int]

    public var options: TrainingOptions { loop.options }
    public var step: Int { loop.step }

    public init(model: LlamaModel, adapter: LoRAAdapter, records: [TrainingSequence], options: TrainingOptions) {
        precondition(!records.isEmpty, "no training records")
        self.model = model
        self.adapter = adapter
        self.records = records
        keys = adapter.pairs.indices.flatMap { layer in
            adapter.pairs[layer].keys.sorted().flatMap { [(layer, $0, true), (layer, $0, false)] }
        }
        let names = keys.map { LoRAAdapter.tensorName(layer: $0.layer, target: $0.target, matrix: $0.isA ? "A" : "B") }
        loop = OptimizerLoop(options: options, names: names, parameters: Self.flatten(adapter.pairs, keys))
        order = Self.shuffledOrder(count: records.count, seed: options.seed, epoch: 0)
    }

    static func flatten(_ pairs: [[LoRATarget: LoRAPair]], _ keys: [(layer: Int, target: LoRATarget, isA: Bool)]) -> [Tensor] {
        keys.map { $0.isA ? pairs[$0.layer][$0.target]!.a : pairs[$0.layer][$0.target]!.b }
    }

    /// A seeded Fisher-Yates permutation for `epoch`.
    static func shuffledOrder(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var random = SeededRandom(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(random.next() % UInt64(i + 1)))
        }
        return order
    }

    mutating func nextMicroBatch() -> [TrainingSequence] {
        var batch: [TrainingSequence] = []
        while batch.count < options.batchSize {
            if cursor == order.count {
                epoch += 1
                cursor = 0
                order = Self.shuffledOrder(count: records.count, seed: options.seed, epoch: epoch)
            }
            batch.append(records[order[cursor]])
            cursor += 1
        }
        return batch
    }

    public var isFinished: Bool { step >= options.totalSteps }

    /// The adapter's lora_dropout for a micro-batch of this step: masks drawn from the seed, the step
    /// and the micro-batch, so a resumed run draws the same ones.
    func dropout(microBatch: Int) -> LoRADropout? {
        guard adapter.config.dropout > 0 else { return nil }
        let draw = UInt64(step * options.gradientAccumulation + microBatch + 1)
        return LoRADropout(probability: Float(adapter.config.dropout), seed: options.seed ^ (draw &* 0xA076_1D64_78BD_642F))
    }

    /// One optimizer step over `gradientAccumulation` micro-batches.
    public mutating func trainStep() throws(ModelInputError) -> StepReport {
        precondition(!isFinished, "training already ran \(step) steps")
        let microBatches = (0..<options.gradientAccumulation).map { _ in nextMicroBatch() }
        var parameters = Self.flatten(adapter.pairs, keys)
        let dropouts = microBatches.indices.map { dropout(microBatch: $0) }
        let (model, adapter, keys) = (model, adapter, keys)
        var microBatch = 0
        let report = try loop.step(&parameters, microBatches: microBatches) { micro throws(ModelInputError) in
            defer { microBatch += 1 }
            let result = try model.backward(micro, mode: .lora(adapter), dropout: dropouts[microBatch])
            return (result, Self.flatten(result.gradients.lora!, keys))
        }
        for (key, parameter) in zip(keys, parameters) {
            if key.isA { self.adapter.pairs[key.layer][key.target]!.a = parameter } else { self.adapter.pairs[key.layer][key.target]!.b = parameter }
        }
        return report
    }
}

// MARK: Checkpoints

/// A checkpoint folder: the adapter in PEFT format, the optimizer's moments, and `trainer_state.json`
/// with the step, the learning rate used at that step (TracIn weights checkpoints by it), and the
/// data position.
extension LoRATrainer {
    struct State: Codable {
        var step: Int
        var learningRate: Float
        var epoch: Int
        var cursor: Int
        var options: TrainingOptions
    }

    public func saveCheckpoint(to folder: String, learningRate: Float) throws {
        try adapter.save(to: folder)
        try loop.saveMoments(to: folder + "/optimizer.safetensors")
        try writeJSON(State(step: step, learningRate: learningRate, epoch: epoch, cursor: cursor, options: options), to: folder + "/trainer_state.json")
    }

    /// Resumes from a checkpoint folder written by `saveCheckpoint`, with the same records.
    public init(resumingFrom folder: String, model: LlamaModel, records: [TrainingSequence]) throws {
        let state = try readJSON(State.self, from: folder + "/trainer_state.json")
        let adapter = try LoRAAdapter(folder: folder, model: model.config)
        self.init(model: model, adapter: adapter, records: records, options: state.options)
        try loop.loadMoments(from: folder + "/optimizer.safetensors", step: state.step)
        epoch = state.epoch
        cursor = state.cursor
        order = Self.shuffledOrder(count: records.count, seed: options.seed, epoch: epoch)
    }
}

extension LoRATrainer {
    /// Runs the remaining steps. Every `checkpointEvery` steps it saves `output/checkpoint-STEP`;
    /// at the end it writes the adapter to `output` in PEFT format. `progress` sees each step.
    public mutating func run(output: String, progress: (StepReport) -> Void) throws {
        while !isFinished {
            let report = try trainStep()
            progress(report)
            if let every = options.checkpointEvery, step % every == 0 || isFinished {
                try saveCheckpoint(to: output + "/checkpoint-\(step)", learningRate: report.learningRate)
            }
        }
        try adapter.save(to: output)
    }
}
