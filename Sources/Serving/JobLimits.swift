import Foundation
import LlamaModel
import Store

/// The bounds of every job parameter, in one place: the coordinator checks them when a job is submitted (and refuses
/// it with `invalid_argument` naming the field, before anything is written), and ``JobRunner`` checks them again
/// before an attempt touches a file, so that a job written to the store by other means cannot crash an engine
/// either. Bounds that depend on the engine (its model, its memory) are checked by the runner:
/// ``MemoryEstimate``.
public enum JobLimits {
    /// Characters of an adapter's name (the store's own limit), without control characters.
    public static let adapterNameCharacters = 1...200
    /// UTF-8 bytes of the base model's name, informational.
    public static let baseModelBytes = 0...200
    /// Datanet versions one job trains on.
    public static let versions = 1...64
    public static let rank = 1...1024
    /// LoRA's alpha: finite and positive.
    public static let alpha: ClosedRange<Double> = 1e-6...1e6
    /// The target module names a job may give (none: q, k, v, o).
    public static let knownTargets = ["q", "k", "v", "o", "gate", "up", "down", "all-linear"]
    /// Finite and positive.
    public static let learningRate: ClosedRange<Float> = 1e-9...10
    /// Optimizer steps of a job, given as steps or as epochs over its records.
    public static let steps = 0...1_000_000
    public static let epochs = 0...10_000
    public static let batchSize = 1...4096
    public static let sequenceLength = 2...65_536
    public static let checkpointEvery = 0...1_000_000
    /// Projected columns per LoRA matrix of an index (0: exact gradients).
    public static let projectionDimension = 0...65_536

    /// A parameter out of its bounds, named as the wire names it.
    public struct Violation: Error, Equatable, CustomStringConvertible {
        public var field: String
        public var reason: String

        public var description: String { "\(field): \(reason)" }
    }

    /// Checks a training job's parameters.
    ///
    /// - Throws: ``Violation`` naming the first field out of bounds.
    public static func check(_ job: TrainJob) throws(Violation) {
        let name = job.adapterName
        guard adapterNameCharacters.contains(name.count), !name.unicodeScalars.contains(where: isControl),
            name.trimmingCharacters(in: .whitespacesAndNewlines) == name
        else {
            throw Violation(field: "adapter_name", reason: "must be \(adapterNameCharacters.lowerBound) to \(adapterNameCharacters.upperBound) characters, without control characters or surrounding spaces")
        }
        try within(job.versions.count, versions, "versions", "datanet versions")
        guard Set(job.versions).count == job.versions.count else {
            throw Violation(field: "versions", reason: "a datanet version is named twice")
        }
        for version in job.versions where version.number < 1 {
            throw Violation(field: "versions", reason: "version numbers start at 1, not \(version.number)")
        }
        try within(job.rank, rank, "rank")
        guard job.alpha.isFinite, alpha.contains(job.alpha) else {
            throw Violation(field: "alpha", reason: "\(job.alpha) is not a finite number from \(alpha.lowerBound) to \(alpha.upperBound)")
        }
        guard !job.targets.isEmpty, job.targets.count <= knownTargets.count, Set(job.targets).count == job.targets.count else {
            throw Violation(field: "targets", reason: "name 1 to \(knownTargets.count) distinct target modules")
        }
        for target in job.targets where !knownTargets.contains(target) {
            throw Violation(field: "targets", reason: "unknown target module \"\(target.prefix(40))\" (use \(knownTargets.joined(separator: ", ")))")
        }
        guard job.learningRate.isFinite, learningRate.contains(job.learningRate) else {
            throw Violation(field: "learning_rate", reason: "\(job.learningRate) is not a finite number from \(learningRate.lowerBound) to \(learningRate.upperBound)")
        }
        try within(job.steps, steps, "steps")
        try within(job.epochs, epochs, "epochs")
        // Steps win over epochs when both are given (the runner's rule); the wire asks for exactly one.
        guard job.steps > 0 || job.epochs > 0 else {
            throw Violation(field: "steps, epochs", reason: "give exactly one of them (the other 0)")
        }
        try within(job.batchSize, batchSize, "batch_size")
        try within(job.sequenceLength, sequenceLength, "sequence_length")
        try within(job.checkpointEvery, checkpointEvery, "checkpoint_every")
    }

    /// Checks an index job's parameters.
    ///
    /// - Throws: ``Violation`` naming the field out of bounds.
    public static func check(_ job: IndexJob) throws(Violation) {
        try within(job.projectionDimension, projectionDimension, "projection_dim")
    }

    /// Checks what a job of any kind carries (an evaluation's retrains carry the adapter's training recipe).
    public static func check(_ specification: JobSpecification) throws(Violation) {
        switch specification {
        case .train(let train): try check(train)
        case .index(let index): try check(index)
        case .retrain(let retrain): try check(retrain.plan.training)
        case .evaluate(let evaluate): try check(evaluate.plan.training)
        }
    }

