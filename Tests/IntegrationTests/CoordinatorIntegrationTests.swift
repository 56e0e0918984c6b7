import Foundation
import Store
import Testing
import TributaryClient
import WireProtocol

/// The coordinator and its engines as separate processes on one data directory, driven by a client over the
/// wire. Serialized: each test trains on the machine's cores.
@Suite("Integration: a coordinator and engines as processes", .serialized)
struct CoordinatorIntegrationTests {
    @Test("A train job submitted to the coordinator runs on an engine, its events streaming to done; then its index job")
    func submitAndWatch() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            let client = try await cluster.connect()
            let job = try await cluster.submit(cluster.trainSpec(steps: 2, checkpointEvery: 1), on: client)
            #expect(job.state == .queued)

            let events = try await followEvents(of: job.id, on: client)
            #expect(events.map(\.kind) == [.queued, .started, .progress, .checkpoint, .progress, .checkpoint, .done], "\(cluster.logs)")
            #expect(events.map(\.seq) == events.map(\.seq).sorted() && Set(events.map(\.seq)).count == events.count)
            guard case .jobInfo(let info) = try await client.call(.jobStatus(Wire.JobStatus(job: job.id))) else {
                Issue.record("expected JobInfo")
                return
            }
            #expect(info.job.state == .done && info.job.engine == "engine-a" && info.job.step == 2)
            let adapter = try #require(info.job.adapter)
            #expect(try cluster.store.checkpoints(of: AdapterID(adapter)).map(\.step) == [1, 2])
            #expect(FileManager.default.fileExists(atPath: cluster.data.path + "/adapters/\(adapter)/adapter_model.safetensors"))

