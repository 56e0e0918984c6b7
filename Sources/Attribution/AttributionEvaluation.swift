import LlamaModel
import TensorCore
import Training

/// What every training run of an evaluation does: the full run the scores come from and each subset retrain.
public struct EvaluationRecipe: Sendable {
    public var lora: LoRAConfig
    /// Steps, learning rate, batch size, and the data-order seed.
    public var options: TrainingOptions
    /// The adapter's initialisation seed (the same for every run, so runs differ only by their data).
    public var adapterSeed: UInt64
    /// Keep the adapter every this many steps (and at the last step) as a checkpoint.
    public var checkpointEvery: Int
    public var projection: ProjectionSpec
    public var methods: [ScorerKind]

    public init(
        lora: LoRAConfig, options: TrainingOptions, adapterSeed: UInt64 = 0, checkpointEvery: Int,
        projection: ProjectionSpec = .none, methods: [ScorerKind] = ScorerKind.allCases
    ) {
        self.lora = lora
        self.options = options
        self.adapterSeed = adapterSeed
        self.checkpointEvery = checkpointEvery
        self.projection = projection
        self.methods = methods
    }
}

/// Adapters kept during one training run, with the learning rate of each one's step.
public struct TrainedCheckpoints: Sendable {
    public var adapters: [LoRAAdapter]
    public var learningRates: [Float]
    public var final: LoRAAdapter { adapters.last! }

    public init(adapters: [LoRAAdapter], learningRates: [Float]) {
        self.adapters = adapters
        self.learningRates = learningRates
    }
}

/// Corrupted-record detection: how well each ranking separates the corrupted records (ROC AUC).
public struct CorruptionDetection: Sendable, Equatable, Codable {
    /// Ranking by self-influence, highest first; nil for Grad-Cos (1 for every record).
    public var selfInfluenceAUC: Double?
    /// Ranking by net influence on the clean validation set, most harmful first.
    public var validationAUC: Double
}

/// Planted-fact tracing: the share of facts whose output's top-1 record (and contributor) is the one that taught it.
public struct FactTracing: Sendable, Equatable, Codable {
    public var recordAccuracy: Double
    public var contributorAccuracy: Double
    public var facts: Int
}

/// Each method's linear datamodeling score per query, and its mean with a bootstrap interval.
public struct LinearDatamodelingScores: Sendable, Equatable {
    /// Spearman's correlation per query, by method, in query order.
    public var perQuery: [ScorerKind: [Double]]
    public var seed: UInt64

    public func interval(_ method: ScorerKind) -> MeanInterval {
        EvaluationStatistics.meanWithInterval(perQuery[method]!, seed: seed)
    }

    /// The mean per-query difference `method - baseline` with a paired bootstrap interval: both methods are
    /// scored on the same queries, so the pairing removes the queries' own difficulty from the comparison.
    public func difference(_ method: ScorerKind, over baseline: ScorerKind) -> MeanInterval {
        EvaluationStatistics.meanWithInterval(zip(perQuery[method]!, perQuery[baseline]!).map { $0 - $1 }, seed: seed)
    }
}

/// Measures attribution quality (docs/ATTRIBUTION.md, "Evaluation") by retraining, not by trusting the scores.
public struct AttributionEvaluator: Sendable {
    public let model: LlamaModel
    public let recipe: EvaluationRecipe

    public init(model: LlamaModel, recipe: EvaluationRecipe) {
        self.model = model
        self.recipe = recipe
    }

    /// Trains an adapter on `records`, keeping checkpoints.
    public func train(_ records: [TrainingSequence]) throws -> TrainedCheckpoints {
        let adapter = try LoRAAdapter(config: recipe.lora, model: model.config, seed: recipe.adapterSeed)
        var trainer = LoRATrainer(model: model, adapter: adapter, records: records, options: recipe.options)
        var kept = TrainedCheckpoints(adapters: [], learningRates: [])
        while !trainer.isFinished {
            let report = try trainer.trainStep()
            if report.step % recipe.checkpointEvery == 0 || trainer.isFinished {
                kept.adapters.append(trainer.adapter)
                kept.learningRates.append(report.learningRate)
            }
        }
        return kept
    }

