import Attribution
import Foundation
import LlamaModel
import Store
import Training

extension TrainJob {
    /// The adapter's configuration and the training options of this job over `recordCount` records.
    public func recipe(recordCount: Int) throws -> (lora: LoRAConfig, options: TrainingOptions) {
        let lora = LoRAConfig(rank: rank, alpha: alpha, targets: try LoRATarget.parse(targets.joined(separator: ",")))
        let stepsPerEpoch = (recordCount + batchSize - 1) / batchSize
        var options = TrainingOptions(totalSteps: steps > 0 ? steps : max(1, epochs * stepsPerEpoch))
        options.learningRate = learningRate
        options.batchSize = batchSize
        options.seed = seed
        options.warmupSteps = options.totalSteps / 20
        return (lora, options)
    }
}

/// An evaluation's two kinds of job: subset retrains, spread over the engines, then the gathering of their
/// effects into each method's LDS against the adapter's own checkpoints.
extension JobRunner {
    /// The evaluator of `plan`: the adapter's recipe, checkpoints every `checkpointEvery` steps as it was trained.
    func evaluator(_ plan: EvaluationPlan, recordCount: Int) throws -> AttributionEvaluator {
        let recipe = try plan.training.recipe(recordCount: recordCount)
        return AttributionEvaluator(
            model: model,
            recipe: EvaluationRecipe(
                lora: recipe.lora, options: recipe.options, adapterSeed: plan.training.seed,
                checkpointEvery: plan.training.checkpointEvery > 0 ? plan.training.checkpointEvery : recipe.options.totalSteps))
    }

    /// The training records (as the adapter saw them) and the evaluation version's records as queries.
    func evaluationData(_ plan: EvaluationPlan) throws -> (records: [TrainingSequence], queries: [TrainingSequence]) {
        let records = try trainingRecords(try store.adapter(plan.adapter).trainedOn).map(\.sequence)
        let queries = try trainingRecords([plan.evaluation]).map(\.sequence)
        guard records.count >= 2, !queries.isEmpty else {
            throw JobRunError.invalidData("an evaluation needs at least 2 training records and 1 evaluation record")
        }
        return (records, queries)
    }

    func retrain(_ spec: RetrainJob, lease: JobLease) throws -> Data {
        let plan = spec.plan
        try requireBudget(try MemoryEstimate.training(plan.training, model: model.config), for: "retraining subset \(spec.subset)")
        let (records, queries) = try evaluationData(plan)
        let members = AttributionEvaluator.subsetMembers(
            recordCount: records.count, subsets: plan.subsets, fraction: plan.fraction, seed: plan.seed)
        guard members.indices.contains(spec.subset) else {
            throw JobRunError.invalidSpecification("subset \(spec.subset) is not one of the plan's \(plan.subsets)")
        }
        if try store.job(lease.job).cancelRequested { throw JobRunError.cancelled }
        let effects = try evaluator(plan, recordCount: members[spec.subset].count)
            .retrainedEffects(records: members[spec.subset].map { records[$0] }, queries: queries)
        return try JSONSerialization.data(withJSONObject: ["subset": spec.subset, "effects": effects])
    }

    func evaluate(_ spec: EvaluateJob, lease: JobLease) throws -> Data {
        let plan = spec.plan
        // Scoring takes per-example gradients of the adapter's recipe: at least what one of its batches needs.
        try requireBudget(try MemoryEstimate.training(plan.training, model: model.config), for: "evaluating with the adapter's recipe")
        var effects: [[Double]] = []
        for id in spec.retrains {
            let retrain = try store.job(id)
            guard retrain.state == .succeeded, let result = retrain.result,
                let object = try JSONSerialization.jsonObject(with: result) as? [String: Any],
                let values = object["effects"] as? [Double]
            else {
                throw JobRunError.invalidData("retrain job \(id.rawValue) did not succeed: \(retrain.error ?? retrain.state.rawValue)")
            }
            effects.append(values)
        }
        let (records, queries) = try evaluationData(plan)
        let members = AttributionEvaluator.subsetMembers(
            recordCount: records.count, subsets: plan.subsets, fraction: plan.fraction, seed: plan.seed)
        guard members.count == effects.count else {
            throw JobRunError.invalidSpecification("\(effects.count) retrains for a plan of \(plan.subsets) subsets")
        }
        // The full run's scores come from the adapter's own checkpoints, with the learning rate of each.
        let folder = adapterFolder(plan.adapter)
        var checkpoints = TrainedCheckpoints(adapters: [], learningRates: [])
        for checkpoint in try AdapterCheckpoint.discover(in: folder, selection: .all) {
            checkpoints.adapters.append(try LoRAAdapter(folder: checkpoint.path(in: folder), model: model.config))
            checkpoints.learningRates.append(checkpoint.learningRate)
        }
        let evaluator = try evaluator(plan, recordCount: records.count)
        let scores = try evaluator.scores(records: records, queries: queries, checkpoints: checkpoints)
        let lds = AttributionEvaluator.linearDatamodelingScores(scores: scores, members: members, actual: effects, seed: plan.seed)
        var methods: [String: Any] = [:]
        var summary: [String] = []
        for method in ScorerKind.allCases where lds.perQuery[method] != nil {
            let interval = lds.interval(method)
            methods[method.rawValue] = ["mean": interval.mean, "low": interval.low, "high": interval.high]
            summary.append("\(method.rawValue) \(String(format: "%.2f", interval.mean))")
        }
        return try JSONSerialization.data(withJSONObject: [
            "adapter": plan.adapter.rawValue, "subsets": plan.subsets, "queries": queries.count, "lds": methods,
            "summary": "LDS over \(plan.subsets) retrains, \(queries.count) queries: " + summary.joined(separator: ", "),
        ])
    }
}
