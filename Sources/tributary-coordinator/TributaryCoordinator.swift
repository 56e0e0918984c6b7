import ArgumentParser
import Coordinator
import Foundation
import Logging
import ProtocolServer
import Store

@main
struct TributaryCoordinator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary-coordinator",
        abstract: "Serve the coordinator: the job queue of the shared data directory, dispatched to registered engines.",
        discussion: """
            Engines started with `tributary-engine serve --data DIR --coordinator HOST:PORT` on the same DIR register \
            here and run the jobs leased to them. Clients submit and watch jobs here (JobSubmit, JobEvents, JobStatus, \
            JobCancel) with a contributor token of the store. On SIGTERM or SIGINT the coordinator stops dispatching, \
            sends GOAWAY, lets requests finish (up to --drain-seconds) and exits; the queue stays in DIR.
            """)

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port, printed at start).")
    var port = 7080

    @Option(help: "The data directory shared with the engines (the store's SQLite database; created if missing).")
    var data: String

    @Option(help: "Seconds between engine heartbeats, and between dispatch rounds.")
    var heartbeatSeconds = 1.0

    @Option(help: "Heartbeats an engine may miss before its running attempts are retried elsewhere.")
    var missedHeartbeats = 3

    @Option(help: "Seconds a running attempt may report no progress, heartbeats or not, before it is given up and retried.")
    var attemptStallSeconds = 3600.0

    @Option(help: "JobEvents streams one connection may hold open.")
    var watchersPerConnection = 16

    @Option(help: "JobEvents streams one contributor may hold open, over all connections.")
    var watchersPerContributor = 64

    @Option(help: "Seconds shutdown waits for in-flight requests before cancelling them.")
    var drainSeconds = 10

    @Option(help: "Seconds a connection has to finish its handshake before it is closed with timeout.")
    var handshakeSeconds = 10

    @Flag(help: "Print the listening address as one JSON object ({\"host\", \"port\"}) instead of text; logs go to standard error.")
    var json = false

    func validate() throws {
        guard heartbeatSeconds >= 0.01, heartbeatSeconds <= 3600 else { throw ValidationError("--heartbeat-seconds must be from 0.01 to 3600") }
        guard (1...1000).contains(missedHeartbeats) else { throw ValidationError("--missed-heartbeats must be from 1 to 1000") }
        guard attemptStallSeconds.isFinite, attemptStallSeconds >= 1 else { throw ValidationError("--attempt-stall-seconds must be at least 1") }
        guard (1...86_400).contains(handshakeSeconds) else { throw ValidationError("--handshake-seconds must be from 1 to 86400") }
        guard watchersPerConnection >= 1, watchersPerContributor >= 1 else {
            throw ValidationError("--watchers-per-connection and --watchers-per-contributor must be at least 1")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "tributary.coordinator")
        let store: Store
        do {
            store = try Store(directory: URL(fileURLWithPath: data))
        } catch {
            throw ValidationError("--data \(data): \(error)")
        }
        let coordinator = Coordinator(
            store: store,
            policy: CoordinatorPolicy(
                heartbeatInterval: heartbeatSeconds, missedHeartbeats: missedHeartbeats, attemptStallTimeout: attemptStallSeconds))
        var configuration = ServerConfiguration(host: host, port: port)
        configuration.handshakeTimeout = .seconds(handshakeSeconds)
        configuration.serverName = "tributary-coordinator"
        configuration.drainTimeout = .seconds(drainSeconds)
        let server = try await CoordinatorServer.bind(
            configuration, coordinator: coordinator,
            watchers: WatcherLimits(perConnection: watchersPerConnection, perContributor: watchersPerContributor), logger: logger)
        let signals = TerminationSignals { server.shutdown() }
        // Announced once signals drain the server: a parent may stop it as soon as it reads the port.
        announceListening(host: host, port: server.localPort, json: json)
        try await server.run()
        signals.cancel()
    }
}