    /// The q x n scores of `queries` against `records` for every method of the recipe, from gradients at the
    /// checkpoints.
    public func scores(
        records: [TrainingSequence], queries: [TrainingSequence], checkpoints: TrainedCheckpoints
    ) throws -> [ScorerKind: Tensor] {
        let (trainRows, queryRows) = try gradients(records: records, queries: queries, checkpoints: checkpoints)
        var result: [ScorerKind: Tensor] = [:]
        for method in recipe.methods {
            result[method] = try AttributionScorer(kind: method, checkpoints: trainRows).scores(queries: queryRows)
        }
        return result
    }

    func gradients(
        records: [TrainingSequence], queries: [TrainingSequence], checkpoints: TrainedCheckpoints
    ) throws -> (train: [CheckpointGradients], queries: [Tensor]) {
        var train: [CheckpointGradients] = []
        var query: [Tensor] = []
        for (adapter, learningRate) in zip(checkpoints.adapters, checkpoints.learningRates) {
            let layout = try GradientLayout(adapter: adapter, projection: recipe.projection)
            let extractor = GradientExtractor(model: model, adapter: adapter, layout: layout)
            let blocks = try GradientBlocks(layout.blocks.map(\.columns))
            // A schedule's last step may have a learning rate of 0; TracIn then gives that checkpoint no weight.
            train.append(try CheckpointGradients(
                rows: try extractor.rows(for: records), blocks: blocks, learningRate: max(learningRate, .leastNormalMagnitude)))
            query.append(try extractor.rows(for: queries))
        }
        return (train, query)
    }

    /// Each query's loss (mean cross-entropy over its scored tokens) under `adapter`.
    public func losses(_ queries: [TrainingSequence], adapter: LoRAAdapter) throws -> [Double] {
        try model.backward(queries, mode: .lora(adapter), reduction: .sumOfSequenceMeans).sequenceLosses.map(Double.init)
    }

