import LlamaModel
import Synchronization

/// Generated pieces on their way from a compute thread to the connection's event loop, coalesced.
///
/// A wake-up of the loop and a socket write cost tens of microseconds of CPU, as much as a small model spends
/// on a token, so the compute thread wakes the loop for the first piece, then at most once per `flushInterval`
/// (and at the end); the pieces in between wait and go out together, in one write. A piece waits at most the
/// interval plus one token's generation time; models slower than the interval per token see every piece at once.
final class StreamedPieceQueue: Sendable {
    private struct State {
        var pieces: [StreamedPiece] = []
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
        /// When the next piece may wake the loop again; nil: at once.
        var nextWake: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    let flushInterval: Duration

    init(flushInterval: Duration) {
        self.flushInterval = flushInterval
    }

    /// Called on the compute thread for each piece.
    func push(_ piece: StreamedPiece) {
        let now = ContinuousClock.now
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.pieces.append(piece)
            guard state.waiter != nil, state.nextWake.map({ now >= $0 }) ?? true else { return nil }
            state.nextWake = now + flushInterval
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// No more pieces: whatever waits goes out now.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The pieces pushed since the last call, once there are any and the compute thread has woken this reader
    /// (or the reader comes back to find them), and whether generation has finished: then they are the last
    /// (perhaps none). One reader.
    func next() async -> (pieces: [StreamedPiece], isLast: Bool) {
        while true {
            let (batch, finished) = state.withLock { state in
                defer { state.pieces = [] }
                return (state.pieces, state.finished)
            }
            if finished || !batch.isEmpty { return (batch, finished) }
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    guard state.pieces.isEmpty && !state.finished else { return true }
                    state.waiter = waiter
                    return false
                }
                if ready { waiter.resume() }
            }
        }
    }
}
