import Logging
// ServerConfiguration, statistics and the rest of the protocol server are part of the engine server's API.
@_exported import ProtocolServer
import Store
import WireProtocol

/// The engine's server: the protocol server (``ProtocolServer``) answering the engine's requests on an
/// ``Engine``, whose pools start at bind and stop once every connection has drained.
///
///     let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
///     try await server.run()          // returns once shutdown() has drained every connection
public final class EngineServer: Sendable {
    public static let version = "0.1.0"

    public let engine: Engine
    private let server: ProtocolServer<EngineService>

    public var configuration: ServerConfiguration { server.configuration }
    /// The bound port (the configured one, or the one the system picked for port 0).
    public var localPort: Int { server.localPort }
    public var isDraining: Bool { server.isDraining }

    private init(engine: Engine, server: ProtocolServer<EngineService>) {
        self.engine = engine
        self.server = server
    }

    /// Binds the listening socket and starts the engine's pools; connections are served once ``run()`` runs.
    public static func bind(_ configuration: ServerConfiguration, engine: Engine, logger: Logger) async throws -> EngineServer {
        let service = EngineService(engine: engine, allowsSignUp: configuration.allowsSignUp)
        let server = try await ProtocolServer.bind(configuration, service: service, logger: logger)
        engine.start()
        return EngineServer(engine: engine, server: server)
    }

    /// Serves connections until ``shutdown()``, then waits for every connection to drain and stops the pools.
    public func run() async throws {
        try await server.run()
        await engine.shutdown()
    }

    /// Graceful shutdown: stop accepting, send GOAWAY on every connection, let in-flight requests finish for
    /// up to the drain timeout, cancel what remains, close. ``run()`` returns when all of that is done.
    public func shutdown() { server.shutdown() }
}

/// The engine's side of the protocol server: tokens are the store's, requests go to a ``RequestRouter``.
struct EngineService: ProtocolService {
    let engine: Engine
    let allowsSignUp: Bool

    var statistics: ServerStatistics { engine.statistics }

    func authenticate(token: String) async throws -> Int64? {
        try await engine.authenticate(token: token)?.rawValue
    }

    func handle(_ request: Message, context: RequestContext, replier: Replier) async {
        let router = RequestRouter(
            engine: engine, contributor: context.contributor.map { ContributorID($0) }, allowsSignUp: allowsSignUp,
            startedAt: context.serverStartedAt, isDraining: context.isDraining, connectionID: context.connectionID,
            peerMaxPayload: context.peerMaxPayload)
        await router.handle(request, replier: replier)
    }
}
