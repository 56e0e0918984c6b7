import LlamaModel
import NIOCore
import Synchronization

/// Generated pieces on their way from a compute thread to the connection's event loop, coalesced.
///
/// A wake-up of the loop and a socket write cost tens of microseconds of CPU, as much as a small model spends
/// on a token, and on a virtual machine the thread that wakes a halted CPU pays for it too. So the reader paces
/// itself: after each batch it sleeps on its own loop's timer until `flushInterval` has passed, then takes what
/// has arrived, in one write. The compute thread wakes it only when it found nothing (the first piece, or a model
/// slower than the interval per token) and at the end, which cuts a sleep short. A piece waits at most the
/// interval plus one token's generation time.
final class StreamedPieceQueue: Sendable {
    private struct State {
        var pieces: [StreamedPiece] = []
        var finished = false
        /// The reader, asleep until the next piece (`wantsPieces`) or until its timer; the end wakes either.
        var reader: CheckedContinuation<Void, Never>?
        var wantsPieces = false
        /// Tells a timer whether the sleep it was set for is still the current one.
        var sleeps: UInt64 = 0
        var lastDelivery: ContinuousClock.Instant?

        mutating func wake() -> CheckedContinuation<Void, Never>? {
            defer { reader = nil }
            return reader
        }
    }

    private let state = Mutex(State())
    let flushInterval: Duration
    private let eventLoop: any EventLoop

    /// `eventLoop` runs the reader's timer: the connection's loop, so that pacing wakes no other thread.
    init(flushInterval: Duration, pacedOn eventLoop: any EventLoop) {
        self.flushInterval = flushInterval
        self.eventLoop = eventLoop
    }

    /// Called on the compute thread for each piece.
    func push(_ piece: StreamedPiece) {
        let reader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.pieces.append(piece)
            return state.wantsPieces ? state.wake() : nil
        }
        reader?.resume()
    }

    /// No more pieces: whatever waits goes out now.
    func finish() {
        let reader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            return state.wake()
        }
        reader?.resume()
    }

    /// The pieces pushed since the last call, once there are any and the interval since the last batch has
    /// passed, and whether generation has finished: then they are the last (perhaps none). One reader.
    func next() async -> (pieces: [StreamedPiece], isLast: Bool) {
        if let last = state.withLock({ $0.lastDelivery }), ContinuousClock.now < last + flushInterval {
            await sleep(until: last + flushInterval)
        }
        while true {
            let (batch, finished) = state.withLock { state in
                defer { state.pieces = [] }
                return (state.pieces, state.finished)
            }
            if finished || !batch.isEmpty {
                state.withLock { $0.lastDelivery = .now }
                return (batch, finished)
            }
            await sleep(until: nil)
        }
    }

    /// Until `deadline` on the loop's timer (or the end), or with no deadline until the next piece (or the end).
    private func sleep(until deadline: ContinuousClock.Instant?) async {
        await withCheckedContinuation { (reader: CheckedContinuation<Void, Never>) in
            let sleep = state.withLock { state -> UInt64? in
                let ready = state.finished || (deadline == nil && !state.pieces.isEmpty)
                guard !ready else { return nil }
                state.sleeps += 1
                state.reader = reader
                state.wantsPieces = deadline == nil
                return state.sleeps
            }
            guard let sleep else { return reader.resume() }
            guard let deadline else { return }
            eventLoop.scheduleTask(in: TimeAmount(deadline - .now)) {
                self.state.withLock { $0.sleeps == sleep ? $0.wake() : nil }?.resume()
            }
        }
    }
}
