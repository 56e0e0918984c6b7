import Foundation
import Store

/// A queued job's specification, as the store keeps it (JSON, opaque to the store). The coordinator writes it
/// from the wire's `JobSpec`; an engine's ``JobRunner`` reads it back.
public enum JobSpecification: Sendable, Equatable, Codable {
    case train(TrainJob)
    case index(IndexJob)
    /// One subset retrain of an evaluation: training, so any engine that trains runs it.
    case retrain(RetrainJob)
    case evaluate(EvaluateJob)

    public var kind: JobKind {
        switch self {
        case .train, .retrain: .train
        case .index: .index
        case .evaluate: .evaluate
        }
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(self)
    }

    /// - Throws: ``JobRunError/invalidSpecification(_:)`` naming what does not decode.
    public init(decoding data: Data) throws {
        do { self = try JSONDecoder().decode(Self.self, from: data) } catch {
            throw JobRunError.invalidSpecification("the job's specification is not a train, index, retrain or evaluate job: \(error)")
        }
    }
}

/// Train a LoRA adapter on exact datanet versions.
public struct TrainJob: Sendable, Equatable, Codable {
    public var adapterName: String
    public var versions: [DatanetVersionRef]
    public var rank: Int
    public var alpha: Double
    /// q, k, v, o, gate, up, down, or all-linear.
    public var targets: [String]
    public var learningRate: Float
    /// Optimizer steps; 0 means `epochs` passes over the data.
    public var steps: Int
    public var epochs: Int
    public var batchSize: Int
    public var sequenceLength: Int
    public var seed: UInt64
    /// Save (and record) a checkpoint every this many steps; 0 only at the end.
    public var checkpointEvery: Int

    public init(
        adapterName: String, versions: [DatanetVersionRef], rank: Int = 8, alpha: Double = 16,
        targets: [String] = ["q", "k", "v", "o"], learningRate: Float = 1e-3, steps: Int = 0, epochs: Int = 1,
        batchSize: Int = 8, sequenceLength: Int = 256, seed: UInt64 = 0, checkpointEvery: Int = 0
    ) {
        self.adapterName = adapterName
        self.versions = versions
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.learningRate = learningRate
        self.steps = steps
        self.epochs = epochs
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.seed = seed
        self.checkpointEvery = checkpointEvery
    }
}

/// Build the gradient index of a trained adapter over its training records.
public struct IndexJob: Sendable, Equatable, Codable {
    public var adapter: AdapterID
    /// Projected columns per LoRA matrix; 0 for exact gradients.
    public var projectionDimension: Int

    public init(adapter: AdapterID, projectionDimension: Int = 0) {
        self.adapter = adapter
        self.projectionDimension = projectionDimension
    }
}

/// Why a job could not run; the message goes into the job's `failed` event.
public enum JobRunError: Error, Equatable, CustomStringConvertible {
    case invalidSpecification(String)
    case invalidData(String)
    /// The job would need more memory than this engine's budget (``MemoryEstimate``).
    case overBudget(String)
    /// The job's cancellation was asked for; the attempt stopped.
    case cancelled

    public var description: String {
        switch self {
        case .invalidSpecification(let message), .invalidData(let message), .overBudget(let message): message
        case .cancelled: "the job was cancelled"
        }
    }
}

/// How an evaluation measures an adapter (docs/ATTRIBUTION.md, "Evaluation"): the linear datamodeling score of
/// every method over `subsets` retrains, each on a seeded `fraction` of the adapter's training records, with the
/// adapter's own recipe, against the records of the `evaluation` version as queries.
public struct EvaluationPlan: Sendable, Equatable, Codable {
    public var adapter: AdapterID
    public var evaluation: DatanetVersionRef
    /// The recipe the adapter was trained with (its training job's).
    public var training: TrainJob
    public var subsets: Int
    public var fraction: Double
    public var seed: UInt64

    public init(adapter: AdapterID, evaluation: DatanetVersionRef, training: TrainJob, subsets: Int = 8, fraction: Double = 0.5, seed: UInt64 = 0) {
        self.adapter = adapter
        self.evaluation = evaluation
        self.training = training
        self.subsets = subsets
        self.fraction = fraction
        self.seed = seed
    }
}

/// Retrain on subset `subset` of an evaluation's plan and measure the queries' losses.
public struct RetrainJob: Sendable, Equatable, Codable {
    public var plan: EvaluationPlan
    public var subset: Int

    public init(plan: EvaluationPlan, subset: Int) {
        self.plan = plan
        self.subset = subset
    }
}

/// Gather an evaluation's retrains (jobs `retrains`, in subset order) into each method's LDS. The coordinator
/// starts it only once every retrain has ended.
public struct EvaluateJob: Sendable, Equatable, Codable {
    public var plan: EvaluationPlan
    public var retrains: [JobID]

    public init(plan: EvaluationPlan, retrains: [JobID]) {
        self.plan = plan
        self.retrains = retrains
    }
}
