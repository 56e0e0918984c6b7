import Foundation
import GRDB

/// What a queued job does. The store keeps the job's specification as opaque JSON; the coordinator defines it.
public enum JobKind: String, Sendable, Codable, CaseIterable {
    /// Train an adapter on datanet versions.
    case train
    /// Build the gradient index of a trained adapter.
    case index
    /// Evaluate attribution (fans out subset retrains as child jobs).
    case evaluate
}

/// Where a job is in its life. `succeeded`, `failed` and `cancelled` are final.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// What a job event reports. Events are append-only and numbered in commit order across all jobs, so a watcher
/// resumes from the last sequence number it saw.
public enum JobEventKind: String, Sendable, Codable, CaseIterable {
    case queued, started, progress, checkpoint, retrying, cancelling, done, failed, cancelled
}

public enum JobIDKind: StoreIDKind { public static let noun = "job" }
public typealias JobID = StoreID<JobIDKind>

/// What submitting a job takes.
public struct NewJob: Sendable {
    public var kind: JobKind
    /// The job's specification as JSON, opaque to the store (at most 1 MiB).
    public var specification: Data
    /// Attempts before the job fails for good; at least 1.
    public var maxAttempts: Int
    /// The job this one was fanned out from, if any.
    public var parent: JobID?

    public init(kind: JobKind, specification: Data, maxAttempts: Int = 3, parent: JobID? = nil) {
        self.kind = kind
        self.specification = specification
        self.maxAttempts = maxAttempts
        self.parent = parent
    }
}

/// A queued, running or finished job.
public struct Job: Hashable, Sendable {
    public var id: JobID
    public var kind: JobKind
    public var specification: Data
    public var state: JobState
    public var submittedBy: ContributorID
    public var parent: JobID?
    /// Attempts started so far; the running attempt's number while running.
    public var attempt: Int
    public var maxAttempts: Int
    /// The engine running the current attempt.
    public var engine: String?
    /// When the running attempt's lease lapses unless the engine's heartbeat renews it.
    public var leaseExpiresAt: Date?
    /// A queued job is not started before this time (retry backoff).
    public var notBefore: Date
    /// The last checkpoint reported, where a retried attempt resumes.
    public var checkpoint: String?
    /// Cancellation was asked for while it ran; the engine is being told.
    public var cancelRequested: Bool
    public var result: Data?
    public var error: String?
    public var createdAt: Date
    public var updatedAt: Date
}

/// One event of a job.
public struct JobEvent: Hashable, Sendable {
    /// Increases across all jobs in commit order.
    public var sequence: Int64
    public var job: JobID
    public var kind: JobEventKind
    public var attempt: Int
    /// JSON detail (progress figures, an error, a checkpoint location), or empty.
    public var detail: Data
    public var createdAt: Date
}

/// The right to report on one attempt of a running job. Every report names its lease; a report from an attempt
/// that has since been given up (its engine went silent and the job moved on) is refused, so a stale engine
/// never overwrites the work of the attempt that replaced it.
public struct JobLease: Hashable, Sendable, Codable {
    public var job: JobID
    public var attempt: Int
    public var engine: String

    public init(job: JobID, attempt: Int, engine: String) {
        self.job = job
        self.attempt = attempt
        self.engine = engine
    }
}

/// Exponential backoff between attempts: `base * factor^(attempt - 1)`, at most `maximum`.
public struct RetryPolicy: Sendable, Equatable {
    public var base: TimeInterval
    public var factor: Double
    public var maximum: TimeInterval

    public init(base: TimeInterval = 1, factor: Double = 2, maximum: TimeInterval = 60) {
        self.base = base
        self.factor = factor
        self.maximum = maximum
    }

    /// The wait before the attempt after `attempt` (1-based).
    public func delay(afterAttempt attempt: Int) -> TimeInterval {
        min(maximum, base * pow(factor, Double(max(0, attempt - 1))))
    }
}

extension Store {
    static let maximumSpecificationBytes = 1 << 20

