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
    /// An engine credential's token (role `engine`).
    let engineToken: String

    init(watchers: WatcherLimits = WatcherLimits()) async throws {
        store = try Store(directory: folder)
        let builder = try store.createContributor(displayName: "builder")
        token = builder.token
        engineToken = try store.createContributor(displayName: "engines", role: .engine).token
        try publishTrainingVersion(in: store, by: builder.contributor.id)
        var logger = Logger(label: "test.coordinator")
        logger.logLevel = .warning
        // Leases last 10 minutes: the in-process engines here never heartbeat, and a loaded CI host must not reclaim their attempts.
        let coordinator = Coordinator(store: store, policy: CoordinatorPolicy(heartbeatInterval: 0.1, missedHeartbeats: 6000))
        server = try await CoordinatorServer.bind(
            ServerConfiguration(host: "127.0.0.1", port: 0), coordinator: coordinator, eventPollInterval: .milliseconds(20),
            watchers: watchers, logger: logger)
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
        let engines = try await served.connect(token: served.engineToken)
        do {
            _ = try await engines.call(.engineHeartbeat(Wire.EngineHeartbeat(
                engine: 42, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: [])))
            Issue.record("a heartbeat from an unknown engine was accepted")
        } catch let error as ServerError {
            #expect(error.errorCode == .notFound && error.message.contains("register again"))
        }
        await engines.close()
        await client.close()
        await anonymous.close()
        try await served.stop()
    }
}

@Suite("CoordinatorServer trust: job events from one feed, watcher limits, tokens, ids", .serialized)
struct CoordinatorServerTrustTests {
    /// Submits a train job as the builder and returns its id.
    func submit(on client: TributaryConnection) async throws -> UInt64 {
        guard case .jobInfo(let info) = try await client.call(.jobSubmit(Wire.JobSubmit(spec: CoordinatorRequestTests.trainSpec()))) else {
            throw CoordinatorError.invalidEngine("JobSubmit was not answered with JobInfo")
        }
        return info.job.id
    }

    func errorCode(_ body: () async throws -> Void) async -> ErrorCode? {
        do {
            try await body()
            return nil
        } catch let error as ServerError {
            return error.errorCode
        } catch {
            return .internal
        }
    }

    /// Opens a JobEvents stream and reads its first reply: the stream, or the server's refusal.
    func openWatch(_ job: UInt64, on connection: TributaryConnection) async throws -> (ReplyStream.AsyncIterator, Message?) {
        let stream = try await connection.stream(.jobEvents(Wire.JobEvents(job: job, afterSeq: 0)))
        var iterator = stream.makeAsyncIterator()
        return (iterator, try await iterator.next())
    }

