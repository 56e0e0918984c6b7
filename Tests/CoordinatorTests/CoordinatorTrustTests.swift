import Foundation
import ProtocolServer
import Serving
import Store
import Testing
import WireProtocol

@testable import Coordinator

/// What one ordinary contributor could do to the coordinator (issue 15, "Trust"): take or drain engines, hold
/// jobs with heartbeats alone, crash every engine with one job, and trap the process with a large id.
@Suite("Coordinator trust: engine credentials, job bounds, quarantine, stalls")
struct CoordinatorTrustTests {
    func register(_ f: Fixture, _ name: String, by contributor: ContributorID?, coordinator: Coordinator? = nil, now: Date? = nil) throws -> UInt64 {
        let reply = try (coordinator ?? f.coordinator).respond(
            to: .engineRegister(Wire.EngineRegister(name: name, address: "\(name):1", computeSlots: 1, memoryBytes: 0, maxAdapters: 0, jobKinds: [.train])),
            contributor: contributor, now: now ?? f.start)
        guard case .engineRegistered(let engine) = reply else { throw CoordinatorError.invalidEngine("not registered") }
        return engine.engine
    }

    func heartbeat(_ f: Fixture, _ engine: UInt64, by contributor: ContributorID, now: Date? = nil) throws {
        _ = try f.coordinator.respond(
            to: .engineHeartbeat(Wire.EngineHeartbeat(engine: engine, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: [])),
            contributor: contributor, now: now ?? f.start)
    }

    func code(_ body: () throws -> Any) -> ErrorCode? {
        do {
            _ = try body()
            return nil
        } catch {
            return RequestFailure(error).code
        }
    }

    @Test("A plain contributor cannot register, heartbeat or drain engines, and registering writes nothing")
    func plainContributorRefused() throws {
        let f = try Fixture()
        #expect(code { try register(f, "a", by: f.submitter) } == .permissionDenied)
        #expect(f.coordinator.engines.isEmpty)
        #expect(try f.store.engineBinding(named: "a") == nil, "a refused registration binds no name")

        let a = try register(f, "a", by: f.engineCredential)
        #expect(code { try heartbeat(f, a, by: f.submitter) } == .permissionDenied)
        #expect(code { try f.coordinator.respond(to: .engineDrain(Wire.EngineDrain(name: "a", drain: true)), contributor: f.submitter) } == .permissionDenied)
        #expect(try f.store.engineDrain(named: "a") == nil && f.coordinator.engines.map(\.draining) == [false])
        // Listing needs a token but no role.
        #expect(code { try f.coordinator.respond(to: .engineList(Wire.EngineList()), contributor: nil) } == .unauthenticated)
        #expect(code { try f.coordinator.respond(to: .engineList(Wire.EngineList()), contributor: f.submitter) } == nil)
    }

    @Test("An engine name is bound to the credential that first registered it, across a coordinator restart")
    func boundName() throws {
        let f = try Fixture()
        let thief = try f.store.createContributor(displayName: "thief", role: .engine).contributor.id
        let operatorID = try f.store.createContributor(displayName: "operator", role: .operator).contributor.id
        let a = try register(f, "a", by: f.engineCredential)
        #expect(try f.store.engineBinding(named: "a")?.contributor == f.engineCredential)

        #expect(throws: CoordinatorError.refused(.alreadyExists, "the engine name a is bound to another credential (\(f.engineCredential)): register under another name")) {
            try register(f, "a", by: thief)
        }
        #expect(code { try register(f, "a", by: operatorID) } == .alreadyExists, "an operator drains, but does not take, another's engine")
        #expect(f.coordinator.engines.map(\.id) == [a], "the refused registrations did not replace the engine")

