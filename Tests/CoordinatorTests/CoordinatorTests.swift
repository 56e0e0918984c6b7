import Foundation
import Store
import Testing

@testable import Coordinator

/// A coordinator over a fresh store with one submitter.
struct Fixture {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("coordinator-\(UUID().uuidString)")
    let store: Store
    let coordinator: Coordinator
    let submitter: ContributorID
    /// An engine's credential (role `engine`): what engines register, heartbeat and drain with.
    let engineCredential: ContributorID
    let start = Date(timeIntervalSince1970: 2_000_000_000)

    init(policy: CoordinatorPolicy = CoordinatorPolicy(heartbeatInterval: 1, missedHeartbeats: 3, retry: RetryPolicy(base: 2))) throws {
        store = try Store(directory: folder)
        coordinator = Coordinator(store: store, policy: policy)
        submitter = try store.createContributor(displayName: "builder").contributor.id
        engineCredential = try store.createContributor(displayName: "engines", role: .engine).contributor.id
        try publishTrainingVersion(in: store, by: submitter)
    }

    func submit(_ kind: JobKind = .train) throws -> Job {
        try store.submitJob(NewJob(kind: kind, specification: Data(#"{"test":true}"#.utf8)), by: submitter, now: start)
    }

    func reopen() throws -> Coordinator { Coordinator(store: try Store(directory: folder), policy: coordinator.policy) }
}

/// Datanet 1 version 1, which the tests' wire jobs train on (a job must name a version that exists).
func publishTrainingVersion(in store: Store, by owner: ContributorID) throws {
    let datanet = try store.createDatanet(NewDatanet(name: "recipes", license: "MIT"), owner: owner)
    try store.review(try store.contribute(.text("a recipe"), to: datanet.id, by: owner).id, by: owner, .approve)
    _ = try store.publishVersion(of: datanet.id, by: owner)
}

@Suite("Coordinator: registry, heartbeats, least-loaded dispatch, retries")
struct CoordinatorTests {
    @Test("Jobs go to the least-loaded engine that runs their kind, never past its compute slots")
    func leastLoaded() throws {
        let f = try Fixture()
        let a = try f.coordinator.register(name: "a", address: "127.0.0.1:1", computeSlots: 1, jobKinds: [.train, .index], now: f.start)
        let b = try f.coordinator.register(name: "b", address: "127.0.0.1:2", computeSlots: 2, jobKinds: [.train], now: f.start)
        let jobs = try (0..<4).map { _ in try f.submit() }
        let index = try f.submit(.index)
        let started = try f.coordinator.dispatch(now: f.start)
        // a (1 slot) and b (2 slots) start empty: a, then b twice; the fourth train job waits; the index job
        // finds a full.
        #expect(started.map(\.engine.name) == ["a", "b", "b"])
        #expect(started.map(\.lease.job) == Array(jobs.prefix(3)).map(\.id))
        #expect(try f.store.job(jobs[3].id).state == .queued)
        #expect(try f.store.job(index.id).state == .queued)
        #expect(a.id != b.id)
    }

    @Test("An engine that misses its heartbeats is dropped and its attempt retried elsewhere after the backoff, keeping the checkpoint")
    func lostHeartbeat() throws {
        let f = try Fixture()
        let a = try f.coordinator.register(name: "a", address: "a:1", computeSlots: 1, jobKinds: [.train], now: f.start)
        let job = try f.submit()
        let lease = try #require(try f.coordinator.dispatch(now: f.start).first).lease
        #expect(lease.engine == "a")
        try f.store.recordJobCheckpoint(lease, location: "/work/adapters/1/checkpoint-3", step: 3, now: f.start)
        // a keeps beating for a while: its lease is renewed past the original expiry.
        #expect(try f.coordinator.heartbeat(engine: a.id, now: f.start.addingTimeInterval(2)) == [lease])
        #expect(try f.coordinator.dispatch(now: f.start.addingTimeInterval(4)).isEmpty)
        #expect(try f.store.job(job.id).state == .running)

        let b = try f.coordinator.register(name: "b", address: "b:1", computeSlots: 1, jobKinds: [.train], now: f.start.addingTimeInterval(5))
        // a is silent since t=2: at t=5.5 its lease (until t=5) has lapsed; the retry waits out the 2 s backoff.
        #expect(try f.coordinator.dispatch(now: f.start.addingTimeInterval(5.5)).isEmpty)
        #expect(f.coordinator.engines.map(\.name) == ["b"])
        let requeued = try f.store.job(job.id)
        #expect(requeued.state == .queued)
        #expect(requeued.checkpoint == "/work/adapters/1/checkpoint-3")
        _ = try f.coordinator.heartbeat(engine: b.id, now: f.start.addingTimeInterval(7))
        let retried = try f.coordinator.dispatch(now: f.start.addingTimeInterval(7.6))
        #expect(retried.map(\.engine.name) == ["b"])
        #expect(retried.first?.lease.attempt == 2)
        #expect(throws: CoordinatorError.unknownEngine(a.id)) { try f.coordinator.heartbeat(engine: a.id, now: f.start.addingTimeInterval(8)) }
    }

    @Test("A restarted coordinator finds the queue and the running attempts intact; engines register again")
    func restart() throws {
        let f = try Fixture()
        _ = try f.coordinator.register(name: "a", address: "a:1", computeSlots: 1, jobKinds: [.train], now: f.start)
        let first = try f.submit()
        let second = try f.submit()
        #expect(try f.coordinator.dispatch(now: f.start).map(\.lease.job) == [first.id])

        let restarted = try f.reopen()
        #expect(restarted.engines.isEmpty)
        #expect(try restarted.dispatch(now: f.start.addingTimeInterval(0.5)).isEmpty)
        let a = try restarted.register(name: "a", address: "a:1", computeSlots: 1, jobKinds: [.train], now: f.start.addingTimeInterval(1))
        #expect(try restarted.heartbeat(engine: a.id, now: f.start.addingTimeInterval(1)).map(\.job) == [first.id])
        #expect(try restarted.store.job(first.id).state == .running)
        #expect(try restarted.store.job(second.id).state == .queued)
    }

    @Test("Registration refuses what cannot run jobs")
    func badRegistration() throws {
        let f = try Fixture()
        #expect(throws: CoordinatorError.self) { try f.coordinator.register(name: "", address: "x", computeSlots: 1, jobKinds: [.train]) }
        #expect(throws: CoordinatorError.self) { try f.coordinator.register(name: "a", address: "x", computeSlots: 0, jobKinds: [.train]) }
        #expect(throws: CoordinatorError.self) { try f.coordinator.register(name: "a", address: "x", computeSlots: 1, jobKinds: []) }
        #expect(f.coordinator.engines.isEmpty)
    }
}
