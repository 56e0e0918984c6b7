import Attribution
import Crypto
import Foundation
import LlamaModel
import Store
import Training

/// Runs one attempt of a queued job on this engine, from its specification in the store, and reports under the
/// attempt's lease: `progress` after every step, `checkpoint` for every checkpoint saved (a retried attempt, on
/// any engine sharing the store and the work folder, resumes from the last one), then `done` or `failed`.
///
/// Adapters live in `workFolder/adapters/ID` (the PEFT adapter, its `checkpoint-N` folders and `index/`), so
/// engines that share the store must share the work folder too.
public struct JobRunner: Sendable {
    public let store: Store
    public let model: LlamaModel
    public let modelFolder: String
    public let workFolder: String
    /// The bytes one attempt may allocate (``MemoryEstimate``): a job estimated above it fails its attempt with a
    /// message saying so, rather than aborting the engine on allocation.
    public let memoryBudget: UInt64

    public init(
        store: Store, model: LlamaModel, modelFolder: String, workFolder: String, memoryBudget: UInt64 = MemoryEstimate.defaultBudget
    ) {
        self.store = store
        self.model = model
        self.modelFolder = modelFolder
        self.workFolder = workFolder
        self.memoryBudget = memoryBudget
    }

    public func adapterFolder(_ adapter: AdapterID) -> String { "\(workFolder)/adapters/\(adapter.rawValue)" }

    /// Runs the leased attempt to its end and records that end in the store: completed with its result,
    /// cancelled when its cancellation was asked for, or failed (queued again after `retry`'s backoff while
    /// attempts remain). Returns the job as it is afterwards.
    @discardableResult
    public func run(_ lease: JobLease, retry: RetryPolicy = RetryPolicy()) throws -> Job {
        do {
            let job = try store.job(lease.job)
            let result: Data
            let specification = try JobSpecification(decoding: job.specification)
            // Checked again here, before any file is touched: a job may have reached the store by other means
            // than the coordinator's JobSubmit.
            try JobLimits.check(specification)
            try specification.requireAccess(in: store, by: job.submittedBy)
            switch specification {
            case .train(let spec): result = try train(spec, job: job, lease: lease)
            case .index(let spec): result = try index(spec, job: job, lease: lease)
            case .retrain(let spec): result = try retrain(spec, lease: lease)
            case .evaluate(let spec): result = try evaluate(spec, lease: lease)
            }
            return try store.completeJob(lease, result: result)
        } catch JobRunError.cancelled {
            return try store.acknowledgeCancellation(lease)
        } catch {
            return try store.failJobAttempt(lease, error: "\(error)", retry: retry)
        }
    }

    // MARK: - Training

    /// Refuses what would not fit this engine's memory budget.
    func requireBudget(_ estimate: MemoryEstimate, for what: String) throws {
        guard estimate.bytes <= Double(memoryBudget) else {
            throw JobRunError.overBudget(
                "\(what) needs about \(estimate), more than this engine's memory budget of \(MemoryEstimate.format(Double(memoryBudget)))")
        }
    }

    func train(_ spec: TrainJob, job: Job, lease: JobLease) throws -> Data {
        try requireBudget(try MemoryEstimate.training(spec, model: model.config), for: "training rank \(spec.rank), batch \(spec.batchSize) of \(spec.sequenceLength) tokens")
        let records = try trainingRecords(spec.versions)
        if let long = records.first(where: { $0.sequence.tokens.count > spec.sequenceLength }) {
            throw JobRunError.invalidData("record \(long.id) has \(long.sequence.tokens.count) tokens, more than the sequence length \(spec.sequenceLength)")
        }
        let adapterID = try registeredAdapter(spec, owner: job.submittedBy)
        let folder = adapterFolder(adapterID)
        let sequences = records.map(\.sequence)

        var trainer: LoRATrainer
        if let checkpoint = job.checkpoint {
            trainer = try LoRATrainer(resumingFrom: checkpoint, model: model, records: sequences)
        } else {
            let recipe = try spec.recipe(recordCount: records.count)
            let adapter = try LoRAAdapter(config: recipe.lora, model: model.config, seed: spec.seed)
            trainer = LoRATrainer(model: model, adapter: adapter, records: sequences, options: recipe.options)
        }
        let total = trainer.options.totalSteps
        while !trainer.isFinished {
            if try store.job(lease.job).cancelRequested { throw JobRunError.cancelled }
            let report = try trainer.trainStep()
            try store.recordJobProgress(
                lease, detail: try JSONSerialization.data(withJSONObject: [
                    "step": report.step, "total_steps": total, "loss": Double(report.loss), "tokens": report.tokens,
                ]))
            let due = spec.checkpointEvery > 0 && report.step % spec.checkpointEvery == 0
            if due || trainer.isFinished {
                let location = "\(folder)/checkpoint-\(report.step)"
                try trainer.saveCheckpoint(to: location, learningRate: report.learningRate)
                // The job's checkpoint first: it checks the lease, so an attempt that was given up never
                // registers a checkpoint its replacement will write again.
                try store.recordJobCheckpoint(lease, location: location, step: report.step)
                try store.addCheckpoint(
                    to: adapterID, by: job.submittedBy, step: Int64(report.step), location: location,
                    contentHash: try AdapterCheckpoint.fingerprint(folder: location))
            }
        }
        try trainer.adapter.save(to: folder)
        return try JSONSerialization.data(withJSONObject: ["adapter": adapterID.rawValue, "steps": total])
    }

