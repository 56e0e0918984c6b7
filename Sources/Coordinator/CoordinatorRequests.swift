import Authorization
import Foundation
import Serving
import Store
import WireProtocol

/// The coordinator's requests of the protocol (PROTOCOL.md, "Jobs" and "Coordinator"), answered on the store,
/// transport aside: the connection authenticates and passes the caller's contributor.
extension Coordinator {
    /// Answers `JobSubmit`, `JobStatus`, `JobCancel`, `EngineRegister`, `EngineHeartbeat`, `EngineList` and
    /// `EngineDrain`; `JobEvents` streams, see ``authorizeWatch(job:after:contributor:)``.
    ///
    /// Who may send what is `Authorizer`'s, checked first (docs/SECURITY.md); an engine's name is bound to the
    /// credential that registered it (``register(name:address:computeSlots:jobKinds:owner:now:)``).
    ///
    /// - Throws: ``CoordinatorError/refused(_:_:)`` with the wire code and what to do.
    public func respond(to request: Message, contributor: ContributorID?, now: Date = Date()) throws -> Message {
        guard request.type.isCoordinatorRequest else {
            throw CoordinatorError.refused(.failedPrecondition, "\(request.type) is not a coordinator request: send it to an engine")
        }
        if case .jobSubmit(let submit) = request, !submit.spec.isEvaluation {
            // Bounds first: they read nothing, and the access check reads the store for every version named.
            _ = try JobSpecification(submit.spec)
        }
        try Authorizer(store: store).authorize(request, caller: contributor)
        switch request {
        case .jobSubmit(let submit):
            let submitter = try require(contributor)
            if case .evaluate(let evaluate) = submit.spec {
                return .jobInfo(Wire.JobInfo(job: try wireJob(try submitEvaluation(evaluate, by: submitter, now: now))))
            }
            let specification = try JobSpecification(submit.spec)
            try checkReferences(specification)
            let job = try store.submitJob(NewJob(kind: specification.kind, specification: try specification.encoded()), by: submitter, now: now)
            return .jobInfo(Wire.JobInfo(job: try wireJob(job)))
        case .jobStatus(let status):
            let job = try store.job(try Self.jobID(status.job, field: "job"))
            return .jobInfo(Wire.JobInfo(job: try wireJob(job)))
        case .jobCancel(let cancel):
            let canceller = try require(contributor)
            let job = try store.cancelJob(try Self.jobID(cancel.job, field: "job"), by: canceller, now: now)
            // An evaluation's retrains go with it.
            if case .evaluate(let evaluate)? = try? JobSpecification(decoding: job.specification) {
                for retrain in evaluate.retrains where !(try store.job(retrain).state.isFinal) {
                    _ = try store.cancelJob(retrain, by: canceller, now: now)
                }
            }
            return .jobInfo(Wire.JobInfo(job: try wireJob(job)))
        case .engineRegister(let register):
            let owner = try require(contributor)
            let kinds = Set(register.jobKinds.map(Self.storeKind))
            let engine = try self.register(
                name: register.name, address: register.address, computeSlots: Int(register.computeSlots), jobKinds: kinds,
                owner: owner, now: now)
            return .engineRegistered(Wire.EngineRegistered(engine: engine.id, heartbeatIntervalMs: policy.heartbeatIntervalMilliseconds))
        case .engineHeartbeat(let beat):
            _ = try heartbeat(engine: beat.engine, by: try require(contributor), now: now)
            return .heartbeatAck(Wire.HeartbeatAck(engine: beat.engine, drain: engine(id: beat.engine)?.draining ?? false))
        case .engineList:
            _ = try require(contributor, "EngineList")
            return .engineListing(Wire.EngineListing(engines: try wireEngines(engines, now: now)))
        case .engineDrain(let drain):
            let engine = try self.drain(engine: drain.name, draining: drain.drain, by: try require(contributor), now: now)
            return .engineListing(Wire.EngineListing(engines: try wireEngines([engine], now: now)))
        default:
            throw CoordinatorError.refused(.failedPrecondition, "\(request.type) is not answered here")
        }
    }

    /// The job's events after sequence number `after`, as `JobEvent` frames, read in process (no caller to check:
    /// over the wire, ``authorizeWatch(job:after:contributor:)`` first). The stream is over once the last one is
    /// `done`, `failed` or `cancelled`.
    public func jobEvents(_ job: UInt64, after: UInt64) throws -> [Wire.JobEvent] {
        let id = try Self.jobID(job, field: "job")
        _ = try store.job(id)
        return try store.jobEvents(of: id, after: try Int64(wire: after, field: "after_seq")).map(Self.wireEvent)
    }