    /// Queues a job submitted by `contributor`.
    ///
    /// - Throws: ``StoreError/invalidJob(_:)``, ``StoreError/contributorNotFound(_:)``,
    ///   ``StoreError/jobNotFound(_:)`` for an unknown parent.
    public func submitJob(_ spec: NewJob, by contributor: ContributorID, now: Date = Date()) throws -> Job {
        guard spec.maxAttempts >= 1, spec.maxAttempts <= 100 else {
            throw StoreError.invalidJob("max attempts must be 1 to 100, not \(spec.maxAttempts)")
        }
        guard spec.specification.count <= Self.maximumSpecificationBytes,
            (try? JSONSerialization.jsonObject(with: spec.specification, options: [.fragmentsAllowed])) != nil
        else {
            throw StoreError.invalidJob("the specification must be JSON of at most 1 MiB")
        }
        return try write { db in
            try Self.requireContributor(db, contributor)
            if let parent = spec.parent { _ = try Self.fetchJob(db, parent) }
            try db.execute(
                sql: """
                    INSERT INTO job (kind, specification, state, submitted_by, parent_id, attempt, max_attempts,
                                     not_before, created_at, updated_at)
                    VALUES (?, ?, 'queued', ?, ?, 0, ?, ?, ?, ?)
                    """,
                arguments: [spec.kind.rawValue, spec.specification, contributor, spec.parent, spec.maxAttempts,
                            now.millis, now.millis, now.millis])
            let id = JobID(db.lastInsertedRowID)
            try Self.appendEvent(db, id, .queued, attempt: 0, now: now)
            return try Self.fetchJob(db, id)
        }
    }

    public func job(_ id: JobID) throws -> Job {
        try read { db in try Self.fetchJob(db, id) }
    }

    /// Jobs in any of `states`, oldest first.
    public func jobs(in states: Set<JobState> = Set(JobState.allCases), limit: Int = 1000) throws -> [Job] {
        try read { db in
            let names = states.map(\.rawValue).sorted()
            let marks = databaseQuestionMarks(count: names.count)
            var arguments = StatementArguments(names)
            arguments += [limit]
            return try Row.fetchAll(
                db, sql: "SELECT * FROM job WHERE state IN (\(marks)) ORDER BY id LIMIT ?", arguments: arguments
            ).map(Self.job(from:))
        }
    }

