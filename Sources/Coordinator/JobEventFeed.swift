import Foundation
import ProtocolServer
import Store
import Synchronization
import WireProtocol

/// How many `JobEvents` streams one caller may hold open: each costs the coordinator a subscription and a buffer.
public struct WatcherLimits: Sendable, Equatable {
    public var perConnection: Int
    public var perContributor: Int

    public init(perConnection: Int = 16, perContributor: Int = 64) {
        self.perConnection = perConnection
        self.perContributor = perContributor
    }
}

/// The coordinator's one reader of new job events: every tick it reads the events after the last sequence
/// number it saw, once for the whole coordinator, and pushes each to the `JobEvents` streams that follow its job.
/// A stream that polled the store itself would cost a read every interval, so a few thousand idle watchers would
/// starve the store; here they cost one read per tick together.
///
/// A stream reads its backlog from the store once when it opens (after subscribing, so nothing falls between the
/// two: duplicates are dropped by sequence number). A stream that falls more than its buffer behind (its client
/// grants no credits) is marked lagged and reads what it missed from the store once, instead of buffering
/// without bound.
final class JobEventFeed: Sendable {
    /// Events buffered per stream before it is marked lagged.
    static let bufferedEvents = 256
    /// Events read per store read; a tick reads again while pages are full.
    static let pageSize = 1000

    let store: Store
    let limits: WatcherLimits

    private struct Subscriber {
        var job: JobID
        var connection: UUID
        var contributor: ContributorID
        var continuation: AsyncStream<JobEvent>.Continuation
        var isCancelled: @Sendable () -> Bool
        var lagged = false
    }

    private struct State {
        var subscribers: [UInt64: Subscriber] = [:]
        var nextID: UInt64 = 1
        /// The last sequence number read; nil until the first tick.
        var lastSequence: Int64?
        var stopped = false
        var storeReads = 0
        var ticks = 0
    }

    private let state = Mutex(State())

    init(store: Store, limits: WatcherLimits) {
        self.store = store
        self.limits = limits
    }

    /// Reads of job events from the store so far: one per tick (more only for a tick with more than a page of new
    /// events), however many streams are open, and those of each stream's backlog when it opens or lags
    /// (``countStoreRead()``).
    var storeReads: Int { state.withLock { $0.storeReads } }

    /// Ticks so far.
    var ticks: Int { state.withLock { $0.ticks } }

    /// A stream read its backlog from the store.
    func countStoreRead() { state.withLock { $0.storeReads += 1 } }

    /// Streams open now.
    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// One stream's subscription: the events of its job from the feed, until it ends (cancelled, or the feed
    /// stopped).
    final class Subscription: Sendable {
        let id: UInt64
        let events: AsyncStream<JobEvent>
        private let feed: JobEventFeed

        fileprivate init(id: UInt64, events: AsyncStream<JobEvent>, feed: JobEventFeed) {
            self.id = id
            self.events = events
            self.feed = feed
        }

        /// Whether events were dropped since the last call (then read them from the store).
        func takeLagged() -> Bool { feed.takeLagged(id) }

        func cancel() { feed.remove(id) }
    }

    /// Subscribes a stream to the events of `job`.
    ///
    /// - Throws: `too_many_requests` beyond the limits (per connection, per contributor), `unavailable` once the
    ///   coordinator is shutting down.
    func subscribe(
        job: JobID, connection: UUID, contributor: ContributorID, isCancelled: @escaping @Sendable () -> Bool
    ) throws -> Subscription {
        let (events, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .bufferingOldest(Self.bufferedEvents))
        let id = try state.withLock { state -> UInt64 in
            guard !state.stopped else {
                throw RequestFailure(.unavailable, "the coordinator is shutting down: reconnect and resume with after_seq")
            }
            let open = state.subscribers.values
            if open.count(where: { $0.connection == connection }) >= limits.perConnection {
                throw RequestFailure(
                    .tooManyRequests,
                    "\(limits.perConnection) JobEvents streams are already open on this connection: close one first", retryAfterMs: 1000)
            }
            if open.count(where: { $0.contributor == contributor }) >= limits.perContributor {
                throw RequestFailure(
                    .tooManyRequests, "\(contributor) already has \(limits.perContributor) JobEvents streams open: close one first",
                    retryAfterMs: 1000)
            }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = Subscriber(
                job: job, connection: connection, contributor: contributor, continuation: continuation, isCancelled: isCancelled)
            return id
        }
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return Subscription(id: id, events: events, feed: self)
    }

    /// One round: reads the events after the last one seen (once, whatever the number of streams), pushes each to
    /// the streams of its job, and ends the streams whose requests were cancelled.
    func tick() throws {
        let (stopped, start) = state.withLock { state in
            state.ticks += 1
            return (state.stopped, state.lastSequence)
        }
        guard !stopped else { return }
        guard let after = start else {
            let last = try store.lastJobEventSequence()
            state.withLock {
                if $0.lastSequence == nil { $0.lastSequence = last }
                $0.storeReads += 1
            }
            return
        }
        var last = after
        while true {
            let events = try store.jobEvents(after: last, limit: Self.pageSize)
            state.withLock { $0.storeReads += 1 }
            if let final = events.last?.sequence { last = final }
            fanOut(events)
            if events.count < Self.pageSize { break }
        }
        let ended = state.withLock { state -> [AsyncStream<JobEvent>.Continuation] in
            state.lastSequence = max(state.lastSequence ?? 0, last)
            let cancelled = state.subscribers.filter { $0.value.isCancelled() }
            for id in cancelled.keys { state.subscribers[id] = nil }
            return cancelled.values.map(\.continuation)
        }
        for continuation in ended { continuation.finish() }
    }

    /// Ends every stream and refuses new ones: the coordinator is shutting down.
    func stop() {
        let all = state.withLock { state -> [AsyncStream<JobEvent>.Continuation] in
            state.stopped = true
            defer { state.subscribers = [:] }
            return state.subscribers.values.map(\.continuation)
        }
        for continuation in all { continuation.finish() }
    }

    private func fanOut(_ events: [JobEvent]) {
        guard !events.isEmpty else { return }
        state.withLock { state in
            guard !state.subscribers.isEmpty else { return }
            let byJob = Dictionary(grouping: events, by: \.job)
            for (id, subscriber) in state.subscribers {
                guard let mine = byJob[subscriber.job] else { continue }
                for event in mine {
                    if case .dropped = subscriber.continuation.yield(event) { state.subscribers[id]?.lagged = true }
                }
            }
        }
    }

    fileprivate func takeLagged(_ id: UInt64) -> Bool {
        state.withLock { state in
            defer { state.subscribers[id]?.lagged = false }
            return state.subscribers[id]?.lagged ?? false
        }
    }

    fileprivate func remove(_ id: UInt64) {
        let removed = state.withLock { $0.subscribers.removeValue(forKey: id) }
        removed?.continuation.finish()
    }
}
