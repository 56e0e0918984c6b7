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
    public let options: TrainingOptions
    public let records: [TrainingSequence]
    public private(set) var step = 0
    var moments: [[LoRATarget: (a: AdamWState, b: AdamWState)]]
    /// Position in the epoch's order, and the epoch.
    var cursor = 0
    var epoch = 0
    var order: [Int]
    let optimizer: AdamW

    public init(model: LlamaModel, adapter: LoRAAdapter, records: [TrainingSequence], options: TrainingOptions) {
        precondition(!records.isEmpty, "no training records")
        precondition(options.totalSteps >= 1 && options.batchSize >= 1 && options.gradientAccumulation >= 1, "invalid training options")
        self.model = model
        self.adapter = adapter
        self.records = records
        self.options = options
        optimizer = AdamW(weightDecay: options.weightDecay)
        moments = adapter.pairs.map { $0.mapValues { (AdamWState(like: $0.a), AdamWState(like: $0.b)) } }
        order = Self.shuffledOrder(count: records.count, seed: options.seed, epoch: 0)
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
        let totalTokens = microBatches.joined().reduce(0) { $0 + $1.shiftedTargets.filter { $0 != Int32(TrainingSequence.ignoreIndex) }.count }
        // Sum of token losses over all micro-batches / all their tokens, as one big batch would give.
        var summed: [[LoRATarget: LoRAPair]]? = nil
        var lossSum: Float = 0
        for (index, micro) in microBatches.enumerated() {
            let result = try model.backward(micro, mode: .lora(adapter), dropout: dropout(microBatch: index))
            let tokens = Float(result.tokenCounts.reduce(0, +))
            let weight = tokens / Float(max(totalTokens, 1))
            lossSum += result.loss * tokens
            let gradients = result.gradients.lora!
            if summed == nil {
                summed = gradients.map { $0.mapValues { LoRAPair(a: Tensor(zeros: $0.a.shape), b: Tensor(zeros: $0.b.shape)) } }
            }
            for layer in gradients.indices {
                for (target, pair) in gradients[layer] {
                    BLAS.axpy(weight, pair.a, &summed![layer][target]!.a)
                    BLAS.axpy(weight, pair.b, &summed![layer][target]!.b)
                }
            }
        }
        var gradients = summed!
        let keys = gradients.indices.flatMap { layer in gradients[layer].keys.sorted().map { (layer, $0) } }
        var flat = keys.flatMap { [gradients[$0.0][$0.1]!.a, gradients[$0.0][$0.1]!.b] }
        let norm = options.maxGradientNorm.map { clipGradientNorm(&flat, maxNorm: $0) } ?? gradientNorm(flat)
        for (index, (layer, target)) in keys.enumerated() {
            gradients[layer][target] = LoRAPair(a: flat[2 * index], b: flat[2 * index + 1])
        }
        let rate = options.schedule.rate(base: options.learningRate, step: step, warmupSteps: options.warmupSteps, totalSteps: options.totalSteps)
        step += 1
        for (layer, target) in keys {
            optimizer.update(&adapter.pairs[layer][target]!.a, gradient: gradients[layer][target]!.a, state: &moments[layer][target]!.a, learningRate: rate, step: step)
            optimizer.update(&adapter.pairs[layer][target]!.b, gradient: gradients[layer][target]!.b, state: &moments[layer][target]!.b, learningRate: rate, step: step)
        }
        return StepReport(step: step, loss: lossSum / Float(max(totalTokens, 1)), learningRate: rate, gradientNorm: norm, tokens: totalTokens)
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
        var tensors: [(name: String, tensor: Tensor)] = []
        for (layer, targets) in moments.enumerated() {
            for (target, state) in targets {
                for (matrix, moment) in [("A", state.a), ("B", state.b)] {
                    let base = LoRAAdapter.tensorName(layer: layer, target: target, matrix: matrix)
                    tensors.append((base + ".exp_avg", moment.firstMoment))
                    tensors.append((base + ".exp_avg_sq", moment.secondMoment))
                }
            }
        }
        try SafeTensors.write(tensors, to: folder + "/optimizer.safetensors")
        let state = State(step: step, learningRate: learningRate, epoch: epoch, cursor: cursor, options: options)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(state).write(to: URL(fileURLWithPath: folder + "/trainer_state.json"), options: .atomic)
    }

    /// Resumes from a checkpoint folder written by `saveCheckpoint`, with the same records.
    public init(resumingFrom folder: String, model: LlamaModel, records: [TrainingSequence]) throws {
        let state = try JSONDecoder().decode(State.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/trainer_state.json")))
        let adapter = try LoRAAdapter(folder: folder, model: model.config)
        self.init(model: model, adapter: adapter, records: records, options: state.options)
        let file = try SafeTensorsFile(path: folder + "/optimizer.safetensors")
        for layer in moments.indices {
            for target in moments[layer].keys {
                func moment(_ matrix: String) throws -> AdamWState {
                    let base = LoRAAdapter.tensorName(layer: layer, target: target, matrix: matrix)
                    var state = AdamWState(like: Tensor(zeros: [0]))
                    state.firstMoment = try file.tensor(named: base + ".exp_avg").contiguous()
                    state.secondMoment = try file.tensor(named: base + ".exp_avg_sq").contiguous()
                    return state
                }
                moments[layer][target] = (try moment("A"), try moment("B"))
            }
        }
        step = state.step
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
