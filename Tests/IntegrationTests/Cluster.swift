import Foundation
import SampleCorpus
import Store
import TributaryClient
import WireProtocol

/// The committed built-in base model.
let baseModelFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../models/tributary-base").standardized.path

/// A shared data directory with a contributor and a published datanet of sample recipes, a coordinator and
/// engines on it, as separate processes.
final class Cluster: @unchecked Sendable {
    static let heartbeatSeconds = "0.3"

    let data: URL
    let store: Store
    let token: String
    /// The engines' credential (role `engine`): engines register and heartbeat with it, and drain their own.
    let engineToken: String
    let contributor: ContributorID
    let version: DatanetVersionRef
    /// The texts of the datanet's records, in contribution order.
    let recordTexts: [String]
    var coordinator: ServerProcess?
    var engines: [String: ServerProcess] = [:]

    init(records: Int = 6) throws {
        data = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-\(UUID().uuidString)")
        store = try Store(directory: data)
        let owner = try store.createContributor(displayName: "recipe writer")
        token = owner.token
        engineToken = try store.createContributor(displayName: "engines", role: .engine).token
        contributor = owner.contributor.id
        let datanet = try store.createDatanet(NewDatanet(name: "recipes", license: "CC-BY-4.0"), owner: contributor)
        let samples = SampleCorpus(seed: 3).records(.recipes, count: records, contributor: "\(contributor)", maxBytes: 60)
        for record in samples {
            let stored = try store.contribute(.text(bytes: Array(record.text.utf8)), to: datanet.id, by: contributor)
            _ = try store.review(stored.id, by: contributor, .approve)
        }
        recordTexts = samples.map(\.text)
        version = try store.publishVersion(of: datanet.id, by: contributor).ref
    }

    /// Starts the coordinator (on `port`, or any free one).
    func startCoordinator(port: Int = 0, missedHeartbeats: Int = 3) async throws {
        coordinator = try await ServerProcess(
            "tributary-coordinator",
            ["--port", "\(port)", "--json", "--data", data.path, "--heartbeat-seconds", Self.heartbeatSeconds, "--missed-heartbeats", "\(missedHeartbeats)", "--handshake-seconds", "600"])
    }

    var coordinatorPort: Int { coordinator?.port ?? 0 }

    func startEngine(_ name: String, token: String? = nil) async throws {
        engines[name] = try await ServerProcess(
            "tributary-engine",
            [
                "serve", "--port", "0", "--json", "--data", data.path, "--model", baseModelFolder, "--compute-threads", "1",
                "--coordinator", "127.0.0.1:\(coordinatorPort)", "--name", name, "--handshake-seconds", "600",
            ],
            environment: ["TRIBUTARY_TOKEN": token ?? engineToken, "OPENBLAS_NUM_THREADS": "1"])
    }

    func connect(token: String? = nil) async throws -> TributaryConnection {
        try await TributaryConnection.connect(host: "127.0.0.1", port: coordinatorPort, token: token ?? self.token)
    }

    /// A small training job on the recipes: `steps` steps of batch 2, short sequences.
    func trainSpec(steps: UInt32, checkpointEvery: UInt32) -> Wire.JobSpec {
        .train(Wire.TrainSpec(
            adapterName: "recipes-lora", baseModel: "tributary-base",
            versions: [Wire.VersionRef(datanet: version.datanet.rawValue, number: UInt32(version.number))], rank: 2, alpha: 4,
            targets: ["q", "v"], learningRate: 3e-3, steps: steps, epochs: 0, batchSize: 2, sequenceLength: 64, seed: 1,
            checkpointEvery: checkpointEvery))
    }

    func submit(_ spec: Wire.JobSpec, on connection: TributaryConnection) async throws -> Wire.Job {
        guard case .jobInfo(let info) = try await connection.call(.jobSubmit(Wire.JobSubmit(spec: spec))) else {
            throw ProcessFailure("JobSubmit was not answered with JobInfo")
        }
        return info.job
    }

    /// What the processes logged, for a failing test's message.
    var logs: String {
        ([("coordinator", coordinator)] + engines.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value)) })
            .map { "--- \($0.0)\n\($0.1?.log.suffix(3000) ?? "")" }.joined(separator: "\n")
    }

    func shutDown() async {
        for engine in engines.values where engine.process.isRunning { await engine.kill() }
        if let coordinator, coordinator.process.isRunning { await coordinator.kill() }
        try? FileManager.default.removeItem(at: data)
    }
}

/// Runs `body` on a fresh cluster, then kills what is still running and removes its directory, whether or not
/// `body` threw.
func withCluster(_ body: (Cluster) async throws -> Void) async throws {
    let cluster = try Cluster()
    do {
        try await body(cluster)
    } catch {
        await cluster.shutDown()
        throw error
    }
    await cluster.shutDown()
}

/// Follows a job's events from `after` until its final event, handing each to `onEvent`.
func followEvents(
    of job: UInt64, after: UInt64 = 0, on connection: TributaryConnection, onEvent: (Wire.JobEvent) async throws -> Void = { _ in }
) async throws -> [Wire.JobEvent] {
    var events: [Wire.JobEvent] = []
    for try await reply in try await connection.stream(.jobEvents(Wire.JobEvents(job: job, afterSeq: after))) {
        guard case .jobEvent(let event) = reply else { throw ProcessFailure("JobEvents streamed \(reply.type)") }
        events.append(event)
        try await onEvent(event)
    }
    return events
}
