import NIOPosix
import ProtocolServer
import Store
import Synchronization

/// Whose compute work waits in the engine's queue: each contributor on their own, and every anonymous connection
/// together (an anonymous client can open connections at will, so it cannot gain a share by opening more).
public enum ComputeBucket: Hashable, Sendable {
    case contributor(ContributorID)
    case anonymous
    /// The engine's own work, asked for by its operator in process, not by a client.
    case local

    /// A connection's bucket: its contributor's, or the anonymous connections' (nil).
    init(_ contributor: ContributorID?) { self = contributor.map { .contributor($0) } ?? .anonymous }
}

/// How much compute work the engine holds, running or waiting for a thread; beyond either bound a request is
/// refused at once with `overloaded` and a `retry_after_ms` hint, instead of waiting for minutes.
public struct ComputeLimits: Sendable {
    /// Across the engine.
    public var maxQueued: Int
    /// Per ``ComputeBucket``: what one contributor (or all anonymous clients together) may hold.
    public var maxQueuedPerContributor: Int

    public init(maxQueued: Int = 128, maxQueuedPerContributor: Int = 16) {
        precondition(maxQueued >= 1 && maxQueuedPerContributor >= 1, "compute queue bounds of at least 1")
        self.maxQueued = maxQueued
        self.maxQueuedPerContributor = maxQueuedPerContributor
    }
}

/// Admits compute work to the engine's thread pool, bounded (``ComputeLimits``) and fair: when a thread frees,
/// the next bucket in turn runs its oldest waiting work, so a client with a full queue delays another client's
/// request by at most one piece of work per thread, not by its whole queue.
///
/// The pool's own queue stays empty: work is handed to it only when one of its threads is free.
final class ComputeQueue: Sendable {
    private typealias Waiter = CheckedContinuation<RequestFailure?, Never>

    private struct State {
        /// Work on the pool's threads (at most `threads`).
        var running = 0
        /// Work running or waiting, per bucket and in all.
        var held: [ComputeBucket: Int] = [:]
        var total = 0
        /// Each bucket's waiting work, oldest first.
        var waiting: [ComputeBucket: [Waiter]] = [:]
        /// The buckets with waiting work, in the order their turns come.
        var turns: [ComputeBucket] = []
        /// A moving average of how long one piece of work runs, for the retry hint.
        var averageRun: Duration = .milliseconds(100)
    }

    let limits: ComputeLimits
    private let pool: NIOThreadPool
    private let threads: Int
    private let state = Mutex(State())

    init(pool: NIOThreadPool, threads: Int, limits: ComputeLimits) {
        self.pool = pool
        self.threads = threads
        self.limits = limits
    }

    /// Work held now, running or waiting.
    var held: Int { state.withLock { $0.total } }

    /// Runs `body` on the pool when `bucket`'s turn comes; throws `overloaded` at once when a bound is reached,
    /// and `CancellationError` without running it when `isCancelled` says so once its turn has come.
    func run<T: Sendable>(
        for bucket: ComputeBucket, isCancelled: @escaping @Sendable () -> Bool = { false },
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        if let refusal = await admit(bucket) { throw refusal }
        let clock = ContinuousClock()
        let start = clock.now
        defer { finish(bucket, ran: clock.now - start) }
        if isCancelled() { throw CancellationError() }
        return try await pool.runIfActive(body)
    }

    /// Nil once a thread is `bucket`'s; the refusal when a bound is reached.
    private func admit(_ bucket: ComputeBucket) async -> RequestFailure? {
        await withCheckedContinuation { (waiter: Waiter) in
            let now = state.withLock { state -> RequestFailure?? in
                let mine = state.held[bucket, default: 0]
                if mine >= limits.maxQueuedPerContributor {
                    return .some(refusal(state, "\(mine) compute requests of \(Self.describe(bucket)) are already queued or running"))
                }
                if state.total >= limits.maxQueued {
                    return .some(refusal(state, "the engine's compute queue is full (\(state.total) requests)"))
                }
                state.held[bucket] = mine + 1
                state.total += 1
                if state.running < threads {
                    state.running += 1
                    return .some(nil)
                }
                if state.waiting[bucket]?.append(waiter) == nil {
                    state.waiting[bucket] = [waiter]
                    state.turns.append(bucket)
                }
                return nil
            }
            if let now { waiter.resume(returning: now) }
        }
    }

    /// Frees the thread `bucket`'s work ran on: it passes to the next bucket in turn, or goes back to the pool.
    private func finish(_ bucket: ComputeBucket, ran: Duration) {
        let next = state.withLock { state -> Waiter? in
            state.total -= 1
            let mine = state.held[bucket, default: 1] - 1
            state.held[bucket] = mine > 0 ? mine : nil
            state.averageRun = (state.averageRun * 7 + ran) / 8
            guard !state.turns.isEmpty else {
                state.running -= 1
                return nil
            }
            let turn = state.turns.removeFirst()
            guard var queue = state.waiting.removeValue(forKey: turn), !queue.isEmpty else {
                state.running -= 1
                return nil
            }
            let next = queue.removeFirst()
            if !queue.isEmpty {
                state.waiting[turn] = queue
                state.turns.append(turn)
            }
            return next
        }
        next?.resume(returning: nil)
    }

    /// `overloaded`, with a hint of when a thread may be free for the caller: the waiting work's expected run time.
    private func refusal(_ state: State, _ reason: String) -> RequestFailure {
        let waiting = max(1, state.total - state.running)
        let wait = state.averageRun * waiting / threads
        let milliseconds = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
        return RequestFailure(
            .overloaded, "\(reason): try again later", retryAfterMs: UInt32(clamping: min(max(milliseconds, 10), 60_000)))
    }

    private static func describe(_ bucket: ComputeBucket) -> String {
        switch bucket {
        case .contributor(let id): "contributor \(id.rawValue)"
        case .anonymous: "anonymous connections"
        case .local: "the engine itself"
        }
    }
}