    /// Queued jobs whose backoff has passed, oldest first: what a dispatcher may start now.
    public func runnableJobs(now: Date = Date(), limit: Int = 100) throws -> [Job] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM job WHERE state = 'queued' AND not_before <= ? ORDER BY id LIMIT ?",
                arguments: [now.millis, limit]
            ).map(Self.job(from:))
        }
    }

    /// Starts the next attempt of a queued job on `engine`, leased until `now + leaseDuration`.
    ///
    /// - Throws: ``StoreError/jobNotRunnable(_:state:)`` unless the job is queued and its backoff has passed.
    public func startJob(
        _ id: JobID, engine: String, leaseDuration: TimeInterval, now: Date = Date()
    ) throws -> JobLease {
        guard !engine.isEmpty, engine.utf8.count <= 200 else {
            throw StoreError.invalidJob("engine names are 1 to 200 bytes")
        }
        return try write { db in
            let job = try Self.fetchJob(db, id)
            guard job.state == .queued, job.notBefore <= now else {
                throw StoreError.jobNotRunnable(id, state: job.state)
            }
            let attempt = job.attempt + 1
            try db.execute(
                sql: """
                    UPDATE job SET state = 'running', attempt = ?, engine = ?, lease_expires_at = ?, updated_at = ?
                    WHERE id = ?
                    """,
                arguments: [attempt, engine, now.addingTimeInterval(leaseDuration).millis, now.millis, id])
            try Self.appendEvent(db, id, .started, attempt: attempt, detail: ["engine": engine], now: now)
            return JobLease(job: id, attempt: attempt, engine: engine)
        }
    }

    /// An engine's heartbeat: extends the leases of every attempt it is running. Returns those leases.
    public func renewLeases(engine: String, leaseDuration: TimeInterval, now: Date = Date()) throws -> [JobLease] {
        try write { db in
            try db.execute(
                sql: "UPDATE job SET lease_expires_at = ? WHERE state = 'running' AND engine = ?",
                arguments: [now.addingTimeInterval(leaseDuration).millis, engine])
            return try Row.fetchAll(
                db, sql: "SELECT id, attempt FROM job WHERE state = 'running' AND engine = ? ORDER BY id",
                arguments: [engine]
            ).map { JobLease(job: $0["id"], attempt: $0["attempt"], engine: engine) }
        }
    }

    /// Records progress of a running attempt (opaque JSON, e.g. step, loss, tokens/s).
    public func recordJobProgress(_ lease: JobLease, detail: Data, now: Date = Date()) throws {
        try write { db in
            try Self.requireLease(db, lease)
            try Self.appendEvent(db, lease.job, .progress, attempt: lease.attempt, rawDetail: detail, now: now)
        }
    }

    /// Records a checkpoint of a running attempt; a later attempt resumes from the last one recorded.
    public func recordJobCheckpoint(_ lease: JobLease, location: String, step: Int, now: Date = Date()) throws {
        let location = try Self.validLocation(location, invalid: StoreError.invalidJob)
        try write { db in
            try Self.requireLease(db, lease)
            try db.execute(
                sql: "UPDATE job SET checkpoint = ?, updated_at = ? WHERE id = ?",
                arguments: [location, now.millis, lease.job])
            try Self.appendEvent(
                db, lease.job, .checkpoint, attempt: lease.attempt, detail: ["location": location, "step": step],
                now: now)
        }
    }

    /// Finishes a running attempt successfully with its result (JSON).
    public func completeJob(_ lease: JobLease, result: Data, now: Date = Date()) throws -> Job {
        guard (try? JSONSerialization.jsonObject(with: result, options: [.fragmentsAllowed])) != nil else {
            throw StoreError.invalidJob("a job's result must be JSON")
        }
        return try write { db in
            try Self.requireLease(db, lease)
            try db.execute(
                sql: """
                    UPDATE job SET state = 'succeeded', result = ?, lease_expires_at = NULL, updated_at = ?
                    WHERE id = ?
                    """,
                arguments: [result, now.millis, lease.job])
            try Self.appendEvent(db, lease.job, .done, attempt: lease.attempt, rawDetail: result, now: now)
            return try Self.fetchJob(db, lease.job)
        }
    }

    /// Ends a running attempt that failed. The job is queued again after the policy's backoff while attempts
    /// remain; otherwise it fails for good. A job whose cancellation was asked for is cancelled instead.
    public func failJobAttempt(
        _ lease: JobLease, error: String, retry policy: RetryPolicy = RetryPolicy(), now: Date = Date()
    ) throws -> Job {
        try write { db in
            try Self.requireLease(db, lease)
            try Self.endAttempt(db, try Self.fetchJob(db, lease.job), error: error, policy: policy, now: now)
            return try Self.fetchJob(db, lease.job)
        }
    }

    /// Gives up every running attempt whose lease has lapsed (its engine stopped sending heartbeats), as
    /// ``failJobAttempt(_:error:retry:now:)`` would. Returns the jobs it touched.
    public func expireLeases(retry policy: RetryPolicy = RetryPolicy(), now: Date = Date()) throws -> [Job] {
        try write { db in
            let expired = try Row.fetchAll(
                db, sql: "SELECT * FROM job WHERE state = 'running' AND lease_expires_at < ? ORDER BY id",
                arguments: [now.millis]
            ).map(Self.job(from:))
            return try expired.map { job in
                try Self.endAttempt(
                    db, job, error: "lost the heartbeat of engine \(job.engine ?? "?")", policy: policy, now: now)
                return try Self.fetchJob(db, job.id)
            }
        }
    }

    /// Gives up every running attempt that reported nothing (no `started`, `progress` or `checkpoint` event: a
    /// running job's last event is one of them, unless its cancellation was asked for) for longer than
    /// `stalledAfter` (one indexed read of the last event per running job, every dispatch round), as ``failJobAttempt(_:error:retry:now:)`` would: its engine may still send
    /// heartbeats (which renew the lease) while the attempt is stuck, and without this it would hold the job
    /// forever. A report the stalled attempt sends later is refused (its lease is stale). Returns the jobs it
    /// touched.
    public func expireStalledAttempts(
        stalledAfter: TimeInterval, retry policy: RetryPolicy = RetryPolicy(), now: Date = Date()
    ) throws -> [Job] {
        let cutoff = now.addingTimeInterval(-stalledAfter).millis
        return try write { db in
            let stalled = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM job WHERE state = 'running' AND cancel_requested = 0 AND
                        (SELECT created_at FROM job_event WHERE job_event.job_id = job.id
                         ORDER BY sequence DESC LIMIT 1) < ?
                    ORDER BY id
                    """,
                arguments: [cutoff]
            ).map(Self.job(from:))
            return try stalled.map { job in
                try Self.endAttempt(
                    db, job,
                    error: "attempt \(job.attempt) on engine \(job.engine ?? "?") reported no progress for \(Int(stalledAfter)) s",
                    policy: policy, now: now)
                return try Self.fetchJob(db, job.id)
            }
        }
    }

    /// Cancels a job for its submitter (or an operator). A queued job is cancelled at once; a running one is marked
    /// `cancelRequested` until its engine acknowledges with ``acknowledgeCancellation(_:now:)`` or its attempt
    /// ends. Cancelling a cancelled job does nothing.
    ///
    /// - Throws: ``StoreError/notJobOwner(job:contributor:)``, ``StoreError/jobAlreadyFinished(_:state:)``.
    public func cancelJob(_ id: JobID, by contributor: ContributorID, now: Date = Date()) throws -> Job {
        try write { db in
            let job = try Self.fetchJob(db, id)
            guard try job.submittedBy == contributor || Self.isOperator(db, contributor) else {
                throw StoreError.notJobOwner(job: id, contributor: contributor)
            }
            switch job.state {
            case .cancelled: return job
            case .succeeded, .failed: throw StoreError.jobAlreadyFinished(id, state: job.state)
            case .queued:
                try db.execute(
                    sql: "UPDATE job SET state = 'cancelled', updated_at = ? WHERE id = ?", arguments: [now.millis, id])
                try Self.appendEvent(db, id, .cancelled, attempt: job.attempt, now: now)
            case .running:
                guard !job.cancelRequested else { return job }
                try db.execute(
                    sql: "UPDATE job SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                    arguments: [now.millis, id])
                try Self.appendEvent(db, id, .cancelling, attempt: job.attempt, now: now)
            }
            return try Self.fetchJob(db, id)
        }
    }

    /// The engine stopped a running attempt whose cancellation was asked for.
    public func acknowledgeCancellation(_ lease: JobLease, now: Date = Date()) throws -> Job {
        try write { db in
            try Self.requireLease(db, lease)
            try Self.finishCancelled(db, lease.job, attempt: lease.attempt, now: now)
            return try Self.fetchJob(db, lease.job)
        }
    }

    /// Events after sequence number `after` (0 for all), in order; of one job, or of all jobs.
    public func jobEvents(of job: JobID? = nil, after: Int64 = 0, limit: Int = 1000) throws -> [JobEvent] {
        try read { db in
            let filter = job == nil ? "" : "AND job_id = ?"
            var arguments: StatementArguments = [after]
            if let job { arguments += [job] }
            arguments += [limit]
            return try Row.fetchAll(
                db, sql: "SELECT * FROM job_event WHERE sequence > ? \(filter) ORDER BY sequence LIMIT ?",
                arguments: arguments
            ).map(Self.jobEvent(from:))
        }
    }

    /// The job's last event (a finished job's is its final one), or its last of `kind`; nil for none.
    public func lastJobEvent(of job: JobID, kind: JobEventKind? = nil) throws -> JobEvent? {
        try read { db in
            let filter = kind == nil ? "" : "AND kind = ?"
            var arguments: StatementArguments = [job]
            if let kind { arguments += [kind.rawValue] }
            return try Row.fetchOne(
                db, sql: "SELECT * FROM job_event WHERE job_id = ? \(filter) ORDER BY sequence DESC LIMIT 1", arguments: arguments
            ).map(Self.jobEvent(from:))
        }
    }

    /// The sequence number of the last job event (0 for none): where a reader of new events starts.
    public func lastJobEventSequence() throws -> Int64 {
        try read { db in try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(sequence), 0) FROM job_event") ?? 0 }
    }

    // MARK: - Internals

    private static func endAttempt(_ db: Database, _ job: Job, error: String, policy: RetryPolicy, now: Date) throws {
        let error = String(error.prefix(4096))
        if job.cancelRequested {
            try finishCancelled(db, job.id, attempt: job.attempt, now: now)
        } else if job.attempt < job.maxAttempts {
            let retryAt = now.addingTimeInterval(policy.delay(afterAttempt: job.attempt))
            try db.execute(
                sql: """
                    UPDATE job SET state = 'queued', engine = NULL, lease_expires_at = NULL, not_before = ?,
                                   error = ?, updated_at = ?
                    WHERE id = ?
                    """,
                arguments: [retryAt.millis, error, now.millis, job.id])
            try appendEvent(
                db, job.id, .retrying, attempt: job.attempt,
                detail: ["error": error, "retry_at_ms": retryAt.millis], now: now)
        } else {
            // Out of attempts: the job is quarantined as failed, not retried, so a job that brings down every engine
            // that takes it stops doing so. The message says where it failed.
            let engines = try Data.fetchAll(
                db, sql: "SELECT detail FROM job_event WHERE job_id = ? AND kind = 'started' ORDER BY sequence", arguments: [job.id]
            ).compactMap { detail -> String? in
                guard let object = try? JSONSerialization.jsonObject(with: detail) as? [String: Any] else { return nil }
                return object["engine"] as? String
            }
            var distinct: [String] = []
            for engine in engines where !distinct.contains(engine) { distinct.append(engine) }
            let error = String(
                "failed \(job.attempt) of \(job.maxAttempts) attempts (on engine\(distinct.count == 1 ? "" : "s") \(distinct.joined(separator: ", "))), not retried; the last: \(error)"
                    .prefix(4096))
            try db.execute(
                sql: "UPDATE job SET state = 'failed', lease_expires_at = NULL, error = ?, updated_at = ? WHERE id = ?",
                arguments: [error, now.millis, job.id])
            try appendEvent(db, job.id, .failed, attempt: job.attempt, detail: ["error": error], now: now)
        }
    }

    private static func finishCancelled(_ db: Database, _ id: JobID, attempt: Int, now: Date) throws {
        try db.execute(
            sql: "UPDATE job SET state = 'cancelled', lease_expires_at = NULL, updated_at = ? WHERE id = ?",
            arguments: [now.millis, id])
        try appendEvent(db, id, .cancelled, attempt: attempt, now: now)
    }

    private static func requireLease(_ db: Database, _ lease: JobLease) throws {
        let job = try fetchJob(db, lease.job)
        guard job.state == .running, job.attempt == lease.attempt, job.engine == lease.engine else {
            throw StoreError.staleJobLease(job: lease.job, attempt: lease.attempt, engine: lease.engine)
        }
    }

    private static func appendEvent(
        _ db: Database, _ job: JobID, _ kind: JobEventKind, attempt: Int, detail: [String: any Sendable] = [:],
        now: Date
    ) throws {
        let data = detail.isEmpty ? Data() : try JSONSerialization.data(withJSONObject: detail, options: [.sortedKeys])
        try appendEvent(db, job, kind, attempt: attempt, rawDetail: data, now: now)
    }

    private static func appendEvent(
        _ db: Database, _ job: JobID, _ kind: JobEventKind, attempt: Int, rawDetail: Data, now: Date
    ) throws {
        guard rawDetail.count <= maximumSpecificationBytes else {
            throw StoreError.invalidJob("an event's detail is over 1 MiB")
        }
        try db.execute(
            sql: "INSERT INTO job_event (job_id, kind, attempt, detail, created_at) VALUES (?, ?, ?, ?, ?)",
            arguments: [job, kind.rawValue, attempt, rawDetail, now.millis])
    }

    static func fetchJob(_ db: Database, _ id: JobID) throws -> Job {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]) else {
            throw StoreError.jobNotFound(id)
        }
        return try job(from: row)
    }

    static func job(from row: Row) throws -> Job {
        let id: JobID = row["id"]
        guard let kind = JobKind(rawValue: row["kind"]), let state = JobState(rawValue: row["state"]) else {
            throw StoreError.corruptRow("\(id) has an unknown kind or state")
        }
        let lease: Int64? = row["lease_expires_at"]
        return Job(
            id: id, kind: kind, specification: row["specification"], state: state, submittedBy: row["submitted_by"],
            parent: row["parent_id"], attempt: row["attempt"], maxAttempts: row["max_attempts"], engine: row["engine"],
            leaseExpiresAt: lease.map(Date.init(millis:)), notBefore: Date(millis: row["not_before"]),
            checkpoint: row["checkpoint"], cancelRequested: row["cancel_requested"], result: row["result"],
            error: row["error"], createdAt: Date(millis: row["created_at"]), updatedAt: Date(millis: row["updated_at"]))
    }

    static func jobEvent(from row: Row) throws -> JobEvent {
        guard let kind = JobEventKind(rawValue: row["kind"]) else {
            throw StoreError.corruptRow("job event \(row["sequence"] as Int64) has an unknown kind")
        }
        return JobEvent(
            sequence: row["sequence"], job: row["job_id"], kind: kind, attempt: row["attempt"],
            detail: row["detail"], createdAt: Date(millis: row["created_at"]))
    }
}