    /// The linear datamodeling score (Park et al., TRAK, 2023): for each query, Spearman's correlation over
    /// `subsets` random subsets S (each a `fraction` of the records) between the predicted effect
    /// sum_{i in S} score(query, i) and the actual -loss(query) of an adapter retrained on S; then the mean over
    /// queries with a bootstrap interval (``LinearDatamodelingScores``). The coordinator's evaluate job runs the
    /// same steps with the retrains spread over engines.
    public func linearDatamodelingScore(
        records: [TrainingSequence], queries: [TrainingSequence], subsets: Int, fraction: Double = 0.5,
        seed: UInt64 = 0, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> LinearDatamodelingScores {
        let full = try train(records)
        let scores = try self.scores(records: records, queries: queries, checkpoints: full)
        let members = Self.subsetMembers(recordCount: records.count, subsets: subsets, fraction: fraction, seed: seed)
        var actual: [[Double]] = []
        for (subset, chosen) in members.enumerated() {
            progress(subset, subsets)
            actual.append(try retrainedEffects(records: chosen.map { records[$0] }, queries: queries))
        }
        progress(subsets, subsets)
        return Self.linearDatamodelingScores(scores: scores, members: members, actual: actual, seed: seed)
    }

    /// The records (by index, ascending) of each of `subsets` seeded random subsets holding a `fraction` of them.
    public static func subsetMembers(recordCount: Int, subsets: Int, fraction: Double, seed: UInt64) -> [[Int]] {
        precondition(subsets >= 2 && fraction > 0 && fraction < 1)
        let subsetSize = max(1, Int((Double(recordCount) * fraction).rounded()))
        var random = SeededRandom(seed: seed)
        return (0..<subsets).map { _ in
            var order = Array(0..<recordCount)
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
            return Array(order.prefix(subsetSize)).sorted()
        }
    }

    /// The actual effect of training on `records` alone: each query's -loss under the retrained adapter.
    public func retrainedEffects(records: [TrainingSequence], queries: [TrainingSequence]) throws -> [Double] {
        try losses(queries, adapter: try train(records).final).map { -$0 }
    }

    /// Each method's LDS per query from the full run's q x n `scores` and, per subset, its `members` and the
    /// `actual` effects on the queries.
    public static func linearDatamodelingScores(
        scores: [ScorerKind: Tensor], members: [[Int]], actual: [[Double]], seed: UInt64
    ) -> LinearDatamodelingScores {
        var result = LinearDatamodelingScores(perQuery: [:], seed: seed)
        for (method, matrix) in scores {
            let (queries, n) = (matrix.shape[0], matrix.shape[1])
            let values = matrix.scalars
            result.perQuery[method] = (0..<queries).map { query in
                let predicted = members.map { chosen in chosen.reduce(0.0) { $0 + Double(values[query * n + $1]) } }
                return EvaluationStatistics.spearman(predicted, actual.map { $0[query] })
            }
        }
        return result
    }

    /// Trains on `records`, of which `corrupted` marks the damaged ones, and measures how well self-influence and
    /// net influence on the clean `validation` set single them out.
    public func corruptionDetection(
        records: [TrainingSequence], corrupted: [Bool], validation: [TrainingSequence]
    ) throws -> [ScorerKind: CorruptionDetection] {
        let full = try train(records)
        let (trainRows, validationRows) = try gradients(records: records, queries: validation, checkpoints: full)
        let table = RecordTable(records.indices.map { RecordInfo(id: "\($0)", contributor: "", datanet: "", datanetVersion: 0) })
        var result: [ScorerKind: CorruptionDetection] = [:]
        for method in recipe.methods {
            let scorer = try AttributionScorer(kind: method, checkpoints: trainRows)
            let report = try Curation.curate(scorer: scorer, validation: validationRows, table: table)
            var harm = [Double](repeating: 0, count: records.count)
            for entry in report.validationInfluence { harm[entry.row] = -entry.score }
            var selfAUC: Double? = nil
            if let selfInfluence = report.selfInfluence {
                var values = [Double](repeating: 0, count: records.count)
                for entry in selfInfluence { values[entry.row] = entry.score }
                selfAUC = EvaluationStatistics.rocAUC(scores: values, positives: corrupted)
            }
            result[method] = CorruptionDetection(
                selfInfluenceAUC: selfAUC, validationAUC: EvaluationStatistics.rocAUC(scores: harm, positives: corrupted))
        }
        return result
    }

    /// Trains on `records` (contributed by `contributors`, row by row) and, for each planted fact, checks that its
    /// output's top-scored record is `facts[k].record` and its top contributor that record's contributor.
    public func factTracing(
        records: [TrainingSequence], contributors: [String], facts: [(output: TrainingSequence, record: Int)]
    ) throws -> [ScorerKind: FactTracing] {
        let full = try train(records)
        let scores = try self.scores(records: records, queries: facts.map(\.output), checkpoints: full)
        var result: [ScorerKind: FactTracing] = [:]
        for (method, matrix) in scores {
            let n = records.count
            let values = matrix.scalars
            var (recordHits, contributorHits) = (0, 0)
            for (query, fact) in facts.enumerated() {
                let row = values[query * n..<(query + 1) * n]
                let top = row.indices.max { row[$0] < row[$1] }! - query * n
                if top == fact.record { recordHits += 1 }
                var byContributor: [String: Double] = [:]
                for (i, score) in row.enumerated() where score > 0 { byContributor[contributors[i], default: 0] += Double(score) }
                if byContributor.max(by: { $0.value < $1.value })?.key == contributors[fact.record] { contributorHits += 1 }
            }
            let count = Double(facts.count)
            result[method] = FactTracing(
                recordAccuracy: Double(recordHits) / count, contributorAccuracy: Double(contributorHits) / count,
                facts: facts.count)
        }
        return result
    }
}