    /// Checks a `JobEvents` request before its stream opens: a token (`unauthenticated`), ids in range
    /// (`invalid_argument` naming the field), a job that exists (`not_found`) and that the caller may see
    /// (`permission_denied`). Returns the job and the sequence number to follow from.
    public func authorizeWatch(job: UInt64, after: UInt64, contributor: ContributorID?) throws -> (job: JobID, after: Int64) {
        let id = try Self.jobID(job, field: "job")
        let sequence = try Int64(wire: after, field: "after_seq")
        try Authorizer(store: store).authorize(.jobEvents(Wire.JobEvents(job: job, afterSeq: after)), caller: contributor)
        return (id, sequence)
    }

    /// A wire job id as the store's (ids are 1 to 2^63 − 1): a larger u64 is refused, never trapped on.
    static func jobID(_ raw: UInt64, field: String) throws -> JobID {
        JobID(try Int64(wire: raw, field: field))
    }

    /// An evaluation fans out: one retrain job per subset, queued for any engine that trains, then the job that
    /// gathers their effects into each method's LDS, which dispatch holds back until every retrain has ended.
    func submitEvaluation(_ spec: Wire.EvaluateSpec, by submitter: ContributorID, now: Date) throws -> Job {
        let adapter = AdapterID(spec.adapter)
        let evaluation = DatanetVersionRef(datanet: DatanetID(spec.version.datanet), number: Int(spec.version.number))
        _ = try store.version(evaluation)
        let plan = EvaluationPlan(adapter: adapter, evaluation: evaluation, training: try trainingJob(of: adapter))
        var retrains: [JobID] = []
        for subset in 0..<plan.subsets {
            let retrain = JobSpecification.retrain(RetrainJob(plan: plan, subset: subset))
            retrains.append(try store.submitJob(NewJob(kind: retrain.kind, specification: try retrain.encoded()), by: submitter, now: now).id)
        }
        let gather = JobSpecification.evaluate(EvaluateJob(plan: plan, retrains: retrains))
        return try store.submitJob(NewJob(kind: gather.kind, specification: try gather.encoded()), by: submitter, now: now)
    }

    /// The recipe an adapter was trained with: that of the training job that produced it.
    func trainingJob(of adapter: AdapterID) throws -> TrainJob {
        _ = try store.adapter(adapter)
        for job in try store.jobs(in: [.succeeded]) where job.kind == .train {
            guard case .train(let train)? = try? JobSpecification(decoding: job.specification),
                (job.result.flatMap(Self.detail)?["adapter"] as? NSNumber)?.int64Value == adapter.rawValue
            else { continue }
            return train
        }
        throw CoordinatorError.refused(
            .failedPrecondition, "adapter \(adapter.rawValue) was not trained by a job of this coordinator: its recipe is unknown")
    }

    /// A job names only what exists: refused now rather than failed on an engine later.
    private func checkReferences(_ specification: JobSpecification) throws {
        switch specification {
        case .train(let train): for version in train.versions { _ = try store.version(version) }
        case .index(let index): _ = try store.adapter(index.adapter)
        case .retrain, .evaluate: break  // made by submitEvaluation from checked parts
        }
    }

    private func require(_ contributor: ContributorID?) throws -> ContributorID {
        guard let contributor else {
            throw CoordinatorError.refused(.unauthenticated, "this request changes state: connect with a contributor token (TRIBUTARY_TOKEN)")
        }
        return contributor
    }

    /// Reading jobs and engines needs a token too: anonymous watchers cost the coordinator and see others' work.
    private func require(_ contributor: ContributorID?, _ request: String) throws -> ContributorID {
        guard let contributor else {
            throw CoordinatorError.refused(.unauthenticated, "\(request) needs a contributor token: connect with one (TRIBUTARY_TOKEN)")
        }
        return contributor
    }

    /// A job as the wire shows it: step and total from its last progress event, the adapter from its result.
    func wireJob(_ job: Job) throws -> Wire.Job {
        // The last progress event, however many the job has.
        let progress = try store.lastJobEvent(of: job.id, kind: .progress).flatMap { Self.detail($0.detail) }
        let result = job.result.flatMap(Self.detail)
        let state: Wire.JobState =
            switch job.state {
            case .queued: .queued
            case .running: .running
            case .succeeded: .done
            case .failed: .failed
            case .cancelled: .cancelled
            }
        return Wire.Job(
            id: UInt64(job.id.rawValue), kind: Self.wireKind(job.kind), state: state,
            step: (progress?["step"] as? NSNumber)?.uint64Value ?? 0, totalSteps: (progress?["total_steps"] as? NSNumber)?.uint64Value ?? 0,
            adapter: (result?["adapter"] as? NSNumber)?.int64Value, engine: job.engine,
            createdAtMs: Int64(job.createdAt.timeIntervalSince1970 * 1000), message: job.error ?? "")
    }

