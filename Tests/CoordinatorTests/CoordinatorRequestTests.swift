import Foundation
import ProtocolServer
import Serving
import Store
import Testing
import WireProtocol

@testable import Coordinator

@Suite("Coordinator requests: jobs and engines over the catalogue's messages")
struct CoordinatorRequestTests {
    static func trainSpec(steps: UInt32 = 4, epochs: UInt32 = 0) -> Wire.JobSpec {
        .train(Wire.TrainSpec(
            adapterName: "recipes-lora", baseModel: "tributary-base", versions: [Wire.VersionRef(datanet: 1, number: 1)], rank: 4,
            alpha: 8, targets: ["q", "v"], learningRate: 1e-3, steps: steps, epochs: epochs, batchSize: 2, sequenceLength: 128,
            seed: 3, checkpointEvery: 2))
    }

    @Test("A submitted job is queued with its specification, dispatched, and its events and status follow its progress")
    func submitDispatchWatch() throws {
        let f = try Fixture()
        let reply = try f.coordinator.respond(to: .jobSubmit(Wire.JobSubmit(spec: Self.trainSpec())), contributor: f.submitter, now: f.start)
        guard case .jobInfo(let info) = reply else { Issue.record("expected JOB_INFO, got \(reply.type)"); return }
        #expect(info.job.state == .queued && info.job.kind == .train)
        let stored = try f.store.job(JobID(Int64(info.job.id)))
        guard case .train(let train) = try JobSpecification(decoding: stored.specification) else { Issue.record("not a train job"); return }
        #expect(train.versions == [DatanetVersionRef(datanet: DatanetID(1), number: 1)] && train.steps == 4 && train.targets == ["q", "v"])

        let registered = try f.coordinator.respond(
            to: .engineRegister(Wire.EngineRegister(name: "a", address: "127.0.0.1:9", computeSlots: 1, memoryBytes: 1 << 30, maxAdapters: 4, jobKinds: [.train])),
            contributor: f.engineCredential, now: f.start)
        guard case .engineRegistered(let engine) = registered else { Issue.record("expected ENGINE_REGISTERED"); return }
        #expect(engine.heartbeatIntervalMs == 1000)
        let lease = try #require(try f.coordinator.dispatch(now: f.start).first).lease
        try f.store.recordJobProgress(lease, detail: Data(#"{"step":1,"total_steps":4,"loss":0.5}"#.utf8), now: f.start)

        let events = try f.coordinator.jobEvents(info.job.id, after: 0)
        #expect(events.map(\.kind) == [.queued, .started, .progress])
        #expect(events.last?.step == 1 && events.last?.loss == 0.5)
        #expect(try f.coordinator.jobEvents(info.job.id, after: events[1].seq).count == 1)
        guard case .jobInfo(let status) = try f.coordinator.respond(to: .jobStatus(Wire.JobStatus(job: info.job.id)), contributor: f.submitter) else {
            Issue.record("expected JOB_INFO"); return
        }
        #expect(status.job.state == .running && status.job.step == 1 && status.job.totalSteps == 4 && status.job.engine == "a")

        _ = try f.coordinator.respond(to: .jobCancel(Wire.JobCancel(job: info.job.id)), contributor: f.submitter, now: f.start)
        #expect(try f.coordinator.jobEvents(info.job.id, after: 0).last?.kind == .cancelling)
    }

    @Test("Anonymous and malformed requests are refused with their code, and nothing changes")
    func refusals() throws {
        let f = try Fixture()
        let anonymous = #expect(throws: RequestFailure.self) {
            try f.coordinator.respond(to: .jobSubmit(Wire.JobSubmit(spec: Self.trainSpec())), contributor: nil)
        }
        #expect(anonymous?.code == .unauthenticated)
        #expect(throws: CoordinatorError.refused(.invalidArgument, "steps, epochs: give exactly one of them (the other 0)")) {
            try f.coordinator.respond(to: .jobSubmit(Wire.JobSubmit(spec: Self.trainSpec(steps: 4, epochs: 1))), contributor: f.submitter)
        }
        #expect(throws: StoreError.versionNotFound(DatanetVersionRef(datanet: DatanetID(1), number: 9))) {
            var spec = Self.trainSpec()
            if case .train(var train) = spec { train.versions = [Wire.VersionRef(datanet: 1, number: 9)]; spec = .train(train) }
            return try f.coordinator.respond(to: .jobSubmit(Wire.JobSubmit(spec: spec)), contributor: f.submitter)
        }
        #expect(throws: StoreError.adapterNotFound(AdapterID(5))) {
            try f.coordinator.respond(to: .jobSubmit(Wire.JobSubmit(spec: .index(Wire.IndexSpec(adapter: 5, method: .datainf, projectionDim: 0)))), contributor: f.submitter)
        }
        #expect(throws: CoordinatorError.unknownEngine(7)) {
            try f.coordinator.respond(
                to: .engineHeartbeat(Wire.EngineHeartbeat(engine: 7, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: [])),
                contributor: f.engineCredential)
        }
        #expect(try f.store.jobs().isEmpty)
        #expect(f.coordinator.engines.isEmpty)
    }

    @Test("An engine's owner drains it: it is leased no more jobs, its heartbeats say drain, and resuming takes it back")
    func drainAndResume() throws {
        let f = try Fixture()
        let stranger = try f.store.createContributor(displayName: "stranger").contributor.id
        func register(_ name: String) throws -> UInt64 {
            let reply = try f.coordinator.respond(
                to: .engineRegister(Wire.EngineRegister(name: name, address: "\(name):1", computeSlots: 2, memoryBytes: 0, maxAdapters: 0, jobKinds: [.train, .index])),
                contributor: f.engineCredential, now: f.start)
            guard case .engineRegistered(let engine) = reply else { throw CoordinatorError.invalidEngine("not registered") }
            return engine.engine
        }
        func drainOnHeartbeat(_ engine: UInt64) throws -> Bool? {
            let beat = Wire.EngineHeartbeat(engine: engine, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: [])
            guard case .heartbeatAck(let ack) = try f.coordinator.respond(to: .engineHeartbeat(beat), contributor: f.engineCredential, now: f.start) else { return nil }
            return ack.drain
        }
        func drain(_ name: String, _ draining: Bool, by contributor: ContributorID?) throws -> Wire.EngineEntry? {
            guard case .engineListing(let listing) = try f.coordinator.respond(
                to: .engineDrain(Wire.EngineDrain(name: name, drain: draining)), contributor: contributor, now: f.start)
            else { return nil }
            return listing.engines.count == 1 ? listing.engines[0] : nil
        }
        let a = try register("a")
        _ = try register("b")
        let running = try f.submit()
        #expect(try f.coordinator.dispatch(now: f.start).map(\.engine.name) == ["a"])
        #expect(try drainOnHeartbeat(a) == false)

        #expect((#expect(throws: RequestFailure.self) { try drain("a", true, by: stranger) })?.code == .permissionDenied)
        let otherEngines = try f.store.createContributor(displayName: "other engines", role: .engine).contributor.id
        #expect(throws: CoordinatorError.refused(.permissionDenied, "only the credential that registered engine a, or an operator, may drain it")) {
            try drain("a", true, by: otherEngines)
        }
        #expect(throws: CoordinatorError.refused(.notFound, "no engine named c is registered")) { try drain("c", true, by: f.engineCredential) }
        #expect((#expect(throws: RequestFailure.self) { try drain("a", true, by: nil) })?.code == .unauthenticated)
        #expect(try drainOnHeartbeat(a) == false)

        let drained = try #require(try drain("a", true, by: f.engineCredential))
        #expect(drained.name == "a" && drained.draining && drained.jobsRunning == 1 && drained.computeSlots == 2)
        #expect(drained.owner == f.engineCredential.rawValue && drained.jobKinds == [.train, .index] && drained.address == "a:1")
        #expect(try drainOnHeartbeat(a) == true)
        // a has a free slot and is the least loaded no more: new jobs go to b; a keeps its running attempt.
        let next = try (0..<2).map { _ in try f.submit() }
        #expect(try f.coordinator.dispatch(now: f.start).map(\.engine.name) == ["b", "b"])
        #expect(try f.store.job(running.id).engine == "a")
        #expect(try next.map { try f.store.job($0.id).engine } == ["b", "b"])

        // Registering again (a restart) keeps the drain.
        let again = try register("a")
        #expect(again != a)
        #expect(try drainOnHeartbeat(again) == true)
        guard case .engineListing(let listing) = try f.coordinator.respond(to: .engineList(Wire.EngineList()), contributor: stranger, now: f.start.addingTimeInterval(0.5)) else {
            Issue.record("expected ENGINE_LISTING"); return
        }
        #expect(listing.engines.map(\.name) == ["b", "a"] && listing.engines.map(\.draining) == [false, true])
        #expect(listing.engines.map(\.jobsRunning) == [2, 1] && listing.engines.allSatisfy { $0.heartbeatAgeMs == 500 })

        #expect(try drain("a", false, by: f.engineCredential)?.draining == false)
        #expect(try drainOnHeartbeat(again) == false)
        let last = try f.submit()
        #expect(try f.coordinator.dispatch(now: f.start).map(\.lease.job) == [last.id])
        #expect(try f.store.job(last.id).engine == "a")
    }

    @Test("A drain is stored: it holds when the engine is dropped for silence and registers again, and across a coordinator restart")
    func drainOutlastsSilenceAndRestart() throws {
        let f = try Fixture()
        func register(_ coordinator: Coordinator, now: Date) throws -> RegisteredEngine {
            try coordinator.register(name: "a", address: "a:1", computeSlots: 1, jobKinds: [.train], owner: f.engineCredential, now: now)
        }
        _ = try register(f.coordinator, now: f.start)
        _ = try f.coordinator.drain(engine: "a", draining: true, by: f.engineCredential, now: f.start)
        let stored = try #require(try f.store.engineDrain(named: "a"))
        #expect(stored.drainedBy == f.engineCredential && stored.drainedAt == f.start)

        // Silent past its lease: dropped from the registry; it comes back still draining.
        let later = f.start.addingTimeInterval(10)
        _ = try f.submit()
        #expect(try f.coordinator.dispatch(now: later).isEmpty && f.coordinator.engines.isEmpty)
        #expect(try register(f.coordinator, now: later).draining)
        #expect(try f.coordinator.dispatch(now: later).isEmpty)

        // A restarted coordinator reads the drain from the store.
        let restarted = try f.reopen()
        #expect(try register(restarted, now: later).draining)
        #expect(try restarted.dispatch(now: later).isEmpty)
        #expect(try restarted.drain(engine: "a", draining: false, by: f.engineCredential, now: later).draining == false)
        #expect(try f.store.engineDrain(named: "a") == nil)
        #expect(try restarted.dispatch(now: later).map(\.engine.name) == ["a"])
        #expect(try f.reopen().register(name: "a", address: "a:1", computeSlots: 1, jobKinds: [.train], now: later).draining == false)
    }
}
