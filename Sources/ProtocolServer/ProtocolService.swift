import Foundation
import WireProtocol

/// What a ``ProtocolServer`` serves: the engine's requests, or the coordinator's. The server owns the
/// connection (framing, handshake, multiplexing, limits, credits, CANCEL, GOAWAY); the service authenticates
/// tokens and answers requests. Both run as tasks on the connection's event loop, so that replies go out
/// without a thread hop: whatever blocks or computes (the store, the model) must await a thread pool.
public protocol ProtocolService: Sendable {
    /// The counters STATS reports, kept by the server's connections.
    var statistics: ServerStatistics { get }

    /// The contributor HELLO's token names (nil: anonymous, read-only). Throwing refuses the connection with
    /// the error's wire code (``RequestFailure/init(_:)``).
    func authenticate(token: String) async throws -> Int64?

    /// Answers one request through `replier`, ending it with a FINAL frame or an ERROR.
    func handle(_ request: Message, context: RequestContext, replier: Replier) async
}

/// Who sent a request, and the server's state as a request may report it.
public struct RequestContext: Sendable {
    /// The connection's authenticated contributor; nil for an anonymous connection.
    public let contributor: Int64?
    public let serverStartedAt: ContinuousClock.Instant
    public let isDraining: @Sendable () -> Bool
    /// Names the connection (for idempotency keys built with a request id, unique within the connection).
    public let connectionID: UUID
    /// The largest payload the client accepts (HELLO's `max_frame_size`): replies are cut or paged below it.
    public let peerMaxPayload: UInt32

    public init(
        contributor: Int64?, serverStartedAt: ContinuousClock.Instant, isDraining: @escaping @Sendable () -> Bool,
        connectionID: UUID = UUID(), peerMaxPayload: UInt32 = FrameLimits.minimumMaxPayload
    ) {
        self.contributor = contributor
        self.serverStartedAt = serverStartedAt
        self.isDraining = isDraining
        self.connectionID = connectionID
        self.peerMaxPayload = peerMaxPayload
    }
}