    /// The engines as EngineListing shows them, with the attempts the store shows running on each.
    func wireEngines(_ engines: [RegisteredEngine], now: Date) throws -> [Wire.EngineEntry] {
        let running = try runningAttemptsByEngine()
        return engines.map { engine in
            Wire.EngineEntry(
                engine: engine.id, name: engine.name, address: engine.address, owner: engine.owner?.rawValue ?? 0,
                computeSlots: UInt32(clamping: engine.computeSlots), jobsRunning: UInt32(clamping: running[engine.name, default: 0]),
                jobKinds: JobKind.allCases.filter(engine.jobKinds.contains).map(Self.wireKind), draining: engine.draining,
                heartbeatAgeMs: UInt64(min(max(0, now.timeIntervalSince(engine.lastHeartbeat)), 1e9) * 1000))
        }
    }

    static func storeKind(_ kind: Wire.JobKind) -> JobKind {
        switch kind {
        case .train: .train
        case .index: .index
        case .evaluate: .evaluate
        }
    }

    static func wireKind(_ kind: JobKind) -> Wire.JobKind {
        switch kind {
        case .train: .train
        case .index: .index
        case .evaluate: .evaluate
        }
    }

    /// A store event as the wire shows it; a retry's message names the attempt that failed and why, a done one the
    /// result's summary (an evaluation's LDS).
    static func wireEvent(_ event: JobEvent) -> Wire.JobEvent {
        let detail = detail(event.detail) ?? [:]
        let kind: Wire.JobEventKind
        var message = (detail["error"] as? String) ?? ""
        switch event.kind {
        case .queued: kind = .queued
        case .started: kind = .started
        case .progress: kind = .progress
        case .checkpoint: kind = .checkpoint
        case .done:
            kind = .done
            message = (detail["summary"] as? String) ?? ""
        case .failed: kind = .failed
        case .cancelled: kind = .cancelled
        case .retrying:
            kind = .retrying
            message = "attempt \(event.attempt) failed: \(message)"
        case .cancelling: kind = .cancelling
        }
        return Wire.JobEvent(
            job: UInt64(event.job.rawValue), seq: UInt64(event.sequence), kind: kind,
            timeMs: Int64(event.createdAt.timeIntervalSince1970 * 1000), step: (detail["step"] as? NSNumber)?.uint64Value ?? 0,
            loss: (detail["loss"] as? NSNumber)?.floatValue, checkpoint: detail["location"] as? String, message: message)
    }

    static func detail(_ data: Data) -> [String: Any]? {
        data.isEmpty ? nil : (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}

extension JobSpecification {
    /// The queue's specification of a wire `JobSpec`.
    ///
    /// - Throws: ``CoordinatorError/refused(_:_:)`` (`invalid_argument`) naming the field that is wrong: every
    ///   parameter is checked against ``JobLimits`` (the bounds the engines check again), before anything is written.
    public init(_ spec: Wire.JobSpec) throws {
        let job: JobSpecification
        switch spec {
        case .train(let train):
            guard train.baseModel.utf8.count <= JobLimits.baseModelBytes.upperBound else {
                throw CoordinatorError.refused(.invalidArgument, "base_model: at most \(JobLimits.baseModelBytes.upperBound) bytes")
            }
            guard (train.steps == 0) != (train.epochs == 0) else {
                throw CoordinatorError.refused(.invalidArgument, "steps, epochs: give exactly one of them (the other 0)")
            }
            guard train.versions.count <= JobLimits.versions.upperBound else {
                throw CoordinatorError.refused(
                    .invalidArgument, "versions: \(train.versions.count) datanet versions is out of range 1 to \(JobLimits.versions.upperBound)")
            }
            job = .train(TrainJob(
                adapterName: train.adapterName,
                versions: train.versions.map { DatanetVersionRef(datanet: DatanetID($0.datanet), number: Int($0.number)) },
                rank: Int(train.rank), alpha: Double(train.alpha), targets: train.targets.isEmpty ? ["q", "k", "v", "o"] : train.targets,
                learningRate: train.learningRate, steps: Int(train.steps), epochs: Int(train.epochs), batchSize: Int(train.batchSize),
                sequenceLength: Int(train.sequenceLength), seed: train.seed, checkpointEvery: Int(train.checkpointEvery)))
        case .index(let index):
            job = .index(IndexJob(adapter: AdapterID(index.adapter), projectionDimension: Int(index.projectionDim)))
        case .evaluate:
            throw CoordinatorError.refused(.invalidArgument, "an evaluation is planned from the store: submit it to the coordinator")
        }
        do { try JobLimits.check(job) } catch { throw CoordinatorError.refused(.invalidArgument, error.description) }
        self = job
    }
}
