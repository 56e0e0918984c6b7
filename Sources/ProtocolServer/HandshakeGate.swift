import NIOCore
import Synchronization

/// The limits on connections that have not finished their handshake (no WELCOME yet), shared by every connection
/// of a server: at most `limit` of them at once, each for at most `timeout`. At the limit, a new connection makes
/// room by refusing the oldest one still in its handshake (`overloaded`), so a peer that opens connections and
/// never finishes them cannot lock out a client that finishes its handshake in a round trip. An unauthenticated
/// peer holds neither memory nor a slot for long: at most `limit` × 64 KiB (the handshake's frame limit), for
/// `timeout` at most.
public final class HandshakeGate: Sendable {
    public let limit: Int
    public let timeout: TimeAmount

    private struct Waiting {
        var nextTicket: UInt64 = 0
        /// By ticket, so the oldest is the smallest; each refuses its connection on its own event loop.
        var evictions: [UInt64: @Sendable () -> Void] = [:]
    }

    private let waiting = Mutex(Waiting())

    public init(limit: Int, timeout: Duration) {
        precondition(limit >= 1, "at least one connection may handshake")
        self.limit = limit
        self.timeout = TimeAmount(timeout)
    }

    /// Connections in their handshake now.
    public var handshaking: Int { waiting.withLock { $0.evictions.count } }

    /// Counts a new connection in and returns its ticket for ``leave(_:)``. At the limit, the oldest connection in
    /// its handshake leaves first: its `evict` runs (outside the gate's lock).
    func enter(evict: @escaping @Sendable () -> Void) -> UInt64 {
        let (ticket, evicted) = waiting.withLock { waiting -> (UInt64, (@Sendable () -> Void)?) in
            var evicted: (@Sendable () -> Void)?
            if waiting.evictions.count >= limit, let oldest = waiting.evictions.keys.min() {
                evicted = waiting.evictions.removeValue(forKey: oldest)
            }
            let ticket = waiting.nextTicket
            waiting.nextTicket += 1
            waiting.evictions[ticket] = evict
            return (ticket, evicted)
        }
        evicted?()
        return ticket
    }

    /// The connection's handshake is over (WELCOME, refusal, eviction or close). Idempotent.
    func leave(_ ticket: UInt64) {
        _ = waiting.withLock { $0.evictions.removeValue(forKey: ticket) }
    }
}
