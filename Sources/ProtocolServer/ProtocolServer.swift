import Logging
import LoopExecution
import NIOCore
import NIOPosix
import Synchronization
import WireProtocol

/// A server of the binary protocol: accepts connections, runs each one's handshake and requests (answered by
/// `service`), and drains on shutdown.
///
///     let server = try await ProtocolServer.bind(configuration, service: service, logger: logger)
///     try await server.run()          // returns once shutdown() has drained every connection
public final class ProtocolServer<Service: ProtocolService>: Sendable {
    public let configuration: ServerConfiguration
    public let service: Service
    /// The bound port (the configured one, or the one the system picked for port 0).
    public let localPort: Int
    let logger: Logger
    let startedAt = ContinuousClock.now

    private let group: MultiThreadedEventLoopGroup
    private let listener: NIOAsyncChannel<NIOAsyncChannel<Envelope, Envelope>, Never>
    private struct OpenConnections {
        var connections: [ObjectIdentifier: Connection<Service>] = [:]
        /// Each connection's drain once ``shutdown()`` has begun: ``run()`` waits for them before it stops the loops.
        var drains: [Task<Void, Never>] = []

        mutating func drain(_ connection: Connection<Service>, timeout: Duration) {
            drains.append(Task { await connection.drain(timeout: timeout) })
        }
    }
    private let open = Mutex(OpenConnections())
    private let draining = Atomic<Bool>(false)

    private init(
        configuration: ServerConfiguration, service: Service, logger: Logger, group: MultiThreadedEventLoopGroup,
        listener: NIOAsyncChannel<NIOAsyncChannel<Envelope, Envelope>, Never>
    ) {
        self.configuration = configuration
        self.service = service
        self.logger = logger
        self.group = group
        self.listener = listener
        localPort = listener.channel.localAddress?.port ?? configuration.port
    }

    /// Binds the listening socket; connections are served once ``run()`` runs.
    public static func bind(_ configuration: ServerConfiguration, service: Service, logger: Logger) async throws -> ProtocolServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        let maxPayload = configuration.maxFramePayload
        let buffered = configuration.maxBufferedBytes
        let statistics = service.statistics
        let handshake = HandshakeGate(limit: configuration.maxHandshakingConnections, timeout: configuration.handshakeTimeout)
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
                            // The HELLO is held to the handshake limit from its length bytes, before any buffering.
                            ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload, firstFrameMaxPayload: FrameLimits.handshakeMaxPayload)),
                            MessageToByteHandler(EnvelopeEncoder()),
                            ProtocolHandler(statistics: statistics, handshake: handshake))
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
        let server = ProtocolServer(configuration: configuration, service: service, logger: logger, group: group, listener: listener)
        logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(server.localPort)"])
        return server
    }

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Serves connections until ``shutdown()``, then waits for every connection to drain.
    public func run() async throws {
        // Accepting runs on the listener's event loop too: it never waits for a cooperative thread.
        await withTaskExecutorPreference(EventLoopTaskExecutor(listener.channel.eventLoop)) { await serveConnections() }
        // A drain may still be closing the channel of a connection that has ended: the loops must outlive it.
        // Every drain is known by now: each was started while its connection was open.
        for drain in open.withLock({ $0.drains }) { await drain.value }
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    private func serveConnections() async {
        await withDiscardingTaskGroup { tasks in
            do {
                try await listener.executeThenClose { inbound in
                    for try await channel in inbound {
                        let connection = Connection(channel: channel, server: self)
                        // The connection's tasks run on its event loop (they only route frames and await the
                        // pools), so a reply is written without a thread hop.
                        tasks.addTask(executorPreference: EventLoopTaskExecutor(channel.channel.eventLoop)) {
                            await self.serve(connection)
                        }
                    }
                }
            } catch {
                if !isDraining { logger.error("listener failed", metadata: ["error": "\(error)"]) }
            }
        }
    }

    private func serve(_ connection: Connection<Service>) async {
        let key = ObjectIdentifier(connection)
        open.withLock { open in
            open.connections[key] = connection
            if isDraining { open.drain(connection, timeout: configuration.drainTimeout) }
        }
        service.statistics.connectionOpened()
        await connection.run()
        open.withLock { _ = $0.connections.removeValue(forKey: key) }
        service.statistics.connectionClosed()
    }

    /// Graceful shutdown: stop accepting, send GOAWAY on every connection, let in-flight requests finish for
    /// up to the drain timeout, cancel what remains, close. ``run()`` returns when all of that is done.
    public func shutdown() {
        guard !draining.exchange(true, ordering: .relaxed) else { return }
        listener.channel.close(promise: nil)
        let count = open.withLock { open in
            for connection in open.connections.values { open.drain(connection, timeout: configuration.drainTimeout) }
            return open.connections.count
        }
        logger.info("draining", metadata: ["connections": "\(count)"])
    }
}
