import Foundation
import Logging
import ProtocolServer
import Store
import Testing
import TributaryClient
import WireProtocol

@testable import Coordinator

/// The coordinator's protocol server on a loopback port over a fresh store, with its dispatch loop running.
struct ServedCoordinator {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("coordinator-server-\(UUID().uuidString)")
    let store: Store
    let server: CoordinatorServer
    let serving: Task<Void, any Error>
    let token: String

    init() async throws {
        store = try Store(directory: folder)
        let builder = try store.createContributor(displayName: "builder")
        token = builder.token
        try publishTrainingVersion(in: store, by: builder.contributor.id)
        var logger = Logger(label: "test.coordinator")
        logger.logLevel = .warning
        let coordinator = Coordinator(store: store, policy: CoordinatorPolicy(heartbeatInterval: 0.1, missedHeartbeats: 100))
        server = try await CoordinatorServer.bind(
            ServerConfiguration(host: "127.0.0.1", port: 0), coordinator: coordinator, eventPollInterval: .milliseconds(20),
            logger: logger)
        let server = server
        serving = Task { try await server.run() }
    }

    func connect(token: String? = nil, streamCredits: UInt32 = 64) async throws -> TributaryConnection {
        try await TributaryConnection.connect(host: "127.0.0.1", port: server.localPort, token: token ?? self.token, streamCredits: streamCredits)
    }

    func stop() async throws {
        server.shutdown()
        try await serving.value
        try? FileManager.default.removeItem(at: folder)
    }
}

@Suite("CoordinatorServer: the coordinator's requests over the wire")
struct CoordinatorServerTests {
    func events(_ job: UInt64, after: UInt64, on connection: TributaryConnection) async throws -> [Wire.JobEvent] {
        var events: [Wire.JobEvent] = []
        for try await reply in try await connection.stream(.jobEvents(Wire.JobEvents(job: job, afterSeq: after))) {
            guard case .jobEvent(let event) = reply else { throw CoordinatorError.invalidEngine("streamed \(reply.type)") }
            events.append(event)
        }
        return events
    }

    @Test("JobEvents follows the store to the final event, one credit at a time; a client resumes after a seq")
    func jobEventsFollowTheStore() async throws {
        let served = try await ServedCoordinator()
        let client = try await served.connect(streamCredits: 1)
        guard case .jobInfo(let info) = try await client.call(.jobSubmit(Wire.JobSubmit(spec: CoordinatorRequestTests.trainSpec()))) else {
            Issue.record("expected JobInfo")
            return
        }
        async let watched = events(info.job.id, after: 0, on: client)
        // An engine registers; the dispatch loop leases it the job; the attempt reports through the store.
        _ = try served.server.coordinator.register(name: "a", address: "127.0.0.1:9", computeSlots: 1, jobKinds: [.train])
        var lease: JobLease?
        while lease == nil {
            try await Task.sleep(for: .milliseconds(20))
            lease = try served.store.jobs(in: [.running]).first.map { JobLease(job: $0.id, attempt: $0.attempt, engine: "a") }
        }
        for step in 1...3 {
            try served.store.recordJobProgress(lease!, detail: Data(#"{"step":\#(step),"total_steps":3,"loss":0.5}"#.utf8))
            try await Task.sleep(for: .milliseconds(30))
        }
        _ = try served.store.completeJob(lease!, result: Data(#"{"adapter":1}"#.utf8))

        let all = try await watched
        #expect(all.map(\.kind) == [.queued, .started, .progress, .progress, .progress, .done])
        #expect(all.filter { $0.kind == .progress }.map(\.step) == [1, 2, 3])
        #expect(try await events(info.job.id, after: all[1].seq, on: client) == Array(all[2...]))
        #expect(try await events(info.job.id, after: all.last!.seq, on: client) == [all.last!], "resumed after the end: the final event again")
        await client.close()
        try await served.stop()
    }

    @Test("Engine requests are refused with failed_precondition; anonymous and unknown-engine requests say what to do")
    func refusals() async throws {
        let served = try await ServedCoordinator()
        let client = try await served.connect()
        do {
            _ = try await client.call(.adapterList(Wire.AdapterList(owner: nil)))
            Issue.record("the coordinator answered an engine's request")
        } catch let error as ServerError {
            #expect(error.errorCode == .failedPrecondition && error.message.contains("send it to an engine"))
        }
        let heartbeat = Message.engineHeartbeat(Wire.EngineHeartbeat(
            engine: 42, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: []))
        do {
            _ = try await client.call(heartbeat)
            Issue.record("a heartbeat from a contributor without an engine credential was accepted")
        } catch let error as ServerError {
            #expect(error.errorCode == .permissionDenied && error.message.contains("engine credential"))
        }
        let engine = try await served.connect(token: try served.store.createContributor(displayName: "engine", role: .engine).token)
        do {
            _ = try await engine.call(heartbeat)
            Issue.record("a heartbeat from an unknown engine was accepted")
        } catch let error as ServerError {
            #expect(error.errorCode == .notFound && error.message.contains("register again"))
        }
        await engine.close()
        let anonymous = try await served.connect(token: "")
        do {
            _ = try await anonymous.call(.jobSubmit(Wire.JobSubmit(spec: CoordinatorRequestTests.trainSpec())))
            Issue.record("an anonymous client submitted a job")
        } catch let error as ServerError {
            #expect(error.errorCode == .unauthenticated)
        }
        guard case .healthStatus(let health) = try await anonymous.call(.health(Wire.Health())),
            case .statsReport(let stats) = try await anonymous.call(.stats(Wire.Stats()))
        else {
            Issue.record("expected HealthStatus and StatsReport")
            return
        }
        #expect(health.state == .serving && health.serverVersion == CoordinatorServer.version)
        #expect(stats.jobsQueued == 0 && stats.jobsRunning == 0 && stats.connections == 2)
        #expect(try served.store.jobs().isEmpty)
        await client.close()
        await anonymous.close()
        try await served.stop()
    }
}