    func waitUntil(_ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try !condition() {
            guard ContinuousClock.now < deadline else { throw CoordinatorError.invalidEngine("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test("JobEvents and JobStatus need a token; ids of 2^63 and more are refused with invalid_argument, and the coordinator stays up")
    func anonymousAndLargeIDs() async throws {
        let served = try await ServedCoordinator()
        let client = try await served.connect()
        let job = try await submit(on: client)
        let anonymous = try await served.connect(token: "")
        #expect(await errorCode { _ = try await anonymous.call(.jobStatus(Wire.JobStatus(job: job))) } == .unauthenticated)
        #expect(await errorCode { _ = try await anonymous.call(.jobEvents(Wire.JobEvents(job: job, afterSeq: 0))) } == .unauthenticated)
        #expect(await errorCode { _ = try await anonymous.call(.engineList(Wire.EngineList())) } == .unauthenticated)
        #expect(served.server.eventFeed.subscriberCount == 0)

        for id in [UInt64(1) << 63, (UInt64(1) << 63) + 1, .max] {
            for request in [Message.jobStatus(Wire.JobStatus(job: id)), .jobCancel(Wire.JobCancel(job: id)), .jobEvents(Wire.JobEvents(job: id, afterSeq: 0))] {
                do {
                    _ = try await client.call(request)
                    Issue.record("\(request.type) of job \(id) was answered")
                } catch let error as ServerError {
                    #expect(error.errorCode == .invalidArgument && error.message.hasPrefix("job \(id) is out of range"), "\(error)")
                }
            }
            #expect(await errorCode { _ = try await client.call(.jobEvents(Wire.JobEvents(job: job, afterSeq: id))) } == .invalidArgument)
        }
        guard case .healthStatus(let health) = try await client.call(.health(Wire.Health())),
            case .jobInfo(let info) = try await client.call(.jobStatus(Wire.JobStatus(job: job)))
        else {
            Issue.record("the coordinator stopped answering")
            return
        }
        #expect(health.state == .serving && info.job.id == job)
        await anonymous.close()
        await client.close()
        try await served.stop()
    }

    @Test("Many watchers of one job share the coordinator's one event feed: one store read per tick, whatever their number")
    func watchersShareOneFeed() async throws {
        let served = try await ServedCoordinator(watchers: WatcherLimits(perConnection: 16, perContributor: 64))
        let feed = served.server.eventFeed
        let client = try await served.connect()
        let job = try await submit(on: client)
        _ = try served.server.coordinator.register(name: "a", address: "127.0.0.1:9", computeSlots: 1, jobKinds: [.train])
        try await waitUntil("the job is leased") { try served.store.job(JobID(Int64(job))).state == .running }
        let lease = try #require(try served.store.jobs(in: [.running]).first.map { JobLease(job: $0.id, attempt: $0.attempt, engine: "a") })

        let watchers = 48
        let connections = try await (0..<4).asyncMap { _ in try await served.connect() }
        let before = (ticks: feed.ticks, reads: feed.storeReads)
        let received = try await withThrowingTaskGroup(of: [Wire.JobEvent].self) { group in
            for index in 0..<watchers {
                let connection = connections[index % connections.count]
                group.addTask {
                    var events: [Wire.JobEvent] = []
                    for try await reply in try await connection.stream(.jobEvents(Wire.JobEvents(job: job, afterSeq: 0))) {
                        guard case .jobEvent(let event) = reply else { throw CoordinatorError.invalidEngine("streamed \(reply.type)") }
                        events.append(event)
                    }
                    return events
                }
            }
            try await waitUntil("every watcher subscribed") { feed.subscriberCount == watchers }
            // Ten ticks with nothing new, then the attempt reports and ends.
            let quiet = feed.ticks
            try await waitUntil("ten ticks pass") { feed.ticks >= quiet + 10 }
            for step in 1...3 {
                try served.store.recordJobProgress(lease, detail: Data(#"{"step":\#(step),"total_steps":3,"loss":0.5}"#.utf8))
                try await Task.sleep(for: .milliseconds(30))
            }
            _ = try served.store.completeJob(lease, result: Data(#"{"adapter":1}"#.utf8))
            var all: [[Wire.JobEvent]] = []
            for try await events in group { all.append(events) }
            return all
        }
        let after = (ticks: feed.ticks, reads: feed.storeReads)
        #expect(received.count == watchers)
        #expect(received.allSatisfy { $0.map(\.kind) == [.queued, .started, .progress, .progress, .progress, .done] })
        // One read per tick, plus each watcher's backlog read when it opened (a tick may be caught half done).
        let extra = (after.reads - before.reads) - (after.ticks - before.ticks)
        #expect(abs(extra - watchers) <= 1, "\(after.reads - before.reads) reads over \(after.ticks - before.ticks) ticks for \(watchers) watchers")
        #expect(after.ticks - before.ticks >= 10)
        try await waitUntil("the finished streams unsubscribed") { feed.subscriberCount == 0 }
        for connection in connections { await connection.close() }
        await client.close()
        try await served.stop()
    }

    @Test("Watchers are capped per connection and per contributor with too_many_requests; a closed stream frees its place")
    func watcherLimits() async throws {
        let served = try await ServedCoordinator(watchers: WatcherLimits(perConnection: 2, perContributor: 3))
        let feed = served.server.eventFeed
        let client = try await served.connect()
        let job = try await submit(on: client)
        let first = try await served.connect()
        let second = try await served.connect()
        var open: [ReplyStream.AsyncIterator] = []
        for _ in 0..<2 {
            let (iterator, reply) = try await openWatch(job, on: first)
            guard case .jobEvent(let event)? = reply else { Issue.record("expected the queued event"); return }
            #expect(event.kind == .queued)
            open.append(iterator)
        }
        do {
            _ = try await openWatch(job, on: first)
            Issue.record("a third watcher on one connection was accepted")
        } catch let error as ServerError {
            #expect(error.errorCode == .tooManyRequests && error.retryAfterMs > 0 && error.message.contains("on this connection"), "\(error)")
        }
        let (third, reply) = try await openWatch(job, on: second)
        #expect(reply.map { if case .jobEvent = $0 { true } else { false } } == true)
        open.append(third)
        do {
            _ = try await openWatch(job, on: second)
            Issue.record("a fourth watcher of one contributor was accepted")
        } catch let error as ServerError {
            #expect(error.errorCode == .tooManyRequests && error.message.contains("already has 3 JobEvents streams open"), "\(error)")
        }
        #expect(feed.subscriberCount == 3)
        // Closing the first connection ends its two streams; their places come free.
        await first.close()
        try await waitUntil("the closed connection's streams unsubscribed") { feed.subscriberCount == 1 }
        let (_, again) = try await openWatch(job, on: second)
        #expect(again.map { if case .jobEvent = $0 { true } else { false } } == true)
        #expect(feed.subscriberCount == 2)
        _ = open
        await second.close()
        await client.close()
        try await served.stop()
    }

    @Test("A plain contributor's token cannot register or heartbeat an engine over the wire; an engine credential can")
    func engineCredentialsOverTheWire() async throws {
        let served = try await ServedCoordinator()
        let client = try await served.connect()
        let register = Message.engineRegister(Wire.EngineRegister(
            name: "engine-a", address: "127.0.0.1:9", computeSlots: 1, memoryBytes: 0, maxAdapters: 0, jobKinds: [.train]))
        #expect(await errorCode { _ = try await client.call(register) } == .permissionDenied)
        #expect(served.server.coordinator.engines.isEmpty)
        let engines = try await served.connect(token: served.engineToken)
        guard case .engineRegistered(let registered) = try await engines.call(register) else {
            Issue.record("expected EngineRegistered")
            return
        }
        let beat = Message.engineHeartbeat(Wire.EngineHeartbeat(
            engine: registered.engine, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: []))
        #expect(await errorCode { _ = try await client.call(beat) } == .permissionDenied)
        #expect(await errorCode { _ = try await client.call(.engineDrain(Wire.EngineDrain(name: "engine-a", drain: true))) } == .permissionDenied)
        #expect(await errorCode { _ = try await engines.call(beat) } == nil)
        await engines.close()
        await client.close()
        try await served.stop()
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