        let restarted = try f.reopen()
        #expect(code { try register(f, "a", by: thief, coordinator: restarted) } == .alreadyExists)
        #expect(restarted.engines.isEmpty)
        let again = try register(f, "a", by: f.engineCredential, coordinator: restarted)
        #expect(restarted.engine(id: again)?.owner == f.engineCredential)
        // The thief's own name is its own.
        _ = try register(f, "b", by: thief, coordinator: restarted)
        #expect(try f.store.engineBinding(named: "b")?.contributor == thief)
    }

    @Test("A heartbeat for an engine another credential registered is refused and renews nothing")
    func heartbeatForAnothersEngine() throws {
        let f = try Fixture()
        let other = try f.store.createContributor(displayName: "other engines", role: .engine).contributor.id
        let a = try register(f, "a", by: f.engineCredential)
        let job = try f.submit()
        let lease = try #require(try f.coordinator.dispatch(now: f.start).first).lease
        #expect(lease.engine == "a")
        let before = try f.store.job(job.id).leaseExpiresAt
        #expect(throws: CoordinatorError.refused(.permissionDenied, "engine \(a) was registered by another credential: heartbeat your own engines")) {
            try heartbeat(f, a, by: other, now: f.start.addingTimeInterval(2))
        }
        #expect(try f.store.job(job.id).leaseExpiresAt == before)
        #expect(f.coordinator.engine(id: a)?.lastHeartbeat == f.start)
        // The engine's own heartbeat renews it.
        try heartbeat(f, a, by: f.engineCredential, now: f.start.addingTimeInterval(2))
        #expect(try f.store.job(job.id).leaseExpiresAt == f.start.addingTimeInterval(5))
    }

    @Test("An operator may drain and resume any engine")
    func operatorDrains() throws {
        let f = try Fixture()
        let operatorID = try f.store.createContributor(displayName: "operator", role: .operator).contributor.id
        _ = try register(f, "a", by: f.engineCredential)
        #expect(try f.coordinator.drain(engine: "a", draining: true, by: operatorID, now: f.start).draining)
        #expect(try f.store.engineDrain(named: "a")?.drainedBy == operatorID)
        #expect(try f.coordinator.drain(engine: "a", draining: false, by: operatorID, now: f.start).draining == false)
    }

    /// A valid wire train spec with one field changed.
    static func train(_ change: (inout Wire.TrainSpec) -> Void) -> Wire.JobSpec {
        guard case .train(var spec) = CoordinatorRequestTests.trainSpec() else { fatalError("not a train spec") }
        change(&spec)
        return .train(spec)
    }

    @Test("Every job parameter out of bounds is refused at submit with invalid_argument naming the field, and nothing is written")
    func parameterBounds() throws {
        let f = try Fixture()
        let eventsBefore = try f.store.jobEvents()
        let cases: [(String, Wire.JobSpec)] = [
            ("rank", Self.train { $0.rank = 0 }),
            ("rank", Self.train { $0.rank = 1_000_000 }),
            ("alpha", Self.train { $0.alpha = .nan }),
            ("alpha", Self.train { $0.alpha = -1 }),
            ("targets", Self.train { $0.targets = ["q", "lm_head"] }),
            ("targets", Self.train { $0.targets = ["q", "q"] }),
            ("learning_rate", Self.train { $0.learningRate = .infinity }),
            ("learning_rate", Self.train { $0.learningRate = 0 }),
            ("steps", Self.train { $0.steps = 4_000_000_000 }),
            ("epochs", Self.train { $0.steps = 0; $0.epochs = 1_000_000 }),
            ("batch_size", Self.train { $0.batchSize = 0 }),
            ("batch_size", Self.train { $0.batchSize = 1 << 30 }),
            ("sequence_length", Self.train { $0.sequenceLength = 1 }),
            ("sequence_length", Self.train { $0.sequenceLength = 1 << 31 }),
            ("checkpoint_every", Self.train { $0.checkpointEvery = 4_000_000_000 }),
            ("adapter_name", Self.train { $0.adapterName = "" }),
            ("adapter_name", Self.train { $0.adapterName = String(repeating: "a", count: 201) }),
            ("adapter_name", Self.train { $0.adapterName = "bad\u{7}name" }),
            ("versions", Self.train { $0.versions = [] }),
            ("versions", Self.train { $0.versions = Array(repeating: Wire.VersionRef(datanet: 1, number: 1), count: 2) }),
            ("versions", Self.train { $0.versions = (1...65).map { Wire.VersionRef(datanet: 1, number: UInt32($0)) } }),
            ("base_model", Self.train { $0.baseModel = String(repeating: "m", count: 201) }),
            ("projection_dim", .index(Wire.IndexSpec(adapter: 1, method: .tracin, projectionDim: 1 << 30))),
        ]
        for (field, spec) in cases {
            do {
                _ = try f.coordinator.respond(to: .jobSubmit(Wire.JobSubmit(spec: spec)), contributor: f.submitter, now: f.start)
                Issue.record("\(field): an out-of-bounds job was queued")
            } catch CoordinatorError.refused(let code, let message) {
                #expect(code == .invalidArgument && message.hasPrefix("\(field): "), "\(field): \(message)")
            }
        }
        // Seeded: random ranks and batch sizes, refused exactly when out of bounds.
        var random = SplitMix(seed: 15)
        for _ in 0..<40 {
            let rank = UInt32(truncatingIfNeeded: random.next() % 3000)
            let batch = UInt32(truncatingIfNeeded: random.next() % 6000)
            let valid = JobLimits.rank.contains(Int(rank)) && JobLimits.batchSize.contains(Int(batch))
            let refused = code {
                try f.coordinator.respond(
                    to: .jobSubmit(Wire.JobSubmit(spec: Self.train { $0.rank = rank; $0.batchSize = batch })), contributor: f.submitter, now: f.start)
            }
            #expect(refused == (valid ? nil : .invalidArgument), "rank \(rank), batch \(batch)")
        }
        let queued = try f.store.jobs().count
        #expect(try f.store.jobEvents().count == eventsBefore.count + queued, "only the valid random jobs were written")
        #expect(try f.store.jobs().allSatisfy { job in
            guard case .train(let train)? = try? JobSpecification(decoding: job.specification) else { return false }
            return JobLimits.rank.contains(train.rank) && JobLimits.batchSize.contains(train.batchSize)
        })
    }

    @Test("A job whose attempts die with their engines is quarantined as failed after its last attempt, naming the engines")
    func quarantine() throws {
        let f = try Fixture()
        let job = try f.submit()
        var now = f.start
        var engines: [String] = []
        // Each attempt: an engine takes the job and dies on it (its lease lapses); the next engine takes the retry.
        for (attempt, name) in ["a", "b", "c"].enumerated() {
            _ = try f.coordinator.register(name: name, address: "\(name):1", computeSlots: 1, jobKinds: [.train], now: now)
            let started = try f.coordinator.dispatch(now: now)
            #expect(started.map(\.lease.attempt) == [attempt + 1] && started.map(\.engine.name) == [name])
            engines.append(name)
            now = now.addingTimeInterval(3.5)  // past the 3 s lease
            _ = try f.coordinator.dispatch(now: now)
            now = now.addingTimeInterval(60)  // past the backoff
        }
        let failed = try f.store.job(job.id)
        #expect(failed.state == .failed && failed.attempt == 3)
        #expect(failed.error == "failed 3 of 3 attempts (on engines a, b, c), not retried; the last: lost the heartbeat of engine c")
        _ = try f.coordinator.register(name: "d", address: "d:1", computeSlots: 1, jobKinds: [.train], now: now)
        #expect(try f.coordinator.dispatch(now: now).isEmpty, "a quarantined job is never leased again")
        let events = try f.coordinator.jobEvents(UInt64(job.id.rawValue), after: 0)
        #expect(events.map(\.kind) == [.queued, .started, .retrying, .started, .retrying, .started, .failed])
        #expect(events.last?.message.contains("not retried") == true)
    }

    @Test("An attempt that reports no progress is given up after the stall timeout, though its engine keeps beating")
    func stalledAttempt() throws {
        let f = try Fixture(policy: CoordinatorPolicy(heartbeatInterval: 1, missedHeartbeats: 3, retry: RetryPolicy(base: 1), attemptStallTimeout: 30))
        let a = try register(f, "a", by: f.engineCredential)
        let job = try f.submit()
        let lease = try #require(try f.coordinator.dispatch(now: f.start).first).lease
        // Progress at t=10 restarts the clock.
        try f.store.recordJobProgress(lease, detail: Data(#"{"step":1}"#.utf8), now: f.start.addingTimeInterval(10))
        for second in stride(from: 1, through: 39, by: 1) {
            let now = f.start.addingTimeInterval(Double(second))
            try heartbeat(f, a, by: f.engineCredential, now: now)
            _ = try f.coordinator.dispatch(now: now)
        }
        #expect(try f.store.job(job.id).state == .running, "30 s have not passed since the last progress")
        for second in 40...42 {
            let now = f.start.addingTimeInterval(Double(second))
            try heartbeat(f, a, by: f.engineCredential, now: now)
            _ = try f.coordinator.dispatch(now: now)
        }
        let retried = try f.store.job(job.id)
        #expect(retried.attempt == 2 && retried.state == .running, "given up at t=41, started again at t=42 after the 1 s backoff")
        let retrying = try #require(try f.coordinator.jobEvents(UInt64(job.id.rawValue), after: 0).first { $0.kind == .retrying })
        #expect(retrying.message == "attempt 1 failed: attempt 1 on engine a reported no progress for 30 s")
        #expect(throws: StoreError.staleJobLease(job: job.id, attempt: 1, engine: "a")) {
            try f.store.recordJobProgress(lease, detail: Data("{}".utf8))
        }
    }

    @Test("Job ids and sequence numbers of 2^63 and above are refused with invalid_argument naming the field")
    func largeIDs() throws {
        let f = try Fixture()
        for id in [UInt64(1) << 63, .max] {
            let refused = #expect(throws: RequestFailure.self) {
                try f.coordinator.respond(to: .jobStatus(Wire.JobStatus(job: id)), contributor: f.submitter)
            }
            #expect(refused?.code == .invalidArgument && refused?.message == "job \(id) is out of range (\(Int64.min) to \(Int64.max))")
            #expect(code { try f.coordinator.respond(to: .jobCancel(Wire.JobCancel(job: id)), contributor: f.submitter) } == .invalidArgument)
            #expect(code { try f.coordinator.authorizeWatch(job: id, after: 0, contributor: f.submitter) } == .invalidArgument)
            let job = try f.submit()
            #expect(code { try f.coordinator.authorizeWatch(job: UInt64(job.id.rawValue), after: id, contributor: f.submitter) } == .invalidArgument)
        }
    }

    @Test("A job shows to its submitter, an operator and the engine credential running it; others are refused")
    func jobVisibility() throws {
        let f = try Fixture()
        let stranger = try f.store.createContributor(displayName: "stranger").contributor.id
        let operatorID = try f.store.createContributor(displayName: "operator", role: .operator).contributor.id
        let otherEngines = try f.store.createContributor(displayName: "other engines", role: .engine).contributor.id
        _ = try register(f, "a", by: f.engineCredential)
        let job = try f.submit()
        _ = try f.coordinator.dispatch(now: f.start)
        let status = Message.jobStatus(Wire.JobStatus(job: UInt64(job.id.rawValue)))
        let table: [(ContributorID, ErrorCode?)] = [
            (f.submitter, nil), (operatorID, nil), (f.engineCredential, nil), (stranger, .permissionDenied), (otherEngines, .permissionDenied),
        ]
        for (who, expected) in table {
            #expect(code { try f.coordinator.respond(to: status, contributor: who) } == expected, "\(who)")
            #expect(code { try f.coordinator.authorizeWatch(job: UInt64(job.id.rawValue), after: 0, contributor: who) } == expected, "\(who)")
        }
        #expect(code { try f.coordinator.respond(to: status, contributor: nil) } == .unauthenticated)
        #expect(code { try f.coordinator.authorizeWatch(job: UInt64(job.id.rawValue), after: 0, contributor: nil) } == .unauthenticated)
        #expect(throws: StoreError.jobNotFound(JobID(999))) { try f.coordinator.authorizeWatch(job: 999, after: 0, contributor: f.submitter) }
    }
}

/// SplitMix64: seeded, so a failing case can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
