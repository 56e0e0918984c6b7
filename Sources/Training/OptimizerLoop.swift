import Foundation
import LlamaModel
import TensorCore

/// What LoRA training and full-parameter pretraining share, over a flat list of parameters: the
/// micro-batches' gradients summed with weights tokens/total (so accumulation gives one big batch's
/// gradient), clip_grad_norm_, the scheduled learning rate, AdamW, and the moments' checkpoint file.
struct OptimizerLoop: Sendable {
    let options: TrainingOptions
    let optimizer: AdamW
    /// The parameters' names, in the order of the flat lists; the checkpoint names moments after them.
    let names: [String]
    var moments: [AdamWState]
    /// Optimizer steps taken.
    var step = 0

    init(options: TrainingOptions, names: [String], parameters: [Tensor]) {
        precondition(options.totalSteps >= 1 && options.batchSize >= 1 && options.gradientAccumulation >= 1, "invalid training options")
        precondition(names.count == parameters.count, "\(names.count) names for \(parameters.count) parameters")
        self.options = options
        self.names = names
        optimizer = AdamW(weightDecay: options.weightDecay)
        moments = parameters.map { AdamWState(like: $0) }
    }

    /// One optimizer step on `parameters` over `microBatches`; `gradients` returns a micro-batch's
    /// backward result and its gradients in the order of `parameters`.
    mutating func step(
        _ parameters: inout [Tensor], microBatches: [[TrainingSequence]],
        gradients: ([TrainingSequence]) throws(ModelInputError) -> (result: BackwardResult, flat: [Tensor])
    ) throws(ModelInputError) -> StepReport {
        let ignored = Int32(TrainingSequence.ignoreIndex)
        let totalTokens = microBatches.joined().reduce(0) { $0 + $1.shiftedTargets.filter { $0 != ignored }.count }
        var summed: [Tensor] = []
        var lossSum: Float = 0
        for micro in microBatches {
            let (result, flat) = try gradients(micro)
            let tokens = Float(result.tokenCounts.reduce(0, +))
            let weight = tokens / Float(max(totalTokens, 1))
            lossSum += result.loss * tokens
            if summed.isEmpty {
                summed = flat.map { Tensor(zeros: $0.shape) }
            }
            for index in flat.indices { BLAS.axpy(weight, flat[index], &summed[index]) }
        }
        let norm = options.maxGradientNorm.map { clipGradientNorm(&summed, maxNorm: $0) } ?? gradientNorm(summed)
        let rate = options.schedule.rate(base: options.learningRate, step: step, warmupSteps: options.warmupSteps, totalSteps: options.totalSteps)
        step += 1
        for index in parameters.indices {
            optimizer.update(&parameters[index], gradient: summed[index], state: &moments[index], learningRate: rate, step: step)
        }
        return StepReport(step: step, loss: lossSum / Float(max(totalTokens, 1)), learningRate: rate, gradientNorm: norm, tokens: totalTokens)
    }

    // MARK: Checkpoints

    /// Writes the moments as `NAME.exp_avg` and `NAME.exp_avg_sq` tensors.
    func saveMoments(to path: String) throws {
        var tensors: [(name: String, tensor: Tensor)] = []
        for (name, moment) in zip(names, moments) {
            tensors.append((name + ".exp_avg", moment.firstMoment))
            tensors.append((name + ".exp_avg_sq", moment.secondMoment))
        }
        try SafeTensors.write(tensors, to: path)
    }

    /// Reads the moments `saveMoments` wrote, after `step` optimizer steps.
    mutating func loadMoments(from path: String, step: Int) throws {
        let file = try SafeTensorsFile(path: path)
        for (index, name) in names.enumerated() {
            let first = try file.tensor(named: name + ".exp_avg").contiguous()
            let second = try file.tensor(named: name + ".exp_avg_sq").contiguous()
            let shape = moments[index].firstMoment.shape
            guard first.shape == shape && second.shape == shape else {
                throw CheckpointError(description: "\(path): the moments of \(name) have shape \(first.shape), the parameter \(shape)")
            }
            (moments[index].firstMoment, moments[index].secondMoment) = (first, second)
        }
        self.step = step
    }
}

/// A checkpoint that does not fit the model it resumes.
public struct CheckpointError: Error, Equatable, CustomStringConvertible {
    public var description: String
}

/// Writes `value` as pretty, key-sorted JSON, atomically (a trainer's `trainer_state.json`).
func writeJSON(_ value: some Encodable, to path: String) throws {
    try encodedJSON(value).write(to: URL(fileURLWithPath: path), options: .atomic)
}

func encodedJSON(_ value: some Encodable) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(value)
}

func readJSON<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
    try JSONDecoder().decode(type, from: Data(contentsOf: URL(fileURLWithPath: path)))
}
