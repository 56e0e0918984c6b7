import WireProtocol

/// How a server listens and what it allows each connection.
public struct ServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (see ``ProtocolServer/localPort``).
    public var port: Int
    public var serverName = "tributary-engine"
    /// The largest frame payload the server accepts after the handshake (and announces in WELCOME).
    public var maxFramePayload: UInt32 = FrameLimits.defaultMaxPayload
    /// Requests one connection may have open at once; more are refused with `too_many_requests`.
    public var maxConcurrentRequests = 64
    /// Reply bytes one connection may have waiting in the socket's send path before its producers pause.
    public var maxBufferedBytes = 1 << 20
    /// How long shutdown waits for in-flight requests before cancelling them.
    public var drainTimeout: Duration = .seconds(10)
    /// How long a connection may take from its opening to WELCOME (HELLO and authentication); then it is refused
    /// with `timeout` and closed, so connections that never finish their handshake are not kept.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Connections that may be in their handshake at once, across the server; beyond it the oldest of them is
    /// refused with `overloaded` to make room for the new one. With the 64 KiB handshake frame limit,
    /// unauthenticated peers can hold at most this many × 64 KiB of the server's memory.
    public var maxHandshakingConnections = 256
    /// Event-loop threads (networking only: compute and storage run on the service's pools).
    public var eventLoopThreads = 1
    /// Whether anyone may create a contributor with an engine's `SignUp`; closed, it is refused with `permission_denied`.
    public var allowsSignUp = true

    public init(host: String = "127.0.0.1", port: Int = 7070) {
        self.host = host
        self.port = port
    }
}
