import Foundation
import LlamaModel
import TensorCore

/// Full-parameter training of a base model on a token stream: each micro-batch is `batchSize`
/// windows of `sequenceLength` tokens, each starting at one of `windowStarts` (document starts, so
/// that position 0 is a `<bos>` as in generation) chosen by a seeded draw; loss on every token. The
/// windows of micro-batch k depend only on the seed and k, so a resumed run sees the same data as an
/// uninterrupted one. The optimizer side (accumulation, clipping, schedule, AdamW) is LoRA
/// training's. Deterministic for a seed and a thread count.
public struct Pretrainer: Sendable {
    public private(set) var model: LlamaModel
    public let stream: [Int]
    /// Offsets in `stream` where windows may start.
    public let windowStarts: [Int]
    public let sequenceLength: Int
    var loop: OptimizerLoop

    public var options: TrainingOptions { loop.options }
    public var step: Int { loop.step }
    public var isFinished: Bool { step >= options.totalSteps }

    /// `windowStarts` nil: any offset.
    public init(model: LlamaModel, stream: [Int], windowStarts: [Int]? = nil, sequenceLength: Int, options: TrainingOptions) {
        precondition(sequenceLength >= 2 && sequenceLength <= model.config.maxPositions, "sequence length \(sequenceLength) outside 2...\(model.config.maxPositions)")
        let starts = (windowStarts ?? Array(0...max(0, stream.count - sequenceLength))).filter { $0 >= 0 && $0 + sequenceLength <= stream.count }
        precondition(!starts.isEmpty, "a stream of \(stream.count) tokens has no window of \(sequenceLength)")
        self.model = model
        self.stream = stream
        self.windowStarts = starts
        self.sequenceLength = sequenceLength
        let named = model.weights.named(config: model.config)
        loop = OptimizerLoop(options: options, names: named.map(\.name), parameters: named.map(\.tensor))
    }

    /// The windows of micro-batch `index` (counted over the whole run).
    func microBatch(_ index: Int) -> [TrainingSequence] {
        var random = SeededRandom(seed: options.seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        return (0..<options.batchSize).map { _ in
            let start = windowStarts[Int(random.next() % UInt64(windowStarts.count))]
            return TrainingSequence(text: Array(stream[start..<start + sequenceLength]))
        }
    }

    /// One optimizer step over `gradientAccumulation` micro-batches.
    public mutating func trainStep() throws(ModelInputError) -> StepReport {
        precondition(!isFinished, "training already ran \(step) steps")
        let first = step * options.gradientAccumulation
        let microBatches = (first..<first + options.gradientAccumulation).map(microBatch)
        let named = model.weights.named(config: model.config)
        var parameters = named.map(\.tensor)
        let model = model
        let report = try loop.step(&parameters, microBatches: microBatches) { micro throws(ModelInputError) in
            let result = try model.backward(micro, mode: .full)
            return (result, result.gradients.full!.named(config: model.config).map(\.tensor))
        }
        let updated = Dictionary(uniqueKeysWithValues: zip(named.map(\.name), parameters))
        self.model.weights = LlamaWeights(named: updated, config: model.config)
        return report
    }
}

// MARK: Checkpoints

/// A checkpoint folder: the model as a Float32 Hugging Face folder, the optimizer's moments, and
/// `trainer_state.json` with the step, the learning rate of that step, the window length and the options.
extension Pretrainer {
    struct State: Codable {
        var step: Int
        var learningRate: Float
        var sequenceLength: Int
        var options: TrainingOptions
    }

    public func saveCheckpoint(to folder: String, learningRate: Float) throws {
        try model.save(to: folder, dtype: .f32)
        try loop.saveMoments(to: folder + "/optimizer.safetensors")
        try writeJSON(State(step: step, learningRate: learningRate, sequenceLength: sequenceLength, options: options), to: folder + "/trainer_state.json")
    }

    /// Resumes from a checkpoint folder written by `saveCheckpoint`, with the same stream and starts.
    public init(resumingFrom folder: String, stream: [Int], windowStarts: [Int]? = nil) throws {
        let state = try readJSON(State.self, from: folder + "/trainer_state.json")
        self.init(model: try LlamaModel(folder: folder), stream: stream, windowStarts: windowStarts, sequenceLength: state.sequenceLength, options: state.options)
        try loop.loadMoments(from: folder + "/optimizer.safetensors", step: state.step)
    }

    /// The checkpoint of `folder` with the most steps (`checkpoint-STEP`), or nil when there is none.
    public static func latestCheckpoint(in folder: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let steps = names.compactMap { name -> Int? in
            guard name.hasPrefix("checkpoint-"), FileManager.default.fileExists(atPath: "\(folder)/\(name)/trainer_state.json") else { return nil }
            return Int(name.dropFirst("checkpoint-".count))
        }
        return steps.max().map { "\(folder)/checkpoint-\($0)" }
    }

    /// Runs the remaining steps, saving `checkpoints/checkpoint-STEP` every `checkpointEvery` steps
    /// and at the end. `progress` sees each step.
    public mutating func run(checkpoints: String, progress: (StepReport) -> Void) throws {
        while !isFinished {
            let report = try trainStep()
            progress(report)
            if let every = options.checkpointEvery, step % every == 0 || isFinished {
                try saveCheckpoint(to: checkpoints + "/checkpoint-\(step)", learningRate: report.learningRate)
            }
        }
    }
}