    /// The adapter a training job fills: registered by its first attempt, found again by a retried one.
    func registeredAdapter(_ spec: TrainJob, owner: ContributorID) throws -> AdapterID {
        if let existing = try store.adapters(owner: owner).first(where: { $0.name == spec.adapterName && $0.trainedOn == spec.versions }) {
            return existing.id
        }
        let adapter = try store.registerAdapter(
            NewAdapter(
                name: spec.adapterName, baseModelHash: try Self.baseModelHash(folder: modelFolder), trainedOn: spec.versions,
                hyperparameters: [
                    "rank": .int(Int64(spec.rank)), "alpha": .double(spec.alpha), "learning_rate": .double(Double(spec.learningRate)),
                    "batch_size": .int(Int64(spec.batchSize)), "seed": .int(Int64(bitPattern: spec.seed)),
                ]),
            owner: owner)
        return adapter.id
    }

    // MARK: - Index

    func index(_ spec: IndexJob, job: Job, lease: JobLease) throws -> Data {
        let adapter = try store.adapter(spec.adapter)
        let folder = adapterFolder(adapter.id)
        let records = try trainingRecords(adapter.trainedOn)
        let (rank, targets) = adapterShape(folder: folder, stored: adapter)
        try requireBudget(
            MemoryEstimate.index(
                projectionDimension: spec.projectionDimension, rank: rank, targets: targets, records: records.count,
                longestRecord: records.map(\.sequence.tokens.count).max() ?? 1, model: model.config),
            for: "an index of \(records.count) records with projection dimension \(spec.projectionDimension)")
        let indexFolder = folder + "/index"
        try? FileManager.default.removeItem(atPath: indexFolder)
        let projection = spec.projectionDimension > 0 ? ProjectionSpec(kind: .gaussian, dimension: spec.projectionDimension, seed: 0) : ProjectionSpec(kind: .none)
        // Progress every 5% of the work: an event per record would flood the events of a quick job.
        var reportedBucket = -1
        var failure: Error?
        let index = try GradientIndex.build(
            folder: indexFolder, model: model, adapterFolder: folder, records: records, projection: projection,
            checkpoints: .all, modelFolder: modelFolder
        ) { progress in
            let bucket = progress.done * 20 / max(progress.total, 1)
            guard failure == nil, bucket > reportedBucket else { return }
            reportedBucket = bucket
            do {
                try store.recordJobProgress(
                    lease, detail: try JSONSerialization.data(withJSONObject: [
                        "step": progress.done, "total_steps": progress.total, "checkpoint": progress.checkpoint,
                    ]))
            } catch { failure = error }
        }
        if let failure { throw failure }
        try store.setGradientIndexLocation(indexFolder, for: adapter.id, by: job.submittedBy)
        return try JSONSerialization.data(withJSONObject: [
            "adapter": adapter.id.rawValue, "index": indexFolder, "records": index.records.count,
        ])
    }

    /// An adapter's rank and targets for the memory estimate: from its PEFT configuration, else its stored rank on
    /// every target (the larger estimate).
    func adapterShape(folder: String, stored: Adapter) -> (rank: Int, targets: [LoRATarget]) {
        let config = (try? Data(contentsOf: URL(fileURLWithPath: folder + "/adapter_config.json")))
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
        let storedRank: Int? = if case .int(let rank)? = stored.hyperparameters["rank"] { Int(exactly: rank) } else { nil }
        let rank = (config?["r"] as? NSNumber)?.intValue ?? storedRank ?? JobLimits.rank.upperBound
        let names = (config?["target_modules"] as? [String]) ?? []
        let targets = LoRATarget.allCases.filter { names.contains($0.rawValue) }
        return (max(1, rank), targets.isEmpty ? LoRATarget.allCases : targets)
    }

    // MARK: - Data

    /// The records of `versions`, in order, as the store exports them, tokenized as the `train` command does
    /// (bytes, for the byte-level built-in base).
    public func trainingRecords(_ versions: [DatanetVersionRef]) throws -> [TrainingRecord] {
        guard !versions.isEmpty else { throw JobRunError.invalidSpecification("a training job needs at least one datanet version") }
        try FileManager.default.createDirectory(atPath: workFolder + "/exports", withIntermediateDirectories: true)
        let path = workFolder + "/exports/" + versions.map { "\($0.datanet.rawValue)v\($0.number)" }.joined(separator: "-") + ".jsonl"
        let records = try store.trainingRecords(of: versions, exportedTo: path, vocabularySize: model.config.vocabularySize)
        guard !records.isEmpty else { throw JobRunError.invalidData("datanet versions \(versions.map(\.description)) hold no records") }
        return records
    }

    /// SHA-256 of the base model's weights file, hex: the registry's `base_model_hash`.
    public static func baseModelHash(folder: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/model.safetensors"), options: .alwaysMapped)
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}
