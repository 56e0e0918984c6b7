import ArgumentParser
import Dispatch
import EngineServer
import Foundation
import LlamaModel
import Logging
import Store

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the binary protocol: datanets, adapters, ledger and streamed inference, until SIGTERM or SIGINT.",
        discussion: """
            Mutating requests need the contributor token given in HELLO. On SIGTERM the server stops accepting, \
            sends GOAWAY, lets in-flight requests finish (up to --drain-seconds), cancels the rest and exits.
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

    @Option(help: "Requests one connection may have open at once.")
    var maxConcurrentRequests = 64

    @Option(help: "Seconds shutdown waits for in-flight requests before cancelling them.")
    var drainSeconds = 10

    @Flag(help: "Print the listening address as one JSON object ({\"host\", \"port\"}) instead of text; logs go to standard error.")
    var json = false

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
            engine = Engine(store: store, generator: try TextGenerator(folder: model), computeThreads: computeThreads)
        } catch {
            throw CommandFailure("\(error)")
        }
        var configuration = ServerConfiguration(host: host, port: port)
        configuration.maxConcurrentRequests = maxConcurrentRequests
        configuration.drainTimeout = .seconds(drainSeconds)
        let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
        let report = "{\"host\":\"\(host)\",\"port\":\(server.localPort)}"
        // Written at once (not line-buffered): a parent process waits for this line to learn the port.
        FileHandle.standardOutput.write(Data(((json ? report : "listening on \(host):\(server.localPort)") + "\n").utf8))

        // Signals arrive on a dispatch source; the default handlers are switched off so the process survives to drain.
        let signals = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { server.shutdown() }
            source.resume()
            return source
        }
        try await server.run()
        signals.forEach { $0.cancel() }
    }
}
