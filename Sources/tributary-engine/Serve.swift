import ArgumentParser
import EngineAgent
import EngineServer
import Foundation
import LlamaModel
import Logging
import ProtocolServer
import Serving
import Store
import TensorCore

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the binary protocol: datanets, adapters, ledger and streamed inference, until SIGTERM or SIGINT.",
        discussion: """
            Mutating requests need the contributor token given in HELLO. On SIGTERM the server stops accepting, \
            sends GOAWAY, lets in-flight requests finish (up to --drain-seconds), cancels the rest and exits.

            With --coordinator, the engine also registers with that coordinator (token from --token or \
            TRIBUTARY_TOKEN), heartbeats, and runs the train and index jobs it leases to this engine, with DIR as \
            the work folder (adapters under DIR/adapters/ID): the coordinator and its engines share DIR. On SIGTERM \
            it takes no more jobs; an attempt cut short is retried by the coordinator from its last checkpoint.
            """)

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port, printed at start).")
    var port = 7070

    @Option(help: "The data directory (the store's SQLite database lives there; created if missing).")
    var data: String

    @Option(help: "The base model: a Hugging Face Llama folder.")
    var model: String = "models/tributary-base"

    @Option(help: "Generations that run at once (compute threads).")
    var computeThreads = 2

    @Option(help: "Compute requests (generation, attribution, adapter loads) the engine holds, running or waiting; more are refused with overloaded.")
    var computeQueue = ComputeLimits().maxQueued

    @Option(help: "Compute requests one contributor may hold, running or waiting (anonymous connections share one such share); more are refused with overloaded.")
    var computeQueuePerContributor = ComputeLimits().maxQueuedPerContributor

    @Option(help: "Microseconds within which streamed tokens go out together, in one write (0: each token at once).")
    var tokenFlushMicroseconds = 5000

    @Option(help: "Requests one connection may have open at once.")
    var maxConcurrentRequests = 64

    @Option(help: "Seconds a connection may take from opening to WELCOME; then it is refused with timeout and closed.")
    var handshakeSeconds = 10

    @Option(help: "Connections that may be in their handshake at once; beyond it the oldest is refused with overloaded to make room.")
    var maxHandshaking = ServerConfiguration(host: "", port: 0).maxHandshakingConnections

    @Option(help: "Seconds shutdown waits for in-flight requests before cancelling them.")
    var drainSeconds = 10

    @Option(help: "The coordinator to take jobs from (HOST:PORT); none: serve requests only.")
    var coordinator: String?

    @Option(help: "This engine's name at the coordinator, unique among its engines (default: HOST:PORT it serves on).")
    var name: String?

    @Option(help: "Jobs this engine runs at once, each on a thread of its own.")
    var jobSlots = 1

    @Option(help: "MiB one job may allocate, by its estimate: a larger job fails its attempt instead of aborting the engine (default: half the physical memory).")
    var jobMemoryMib: Int?

    @Option(help: "The engine credential the engine connects to the coordinator with (default: TRIBUTARY_TOKEN; made with `contributor add --role engine`).")
    var token: String?

    @Flag(help: "Print the listening address as one JSON object ({\"host\", \"port\"}) instead of text; logs go to standard error.")
    var json = false

    func validate() throws {
        if let coordinator, AgentConfiguration.hostAndPort(coordinator) == nil {
            throw ValidationError("--coordinator \(coordinator): expected HOST:PORT")
        }
        guard (1...4096).contains(jobSlots) else { throw ValidationError("--job-slots must be from 1 to 4096") }
        if let jobMemoryMib, jobMemoryMib < 1 || jobMemoryMib > 1 << 30 { throw ValidationError("--job-memory-mib must be from 1 to 2^30") }
        guard computeQueue >= 1, computeQueuePerContributor >= 1 else {
            throw ValidationError("--compute-queue and --compute-queue-per-contributor must be at least 1")
        }
        guard handshakeSeconds >= 1, maxHandshaking >= 1 else {
            throw ValidationError("--handshake-seconds and --max-handshaking must be at least 1")
        }
        guard tokenFlushMicroseconds >= 0 else { throw ValidationError("--token-flush-microseconds must be at least 0") }
        if coordinator != nil, (token ?? ProcessInfo.processInfo.environment["TRIBUTARY_TOKEN"] ?? "").isEmpty {
            throw ValidationError("--coordinator needs a contributor token: --token or TRIBUTARY_TOKEN")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "tributary.engine")
        let engine: Engine
        do {
            let store = try Store(directory: URL(fileURLWithPath: data))
            engine = Engine(
                store: store, generator: try TextGenerator(folder: model), chatTemplate: .load(folder: model),
                computeThreads: computeThreads,
                computeLimits: ComputeLimits(maxQueued: computeQueue, maxQueuedPerContributor: computeQueuePerContributor),
                tokenFlushInterval: .microseconds(tokenFlushMicroseconds))
        } catch {
            throw CommandFailure("\(error)")
        }
        // Each generation and each job gets its share of the cores for BLAS, so BLAS workers spinning after a call
        // do not take the cores the event loops need (a user's OPENBLAS_NUM_THREADS still wins). Process-wide,
        // so it is set here and not by the library.
        BLASRuntime.configure(computePools: computeThreads + (coordinator == nil ? 0 : jobSlots))
        var configuration = ServerConfiguration(host: host, port: port)
        configuration.maxConcurrentRequests = maxConcurrentRequests
        configuration.handshakeTimeout = .seconds(handshakeSeconds)
        configuration.maxHandshakingConnections = maxHandshaking
        configuration.drainTimeout = .seconds(drainSeconds)
        let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
        let agent = coordinator.flatMap(AgentConfiguration.hostAndPort).map { coordinator in
            let address = "\(host):\(server.localPort)"
            let configuration = AgentConfiguration(
                coordinatorHost: coordinator.host, coordinatorPort: coordinator.port,
                token: token ?? ProcessInfo.processInfo.environment["TRIBUTARY_TOKEN"] ?? "", name: name ?? address,
                address: address, jobSlots: jobSlots)
            let runner = JobRunner(
                store: engine.store, model: engine.generator.model, modelFolder: model, workFolder: data,
                memoryBudget: jobMemoryMib.map { UInt64($0) << 20 } ?? MemoryEstimate.defaultBudget)
            return EngineAgent(configuration, runner: runner, logger: Logger(label: "tributary.agent"))
        }
        let signals = TerminationSignals {
            agent?.stop()
            server.shutdown()
        }
        // Announced once signals drain the server: a parent may stop it as soon as it reads the port.
        announceListening(host: host, port: server.localPort, json: json)
        async let agentStopped: Void = {
            do { try await agent?.run() } catch {
                server.shutdown()
                throw CommandFailure("the coordinator at \(coordinator ?? "") refused this engine (check --token or TRIBUTARY_TOKEN): \(error)")
            }
        }()
        try await server.run()
        agent?.stop()
        try await agentStopped
        signals.cancel()
    }
}