    private static func within(_ value: Int, _ range: ClosedRange<Int>, _ field: String, _ noun: String? = nil) throws(Violation) {
        guard range.contains(value) else {
            throw Violation(field: field, reason: "\(value)\(noun.map { " \($0)" } ?? "") is out of range \(range.lowerBound) to \(range.upperBound)")
        }
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
    }
}

/// What a job would allocate, estimated from the model's configuration and the job's parameters before anything
/// is allocated: the runner refuses a job whose estimate exceeds its engine's memory budget, failing the attempt
/// with a message that says so, instead of letting an allocation abort the engine (and every engine that takes
/// the job after it). The estimate errs on the large side: activations are counted as if every layer kept all of
/// its intermediates.
public struct MemoryEstimate: Sendable, Equatable, CustomStringConvertible {
    /// Bytes.
    public var bytes: Double
    /// The largest parts, for the message.
    public var parts: [(String, Double)]

    public static func == (lhs: MemoryEstimate, rhs: MemoryEstimate) -> Bool { lhs.bytes == rhs.bytes }

    public var description: String {
        "\(Self.format(bytes)) (" + parts.map { "\($0.0) \(Self.format($0.1))" }.joined(separator: ", ") + ")"
    }

    static func format(_ bytes: Double) -> String {
        bytes >= Double(1 << 30) ? String(format: "%.1f GiB", bytes / Double(1 << 30)) : String(format: "%.1f MiB", bytes / Double(1 << 20))
    }

    /// The LoRA parameters of `rank` on `targets` over every layer (A and B of each pair).
    public static func loraParameters(model: LlamaConfig, rank: Int, targets: [LoRATarget]) -> Double {
        let qWidth = Double(model.headCount * model.headDimension), kvWidth = Double(model.keyValueHeadCount * model.headDimension)
        let hidden = Double(model.hiddenSize), intermediate = Double(model.intermediateSize)
        let perLayer = targets.reduce(0.0) { sum, target in
            let (out, input): (Double, Double) =
                switch target {
                case .query: (qWidth, hidden)
                case .key, .value: (kvWidth, hidden)
                case .output: (hidden, qWidth)
                case .gate, .up: (intermediate, hidden)
                case .down: (hidden, intermediate)
                }
            return sum + Double(rank) * (out + input)
        }
        return perLayer * Double(model.layerCount)
    }

    /// Activations of a forward and backward pass over `batch` sequences of `length` tokens: every layer's
    /// intermediates (hidden-sized, intermediate-sized and the attention probabilities) and the logits with their
    /// gradient, as 4-byte floats.
    static func activations(model: LlamaConfig, batch: Int, length: Int) -> Double {
        let tokens = Double(batch) * Double(length)
        let perLayer = 12 * Double(model.hiddenSize) + 4 * Double(model.intermediateSize) + 2 * Double(model.headCount) * Double(length)
        return 4 * tokens * (Double(model.layerCount) * perLayer + 3 * Double(model.vocabularySize))
    }

    /// A training job: the adapter with its gradient, AdamW's two moments and a checkpoint's copy, and one batch's
    /// activations.
    public static func training(_ job: TrainJob, model: LlamaConfig) throws -> MemoryEstimate {
        let targets = try LoRATarget.parse(job.targets.joined(separator: ","))
        let adapter = 4 * 5 * loraParameters(model: model, rank: job.rank, targets: targets)
        let activations = activations(model: model, batch: job.batchSize, length: job.sequenceLength)
        return MemoryEstimate(bytes: adapter + activations, parts: [("adapter and optimizer", adapter), ("activations", activations)])
    }

    /// An index job: the projection matrices (a `dimension` × parameters matrix per LoRA matrix for a dense
    /// projection), one checkpoint's rows for every record, and a pass's activations.
    public static func index(
        projectionDimension: Int, rank: Int, targets: [LoRATarget], records: Int, longestRecord: Int, model: LlamaConfig
    ) -> MemoryEstimate {
        let parameters = loraParameters(model: model, rank: rank, targets: targets)
        let blocks = Double(2 * targets.count * model.layerCount)
        let projection = 4 * Double(projectionDimension) * parameters
        let width = projectionDimension > 0 ? Double(projectionDimension) * blocks : parameters
        let rows = 4 * Double(records) * width
        let activations = activations(model: model, batch: 1, length: max(longestRecord, 1)) + 4 * 2 * parameters
        return MemoryEstimate(
            bytes: projection + rows + activations,
            parts: [("projection", projection), ("gradient rows", rows), ("activations", activations)])
    }

    /// Half the machine's physical memory: an engine's default budget for one job, leaving room for the model, the
    /// serving side and the system.
    public static var defaultBudget: UInt64 { ProcessInfo.processInfo.physicalMemory / 2 }
}