            // The same engine indexes the adapter it trained.
            let index = try await cluster.submit(.index(Wire.IndexSpec(adapter: adapter, method: .tracin, projectionDim: 0)), on: client)
            let indexed = try await followEvents(of: index.id, on: client)
            #expect(indexed.last?.kind == .done, "\(indexed.map(\.kind)) \(cluster.logs)")
            let location = try #require(try cluster.store.adapter(AdapterID(adapter)).gradientIndexLocation)
            #expect(location == cluster.data.path + "/adapters/\(adapter)/index")
            await client.close()
            #expect(await cluster.engines["engine-a"]!.stop() == 0, "an idle engine with an agent exits cleanly on SIGTERM")
        }
    }

    @Test("A drained engine is told so on its next heartbeat and leased no new job: it runs on the other engine")
    func drainedEngine() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            try await cluster.startEngine("engine-b")
            let client = try await cluster.connect()
            func engines() async throws -> [Wire.EngineEntry] {
                guard case .engineListing(let listing) = try await client.call(.engineList(Wire.EngineList())) else {
                    throw ProcessFailure("EngineList was not answered with EngineListing")
                }
                return listing.engines
            }
            try await waitUntil("both engines register", cluster) { try await engines().count == 2 }
            // The submitter's token may not drain the engines; their credential may.
            await #expect(throws: ServerError.self) { _ = try await client.call(.engineDrain(Wire.EngineDrain(name: "engine-a", drain: true))) }
            let operatorConnection = try await cluster.connect(token: cluster.engineToken)
            defer { Task { await operatorConnection.close() } }
            guard case .engineListing(let drained) = try await operatorConnection.call(.engineDrain(Wire.EngineDrain(name: "engine-a", drain: true))) else {
                Issue.record("EngineDrain was not answered with EngineListing")
                return
            }
            #expect(drained.engines.map(\.name) == ["engine-a"] && drained.engines.map(\.draining) == [true])
            try await waitUntil("engine-a hears it drains", cluster) {
                cluster.engines["engine-a"]!.log.contains("the coordinator leases this engine no more jobs")
            }

            let job = try await cluster.submit(cluster.trainSpec(steps: 1, checkpointEvery: 1), on: client)
            #expect(try await followEvents(of: job.id, on: client).last?.kind == .done, "\(cluster.logs)")
            #expect(try cluster.store.job(JobID(Int64(job.id))).engine == "engine-b")
            let draining = Dictionary(uniqueKeysWithValues: try await engines().map { ($0.name, $0.draining) })
            #expect(draining == ["engine-a": true, "engine-b": false])
            await client.close()
        }
    }

    @Test("An evaluation's retrains spread over both engines, and the gathering job reports every method's LDS")
    func evaluationFansOut() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            try await cluster.startEngine("engine-b")
            let client = try await cluster.connect()
            let train = try await cluster.submit(cluster.trainSpec(steps: 4, checkpointEvery: 2), on: client)
            #expect(try await followEvents(of: train.id, on: client).last?.kind == .done, "\(cluster.logs)")
            guard case .jobInfo(let trained) = try await client.call(.jobStatus(Wire.JobStatus(job: train.id))),
                let adapter = trained.job.adapter
            else {
                Issue.record("the train job has no adapter")
                return
            }

            // The training records are the queries too: this checks the fan-out, not the scores' quality.
            let version = Wire.VersionRef(datanet: cluster.version.datanet.rawValue, number: UInt32(cluster.version.number))
            let gather = try await cluster.submit(.evaluate(Wire.EvaluateSpec(adapter: adapter, version: version)), on: client)
            let events = try await followEvents(of: gather.id, on: client)
            #expect(events.last?.kind == .done, "\(events.map(\.message)) \(cluster.logs)")
            #expect(events.last?.message.hasPrefix("LDS over 8 retrains, 6 queries: ") == true, "\(events.last?.message ?? "")")
            let retrains = try cluster.store.jobs().filter { $0.id.rawValue > Int64(train.id) && $0.id.rawValue < Int64(gather.id) }
            #expect(retrains.count == 8 && retrains.allSatisfy { $0.state == .succeeded && $0.kind == .train })
            #expect(Set(retrains.compactMap(\.engine)) == ["engine-a", "engine-b"], "the retrains ran on both engines")
            let gatherStarted = try cluster.store.jobEvents(of: JobID(Int64(gather.id))).first { $0.kind == .started }?.createdAt
            let retrainsEnded = try retrains.map { try cluster.store.jobEvents(of: $0.id).last?.createdAt ?? .distantFuture }
            #expect(gatherStarted.map { start in retrainsEnded.allSatisfy { $0 <= start } } == true,
                "the gathering job started after every retrain ended")
            await client.close()
        }
    }

    @Test("An engine killed after its first checkpoint: the job is retried on the other engine from that checkpoint")
    func engineKilledMidTraining() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            try await cluster.startEngine("engine-b")
            let client = try await cluster.connect()
            // Enough steps after the first checkpoint that the kill lands mid-training even on a busy machine (a step
            // takes ~70 ms in debug; the events reach this client up to a poll interval later).
            let job = try await cluster.submit(cluster.trainSpec(steps: 40, checkpointEvery: 2), on: client)

            var killed: String?
            let events = try await followEvents(of: job.id, on: client) { event in
                guard event.kind == .checkpoint, killed == nil else { return }
                let running = try cluster.store.job(JobID(Int64(job.id)))
                let name = try #require(running.engine)
                killed = name
                await cluster.engines[name]?.kill()
            }
            let victim = try #require(killed, "\(cluster.logs)")
            let kinds = events.map(\.kind)
            #expect(kinds.last == .done, "\(kinds) \(cluster.logs)")
            #expect(kinds.contains(.retrying))
            let finished = try cluster.store.job(JobID(Int64(job.id)))
            #expect(finished.state == .succeeded && finished.attempt == 2 && finished.engine != victim, "\(cluster.logs)")
            // The second attempt resumed after the last checkpoint the first one recorded.
            let retry = try #require(events.lastIndex { $0.kind == .started })
            let lastCheckpoint = try #require(events[..<retry].last { $0.kind == .checkpoint }).step
            let resumedAt = try #require(events[retry...].first { $0.kind == .progress }).step
            #expect(lastCheckpoint >= 2 && resumedAt == lastCheckpoint + 1)
            #expect(events[retry...].filter { $0.kind == .progress }.map(\.step) == Array((lastCheckpoint + 1)...40))
            await client.close()
        }
    }

    @Test("A running job cancelled through the coordinator stops on its engine before its next step")
    func cancelRunningJob() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            let client = try await cluster.connect()
            let job = try await cluster.submit(cluster.trainSpec(steps: 40, checkpointEvery: 0), on: client)
            var cancelled = false
            let events = try await followEvents(of: job.id, on: client) { event in
                guard event.kind == .progress, !cancelled else { return }
                cancelled = true
                guard case .jobInfo = try await client.call(.jobCancel(Wire.JobCancel(job: job.id))) else {
                    throw ProcessFailure("JobCancel was not answered with JobInfo")
                }
            }
            let kinds = events.map(\.kind)
            #expect(kinds.last == .cancelled && kinds.contains(.cancelling), "\(kinds) \(cluster.logs)")
            let stopped = try cluster.store.job(JobID(Int64(job.id)))
            #expect(stopped.state == .cancelled)
            #expect(events.filter { $0.kind == .progress }.count < 40, "the attempt stopped before its last step")
            await client.close()
        }
    }

    @Test("A coordinator restarted on the same directory finds its queue intact and finishes the job")
    func coordinatorRestart() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            let port = cluster.coordinatorPort
            try await cluster.startEngine("engine-a")
            var client = try await cluster.connect()
            let job = try await cluster.submit(cluster.trainSpec(steps: 40, checkpointEvery: 2), on: client)
            // Watch until the first step, then restart the coordinator mid-job.
            var seen: UInt64 = 0
            do {
                _ = try await followEvents(of: job.id, on: client) { event in
                    seen = event.seq
                    if event.kind == .progress { throw ProcessFailure("restart now") }
                }
            } catch is ProcessFailure {}
            #expect(await cluster.coordinator!.stop() == 0, "the coordinator drains and exits cleanly on SIGTERM")
            let before = try cluster.store.job(JobID(Int64(job.id)))
            #expect(!before.state.isFinal)

            try await cluster.startCoordinator(port: port)
            client = try await cluster.connect()
            guard case .jobInfo(let info) = try await client.call(.jobStatus(Wire.JobStatus(job: job.id))) else {
                Issue.record("expected JobInfo")
                return
            }
            #expect(info.job.id == job.id && info.job.kind == .train)
            let rest = try await followEvents(of: job.id, after: seen, on: client)
            #expect(rest.first.map { $0.seq > seen } ?? false)
            #expect(rest.last?.kind == .done, "\(rest.map(\.kind)) \(cluster.logs)")
            #expect(try cluster.store.job(JobID(Int64(job.id))).state == .succeeded)
            await client.close()
        }
    }

    @Test("A client or engine with a wrong token is refused at the handshake, and the store is unchanged")
    func wrongTokenRefused() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            let jobsBefore = try cluster.store.jobs()
            let eventsBefore = try cluster.store.jobEvents()
            do {
                let connection = try await cluster.connect(token: "trb_not-a-token")
                Issue.record("connected with a wrong token as contributor \(String(describing: connection.welcome.contributor))")
            } catch let error as ServerError {
                #expect(error.errorCode == .unauthenticated, "\(error)")
            }
            // Anonymous connections may read but not submit.
            let anonymous = try await cluster.connect(token: "")
            await #expect(throws: ServerError.self) {
                _ = try await cluster.submit(cluster.trainSpec(steps: 1, checkpointEvery: 0), on: anonymous)
            }
            await anonymous.close()
            // An engine with a wrong token stops with the coordinator's refusal instead of retrying forever.
            try await cluster.startEngine("engine-a", token: "trb_not-a-token")
            let engine = try #require(cluster.engines["engine-a"])
            #expect(await engine.waitForExit() != 0)
            #expect(engine.log.contains("refused this engine (check --token or TRIBUTARY_TOKEN): error 200"), "\(engine.log)")
            #expect(try cluster.store.jobs() == jobsBefore && cluster.store.jobEvents() == eventsBefore)
        }
    }
}

