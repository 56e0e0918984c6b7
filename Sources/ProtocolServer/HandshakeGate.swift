import NIOCore
import Synchronization

/// The limits on connections that have not finished their handshake (no WELCOME yet), shared by every connection
/// of a server: at most `limit` of them at once (beyond it a new connection is refused at once with `overloaded`),
/// each for at most `timeout`. An unauthenticated peer can then hold neither memory nor a connection slot for long:
/// it costs the server at most `limit` × 64 KiB (the handshake's frame limit), for `timeout`.
public final class HandshakeGate: Sendable {
    public let limit: Int
    public let timeout: TimeAmount
    private let count = Atomic<Int>(0)

    public init(limit: Int, timeout: Duration) {
        precondition(limit >= 1, "at least one connection may handshake")
        self.limit = limit
        self.timeout = TimeAmount(timeout)
    }

    /// Connections in their handshake now.
    public var handshaking: Int { count.load(ordering: .relaxed) }

    /// Counts a new connection in; false (and not counted) when `limit` are already in their handshake.
    func enter() -> Bool {
        var current = count.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = count.compareExchange(
                expected: current, desired: current + 1, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func leave() { count.subtract(1, ordering: .relaxed) }
}
