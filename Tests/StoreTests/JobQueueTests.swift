import Foundation
import Testing

@testable import Store

@Suite("Job queue")
struct JobQueueTests {
    let directory: TemporaryDirectory
    let store: Store
    let operator_: NewContributor
    let other: NewContributor
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    init() throws {
        directory = try TemporaryDirectory()
        store = try Store(directory: directory.url)
        operator_ = try store.createContributor(displayName: "Operator")
        other = try store.createContributor(displayName: "Other")
    }

    func submit(_ kind: JobKind = .train, maxAttempts: Int = 3) throws -> Job {
        try store.submitJob(
            NewJob(kind: kind, specification: Data(#"{"steps": 40}"#.utf8), maxAttempts: maxAttempts),
            by: operator_.contributor.id, now: t0)
    }

    @Test func anEngineDrainKeepsItsFirstRecordUntilResumed() throws {
        let id = operator_.contributor.id
        #expect(try store.engineDrain(named: "engine-a") == nil)
        let first = try store.drainEngine(named: "engine-a", by: id, now: t0)
        #expect(first == EngineDrain(engine: "engine-a", drainedBy: id, drainedAt: t0))
        #expect(try store.drainEngine(named: "engine-a", by: other.contributor.id, now: t0.addingTimeInterval(5)) == first)
        #expect(try store.engineDrain(named: "engine-b") == nil)
        try expectRefusal(store, .contributorNotFound(ContributorID(99))) {
            _ = try store.drainEngine(named: "engine-b", by: ContributorID(99), now: t0)
        }
        #expect(try store.resumeEngine(named: "engine-a"))
        #expect(try !store.resumeEngine(named: "engine-a"))
        #expect(try store.engineDrain(named: "engine-a") == nil)
    }

    @Test func anEngineNameIsBoundToItsFirstCredentialAcrossAReopen() throws {
        let first = try store.bindEngine(named: "engine-a", to: operator_.contributor.id, now: t0)
        #expect(first == EngineBinding(engine: "engine-a", contributor: operator_.contributor.id, boundAt: t0))
        // Binding again, by anyone, returns the first binding: the caller compares.
        #expect(try store.bindEngine(named: "engine-a", to: other.contributor.id, now: t0.addingTimeInterval(5)) == first)
        try expectRefusal(store, .contributorNotFound(ContributorID(99))) {
            _ = try store.bindEngine(named: "engine-b", to: ContributorID(99), now: t0)
        }
        #expect(try store.engineBinding(named: "engine-b") == nil)
        let reopened = try Store(directory: directory.url)
        #expect(try reopened.engineBinding(named: "engine-a") == first)
    }

    @Test func anAttemptThatReportsNothingIsGivenUpWhileOneThatReportsIsNot() throws {
        let quiet = try submit()
        let busy = try submit()
        let quietLease = try store.startJob(quiet.id, engine: "engine-a", leaseDuration: 10, now: t0)
        let busyLease = try store.startJob(busy.id, engine: "engine-a", leaseDuration: 10, now: t0)
        try store.recordJobProgress(busyLease, detail: Data("{}".utf8), now: t0.addingTimeInterval(50))
        // Heartbeats renew both leases; only reports count as progress.
        _ = try store.renewLeases(engine: "engine-a", leaseDuration: 10, now: t0.addingTimeInterval(60))
        #expect(try store.expireStalledAttempts(stalledAfter: 60, now: t0.addingTimeInterval(60)).isEmpty)
        let stalled = try store.expireStalledAttempts(stalledAfter: 60, retry: RetryPolicy(base: 1), now: t0.addingTimeInterval(61))
        #expect(stalled.map(\.id) == [quiet.id] && stalled[0].state == .queued)
        #expect(stalled[0].error == "attempt 1 on engine engine-a reported no progress for 60 s")
        #expect(try store.job(busy.id).state == .running)
        try expectRefusal(store, .staleJobLease(job: quiet.id, attempt: 1, engine: "engine-a")) {
            try store.recordJobProgress(quietLease, detail: Data("{}".utf8))
        }
    }

    @Test func aJobRunsToCompletionWithItsEventsInOrder() throws {
        let job = try submit()
        #expect(job.state == .queued && job.attempt == 0 && job.notBefore == t0)
        #expect(try store.runnableJobs(now: t0).map(\.id) == [job.id])

        let lease = try store.startJob(job.id, engine: "engine-a", leaseDuration: 10, now: t0)
        #expect(lease == JobLease(job: job.id, attempt: 1, engine: "engine-a"))
        #expect(try store.runnableJobs(now: t0).isEmpty)
        try expectRefusal(store, .jobNotRunnable(job.id, state: .running)) {
            _ = try store.startJob(job.id, engine: "engine-b", leaseDuration: 10, now: t0)
        }
        try store.recordJobProgress(lease, detail: Data(#"{"step": 5, "loss": 2.5}"#.utf8), now: t0)
        try store.recordJobCheckpoint(lease, location: "/ckpt/step-5", step: 5, now: t0)
        let done = try store.completeJob(lease, result: Data(#"{"adapter": 7}"#.utf8), now: t0)
        #expect(done.state == .succeeded && done.checkpoint == "/ckpt/step-5")
        #expect(done.result == Data(#"{"adapter": 7}"#.utf8))

        let events = try store.jobEvents(of: job.id)
        #expect(events.map(\.kind) == [.queued, .started, .progress, .checkpoint, .done])
        #expect(events.map(\.sequence) == events.map(\.sequence).sorted())
        #expect(try store.jobEvents(of: job.id, after: events[2].sequence).map(\.kind) == [.checkpoint, .done])
        try expectRefusal(store, .jobAlreadyFinished(job.id, state: .succeeded)) {
            _ = try store.cancelJob(job.id, by: operator_.contributor.id)
        }
    }

    @Test func aFailedAttemptRetriesAfterBackoffAndKeepsItsCheckpoint() throws {
        let policy = RetryPolicy(base: 2, factor: 3, maximum: 100)
        let job = try submit(maxAttempts: 2)
        let first = try store.startJob(job.id, engine: "engine-a", leaseDuration: 10, now: t0)
        try store.recordJobCheckpoint(first, location: "/ckpt/step-20", step: 20, now: t0)
        let retried = try store.failJobAttempt(first, error: "out of memory", retry: policy, now: t0)
        #expect(retried.state == .queued && retried.engine == nil && retried.error == "out of memory")
        #expect(retried.notBefore == t0.addingTimeInterval(2))
        #expect(retried.checkpoint == "/ckpt/step-20")
        #expect(try store.runnableJobs(now: t0.addingTimeInterval(1.9)).isEmpty)
        try expectRefusal(store, .jobNotRunnable(job.id, state: .queued)) {
            _ = try store.startJob(job.id, engine: "engine-b", leaseDuration: 10, now: t0.addingTimeInterval(1))
        }

        let second = try store.startJob(job.id, engine: "engine-b", leaseDuration: 10, now: t0.addingTimeInterval(2))
        #expect(second.attempt == 2)
        let failed = try store.failJobAttempt(second, error: "again", retry: policy, now: t0.addingTimeInterval(3))
        #expect(failed.state == .failed && failed.error == "failed 2 of 2 attempts (on engines engine-a, engine-b), not retried; the last: again")
        #expect(try store.jobEvents(of: job.id).map(\.kind) == [.queued, .started, .checkpoint, .retrying, .started, .failed])
    }

    @Test func aSilentEngineLosesItsAttemptAndItsLateReportsAreRefused() throws {
        let job = try submit()
        let stale = try store.startJob(job.id, engine: "engine-a", leaseDuration: 10, now: t0)
        // Heartbeats renew the lease: nothing expires at the first deadline.
        #expect(try store.renewLeases(engine: "engine-a", leaseDuration: 10, now: t0.addingTimeInterval(8)) == [stale])
        #expect(try store.expireLeases(now: t0.addingTimeInterval(12)).isEmpty)
        // Then the engine goes silent.
        let expired = try store.expireLeases(retry: RetryPolicy(base: 1), now: t0.addingTimeInterval(18.001))
        #expect(expired.map(\.id) == [job.id] && expired[0].state == .queued)
        #expect(expired[0].error == "lost the heartbeat of engine engine-a")

        let fresh = try store.startJob(job.id, engine: "engine-b", leaseDuration: 10, now: t0.addingTimeInterval(20))
        let staleError = StoreError.staleJobLease(job: job.id, attempt: 1, engine: "engine-a")
        try expectRefusal(store, staleError) { try store.recordJobProgress(stale, detail: Data("{}".utf8)) }
        try expectRefusal(store, staleError) { _ = try store.completeJob(stale, result: Data("{}".utf8)) }
        #expect(try store.completeJob(fresh, result: Data("{}".utf8)).state == .succeeded)
    }

    @Test func cancellation() throws {
        let queued = try submit()
        try expectRefusal(store, .notJobOwner(job: queued.id, contributor: other.contributor.id)) {
            _ = try store.cancelJob(queued.id, by: other.contributor.id)
        }
        #expect(try store.cancelJob(queued.id, by: operator_.contributor.id).state == .cancelled)
        #expect(try store.cancelJob(queued.id, by: operator_.contributor.id).state == .cancelled)

        let running = try submit()
        let lease = try store.startJob(running.id, engine: "engine-a", leaseDuration: 10, now: t0)
        let cancelling = try store.cancelJob(running.id, by: operator_.contributor.id)
        #expect(cancelling.state == .running && cancelling.cancelRequested)
        #expect(try store.acknowledgeCancellation(lease).state == .cancelled)
        #expect(try store.jobEvents(of: running.id).map(\.kind) == [.queued, .started, .cancelling, .cancelled])

        // An attempt that fails after cancellation was asked for is not retried.
        let third = try submit()
        let thirdLease = try store.startJob(third.id, engine: "engine-a", leaseDuration: 10, now: t0)
        _ = try store.cancelJob(third.id, by: operator_.contributor.id)
        #expect(try store.failJobAttempt(thirdLease, error: "interrupted").state == .cancelled)
    }

    @Test func badSubmissionsAreRefusedWithNothingChanged() throws {
        let id = operator_.contributor.id
        try expectRefusal(store, .invalidJob("max attempts must be 1 to 100, not 0")) {
            _ = try store.submitJob(NewJob(kind: .train, specification: Data("{}".utf8), maxAttempts: 0), by: id)
        }
        try expectRefusal(store, .invalidJob("the specification must be JSON of at most 1 MiB")) {
            _ = try store.submitJob(NewJob(kind: .train, specification: Data("{steps".utf8)), by: id)
        }
        try expectRefusal(store, .contributorNotFound(ContributorID(999))) {
            _ = try store.submitJob(NewJob(kind: .index, specification: Data("{}".utf8)), by: ContributorID(999))
        }
        try expectRefusal(store, .jobNotFound(JobID(42))) {
            _ = try store.submitJob(NewJob(kind: .train, specification: Data("{}".utf8), parent: JobID(42)), by: id)
        }
    }

    @Test func theQueueSurvivesAReopenAndCarriesOn() throws {
        let done = try submit()
        let lease = try store.startJob(done.id, engine: "engine-a", leaseDuration: 10, now: t0)
        _ = try store.completeJob(lease, result: Data("{}".utf8), now: t0)
        let running = try submit()
        let runningLease = try store.startJob(running.id, engine: "engine-a", leaseDuration: 10, now: t0)
        let waiting = try submit(.evaluate)
        let before = try store.dump()
        try store.close()

        let reopened = try Store(directory: directory.url)
        #expect(try reopened.dump() == before)
        #expect(try reopened.runnableJobs(now: t0).map(\.id) == [waiting.id])
        #expect(try reopened.jobs(in: [.running]).map(\.id) == [running.id])
        // The running attempt's lease still holds; once it lapses the job is queued again.
        try reopened.recordJobProgress(runningLease, detail: Data("{}".utf8), now: t0)
        #expect(try reopened.expireLeases(now: t0.addingTimeInterval(11)).map(\.state) == [.queued])
    }

    @Test func finishedJobsAndEventsCannotBeRewrittenInSQL() throws {
        let job = try submit()
        _ = try store.cancelJob(job.id, by: operator_.contributor.id)
        #expect(throws: (any Error).self) { try store.executeRaw("UPDATE job SET state = 'queued' WHERE id = \(job.id.rawValue)") }
        #expect(throws: (any Error).self) { try store.executeRaw("UPDATE job_event SET kind = 'done'") }
        #expect(throws: (any Error).self) { try store.executeRaw("DELETE FROM job_event") }
    }

    @Test(arguments: [(1, 1.5), (2, 3.0), (3, 6.0), (4, 10.0), (9, 10.0)])
    func backoffGrowsGeometricallyToItsCap(attempt: Int, expected: Double) {
        #expect(RetryPolicy(base: 1.5, factor: 2, maximum: 10).delay(afterAttempt: attempt) == expected)
    }
}
