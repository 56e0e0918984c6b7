import Synchronization

/// One open request's flow-control credits and cancellation. A streamed reply frame takes one credit; the
/// client grants more with CREDIT as it consumes them, so a client that stops reading stops the stream, and
/// the server holds at most the frames it has not yet been allowed to send.
public final class RequestStream: Sendable {
    public let requestID: UInt64

    private struct State {
        var credits: UInt64
        var cancelled = false
        var waiter: CheckedContinuation<Void, any Error>?
    }

    private let state: Mutex<State>

    init(requestID: UInt64, credits: UInt32) {
        self.requestID = requestID
        state = Mutex(State(credits: UInt64(credits)))
    }

    /// True once the client cancelled the request or the connection is being torn down; checked by compute.
    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// The most credit a stream may hold (PROTOCOL.md, flow control): a grant beyond it is a `flow_control` error.
    public static let maxCredits: UInt64 = (1 << 31) - 1

    /// Adds `credits`; false (and nothing added) when the stream's credit would exceed ``maxCredits``.
    @discardableResult
    func grant(_ credits: UInt32) -> Bool {
        let (granted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, any Error>?) in
            guard state.credits + UInt64(credits) <= Self.maxCredits else { return (false, nil) }
            state.credits += UInt64(credits)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return granted
    }

    public func cancel() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            state.cancelled = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: CancellationError())
    }

    /// Takes at least one and at most `wanted` credits, waiting for a CREDIT frame when there is none; throws
    /// `CancellationError` when the request or its task is cancelled. One waiter at a time: a request's frames
    /// are sent in order.
    public func takeCredits(upTo wanted: Int) async throws -> Int {
        precondition(wanted > 0, "take at least one credit")
        return try await withTaskCancellationHandler {
            while true {
                let taken = try state.withLock { state -> Int in
                    if state.cancelled { throw CancellationError() }
                    let taken = Int(min(state.credits, UInt64(wanted)))
                    state.credits -= UInt64(taken)
                    return taken
                }
                if taken > 0 { return taken }
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let resumeNow = state.withLock { state -> Result<Void, any Error>? in
                        if state.cancelled { return .failure(CancellationError()) }
                        if state.credits > 0 { return .success(()) }
                        state.waiter = continuation
                        return nil
                    }
                    if let resumeNow { continuation.resume(with: resumeNow) }
                }
            }
        } onCancel: {
            cancel()
        }
    }
}