extension CoordinatorIntegrationTests {
    @Test("An engine with a plain contributor's token stops with permission_denied; a u64 job id of 2^63 is refused and the coordinator stays up")
    func untrustedCallers() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            let client = try await cluster.connect()
            do {
                _ = try await client.call(.jobStatus(Wire.JobStatus(job: 1 << 63)))
                Issue.record("JobStatus of job 2^63 was answered")
            } catch let error as ServerError {
                #expect(error.errorCode == .invalidArgument && error.message.hasPrefix("job 9223372036854775808 is out of range"), "\(error)")
            }
            try await cluster.startEngine("engine-a", token: cluster.token)
            let engine = try #require(cluster.engines["engine-a"])
            #expect(await engine.waitForExit() != 0)
            #expect(engine.log.contains("refused this engine (check --token or TRIBUTARY_TOKEN): error 201"), "\(engine.log)")
            guard case .healthStatus(let health) = try await client.call(.health(Wire.Health())) else {
                Issue.record("expected HealthStatus")
                return
            }
            #expect(health.state == .serving && cluster.coordinator!.process.isRunning)
            #expect(try cluster.store.engineBinding(named: "engine-a") == nil)
            await client.close()
        }
    }
}

extension CoordinatorIntegrationTests {
    @Test("An engine restarted under its name gives up the attempt its killed process left, which counts as an attempt")
    func restartedEngineGivesUpItsOrphan() async throws {
        try await withCluster { cluster in
            // Leases of 30 heartbeats (9 s): the restarted engine is up long before the killed one's lease lapses.
            try await cluster.startCoordinator(missedHeartbeats: 30)
            try await cluster.startEngine("engine-a")
            let client = try await cluster.connect()
            let job = try await cluster.submit(cluster.trainSpec(steps: 30, checkpointEvery: 0), on: client)
            var restarted = false
            let events = try await followEvents(of: job.id, on: client) { event in
                guard event.kind == .progress, !restarted else { return }
                restarted = true
                // Killed mid-attempt and started again at once: its lease has not lapsed, and the new process's
                // heartbeats would renew it.
                await cluster.engines["engine-a"]?.kill()
                try await cluster.startEngine("engine-a")
            }
            let retry = try #require(events.first { $0.kind == .retrying }, "\(events.map(\.kind)) \(cluster.logs)")
            #expect(retry.message == "attempt 1 failed: engine engine-a restarted during this attempt (it may have crashed on it)")
            #expect(events.last?.kind == .done, "\(events.map(\.kind)) \(cluster.logs)")
            let finished = try cluster.store.job(JobID(Int64(job.id)))
            #expect(finished.state == .succeeded && finished.attempt == 2)
            await client.close()
        }
    }
}

/// Polls `condition` every 50 ms for up to 20 s.
func waitUntil(_ what: String, _ cluster: Cluster, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(20)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw ProcessFailure("timed out waiting until \(what): \(cluster.logs)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}
