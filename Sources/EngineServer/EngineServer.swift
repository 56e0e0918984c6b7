import Logging
import NIOCore
import NIOPosix
import Store
import Synchronization
import WireProtocol

/// The engine's server: accepts connections, runs each one's handshake and requests, and drains on shutdown.
///
///     let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
///     try await server.run()          // returns once shutdown() has drained every connection
public final class EngineServer: Sendable {
    public static let version = "0.1.0"

    public let configuration: ServerConfiguration
    public let engine: Engine
    /// The bound port (the configured one, or the one the system picked for port 0).
    public let localPort: Int
    let logger: Logger
    let startedAt = ContinuousClock.now

    private let group: MultiThreadedEventLoopGroup
    private let listener: NIOAsyncChannel<NIOAsyncChannel<Envelope, Envelope>, Never>
    private let connections = Mutex<[ObjectIdentifier: Connection]>([:])
    private let draining = Atomic<Bool>(false)

    private init(
        configuration: ServerConfiguration, engine: Engine, logger: Logger, group: MultiThreadedEventLoopGroup,
        listener: NIOAsyncChannel<NIOAsyncChannel<Envelope, Envelope>, Never>
    ) {
        self.configuration = configuration
        self.engine = engine
        self.logger = logger
        self.group = group
        self.listener = listener
        localPort = listener.channel.localAddress?.port ?? configuration.port
    }

    /// Binds the listening socket and starts the engine's pools; connections are served once ``run()`` runs.
    public static func bind(_ configuration: ServerConfiguration, engine: Engine, logger: Logger) async throws -> EngineServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        let maxPayload = configuration.maxFramePayload
        let buffered = configuration.maxBufferedBytes
        let statistics = engine.statistics
        let listener: NIOAsyncChannel<NIOAsyncChannel<Envelope, Envelope>, Never>
        do {
            listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: buffered / 2, high: buffered))
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload)),
                            MessageToByteHandler(EnvelopeEncoder()),
                            ProtocolHandler(statistics: statistics))
                        // Inbound frames wait here; past the high mark the socket is not read.
                        return try NIOAsyncChannel<Envelope, Envelope>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(backPressureStrategy: .init(lowWatermark: 8, highWatermark: 64)))
                    }
                }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        engine.start()
        let server = EngineServer(configuration: configuration, engine: engine, logger: logger, group: group, listener: listener)
        logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(server.localPort)"])
        return server
    }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Serves connections until ``shutdown()``, then waits for every connection to drain and stops the pools.
    public func run() async throws {
        await withDiscardingTaskGroup { tasks in
            do {
                try await listener.executeThenClose { inbound in
                    for try await channel in inbound {
                        let connection = Connection(channel: channel, server: self)
                        tasks.addTask { await self.serve(connection) }
                    }
                }
            } catch {
                if !isDraining { logger.error("listener failed", metadata: ["error": "\(error)"]) }
            }
        }
        await engine.shutdown()
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    private func serve(_ connection: Connection) async {
        let key = ObjectIdentifier(connection)
        let drainNow = connections.withLock { connections -> Bool in
            connections[key] = connection
            return isDraining
        }
        engine.statistics.connectionOpened()
        if drainNow { Task { await connection.drain(timeout: configuration.drainTimeout) } }
        await connection.run()
        connections.withLock { _ = $0.removeValue(forKey: key) }
        engine.statistics.connectionClosed()
    }

    /// Graceful shutdown: stop accepting, send GOAWAY on every connection, let in-flight requests finish for
    /// up to the drain timeout, cancel what remains, close. ``run()`` returns when all of that is done.
    public func shutdown() {
        guard !draining.exchange(true, ordering: .relaxed) else { return }
        logger.info("draining", metadata: ["connections": "\(connections.withLock { $0.count })"])
        listener.channel.close(promise: nil)
        let open = connections.withLock { Array($0.values) }
        for connection in open {
            Task { await connection.drain(timeout: configuration.drainTimeout) }
        }
    }
}
