import Synchronization

/// The counters STATS reports: connections, requests, tokens, and request latency over the last requests.
public final class ServerStatistics: Sendable {
    public struct Snapshot: Sendable {
        public var connections = 0
        public var requestsInFlight = 0
        public var requestsCompleted: UInt64 = 0
        public var tokensGenerated: UInt64 = 0
        public var latencyP50Microseconds: UInt64 = 0
        public var latencyP99Microseconds: UInt64 = 0
    }

    private struct State {
        var snapshot = Snapshot()
        /// A ring of the most recent request latencies, in microseconds.
        var latencies: [UInt64] = []
        var next = 0
    }

    static let latencyWindow = 1024
    private let state = Mutex(State())
    /// Frames read off every connection (on event loops, so a lock-free counter).
    private let frames = Atomic<UInt64>(0)

    public init() {}

    func frameReceived() { frames.add(1, ordering: .relaxed) }
    public var framesReceived: UInt64 { frames.load(ordering: .relaxed) }

    func connectionOpened() { state.withLock { $0.snapshot.connections += 1 } }
    func connectionClosed() { state.withLock { $0.snapshot.connections -= 1 } }
    func requestStarted() { state.withLock { $0.snapshot.requestsInFlight += 1 } }
    public func tokensGenerated(_ count: Int) { state.withLock { $0.snapshot.tokensGenerated += UInt64(count) } }

    func requestFinished(after duration: Duration) {
        let microseconds = duration.wholeMicroseconds
        state.withLock { state in
            state.snapshot.requestsInFlight -= 1
            state.snapshot.requestsCompleted += 1
            if state.latencies.count < Self.latencyWindow {
                state.latencies.append(microseconds)
            } else {
                state.latencies[state.next] = microseconds
            }
            state.next = (state.next + 1) % Self.latencyWindow
        }
    }

    public func snapshot() -> Snapshot {
        var (snapshot, latencies) = state.withLock { ($0.snapshot, $0.latencies) }
        guard !latencies.isEmpty else { return snapshot }
        latencies.sort()
        snapshot.latencyP50Microseconds = latencies[(latencies.count - 1) / 2]
        snapshot.latencyP99Microseconds = latencies[(latencies.count - 1) * 99 / 100]
        return snapshot
    }
}
