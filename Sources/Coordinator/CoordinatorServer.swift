import Foundation
import Logging
import NIOPosix
import ProtocolServer
import Store
import WireProtocol

/// The coordinator on the network: the protocol server answering the coordinator's requests
/// (``Coordinator/respond(to:contributor:now:)``, `JobEvents` as a stream, Health, Stats) with the store's
/// contributors as tokens, and the dispatch loop that runs ``Coordinator/dispatch(now:)`` every heartbeat
/// interval. Store work runs on a thread pool of its own, never on event loops.
///
///     let server = try await CoordinatorServer.bind(configuration, coordinator: coordinator, logger: logger)
///     try await server.run()          // returns once shutdown() has drained every connection
public final class CoordinatorServer: Sendable {
    public static let version = "0.1.0"

    public let coordinator: Coordinator
    private let server: ProtocolServer<CoordinatorService>
    private let storage: NIOThreadPool
    private let logger: Logger
    /// The one reader of new job events, which every `JobEvents` stream follows.
    let eventFeed: JobEventFeed
    private let eventPollInterval: Duration

    /// The bound port (the configured one, or the one the system picked for port 0).
    public var localPort: Int { server.localPort }

    private init(
        coordinator: Coordinator, server: ProtocolServer<CoordinatorService>, storage: NIOThreadPool, eventFeed: JobEventFeed,
        eventPollInterval: Duration, logger: Logger
    ) {
        self.coordinator = coordinator
        self.server = server
        self.storage = storage
        self.eventFeed = eventFeed
        self.eventPollInterval = eventPollInterval
        self.logger = logger
    }

    /// Binds the listening socket; connections are served and jobs dispatched once ``run()`` runs.
    /// `eventPollInterval`: how often the coordinator's one event feed reads new job events from the store (an
    /// engine in another process appends them) for every `JobEvents` stream; `watchers`: how many streams a
    /// connection and a contributor may hold open.
    public static func bind(
        _ configuration: ServerConfiguration, coordinator: Coordinator, eventPollInterval: Duration = .milliseconds(100),
        watchers: WatcherLimits = WatcherLimits(), logger: Logger
    ) async throws -> CoordinatorServer {
        let storage = NIOThreadPool(numberOfThreads: 2)
        storage.start()
        let feed = JobEventFeed(store: coordinator.store, limits: watchers)
        let service = CoordinatorService(coordinator: coordinator, storage: storage, eventFeed: feed)
        do {
            let server = try await ProtocolServer.bind(configuration, service: service, logger: logger)
            return CoordinatorServer(
                coordinator: coordinator, server: server, storage: storage, eventFeed: feed, eventPollInterval: eventPollInterval,
                logger: logger)
        } catch {
            try? await storage.shutdownGracefully()
            throw error
        }
    }

    /// Serves connections and dispatches jobs until ``shutdown()``, then drains every connection.
    public func run() async throws {
        let dispatching = Task { await dispatchLoop() }
        let feeding = Task { await feedLoop() }
        try await server.run()
        dispatching.cancel()
        feeding.cancel()
        eventFeed.stop()
        await dispatching.value
        await feeding.value
        try? await storage.shutdownGracefully()
        logger.info("coordinator stopped")
    }

    /// Reads new job events for every stream once per interval; once the server drains, ends every stream (each
    /// then says `unavailable`, resume with `after_seq`).
    private func feedLoop() async {
        let feed = eventFeed
        while !Task.isCancelled && !server.isDraining {
            do {
                try await storage.runIfActive { try feed.tick() }
            } catch {
                logger.warning("reading job events failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: eventPollInterval)
        }
        feed.stop()
    }

    /// Stops dispatching and accepting, sends GOAWAY, lets in-flight requests finish (job event streams end at
    /// once with `unavailable`: clients resume elsewhere with `after_seq`).
    public func shutdown() { server.shutdown() }

    private func dispatchLoop() async {
        let coordinator = coordinator
        let interval = Duration.milliseconds(Int64(coordinator.policy.heartbeatIntervalMilliseconds))
        while !Task.isCancelled && !server.isDraining {
            do {
                let started = try await storage.runIfActive { try coordinator.dispatch() }
                for dispatch in started {
                    logger.info(
                        "job started",
                        metadata: [
                            "job": "\(dispatch.lease.job)", "attempt": "\(dispatch.lease.attempt)", "engine": "\(dispatch.engine.name)",
                        ])
                }
            } catch {
                // A busy database or a closing pool: the next round tries again.
                logger.warning("dispatch failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}

/// The coordinator's side of the protocol server.
struct CoordinatorService: ProtocolService {
    let coordinator: Coordinator
    let storage: NIOThreadPool
    let eventFeed: JobEventFeed
    let statistics = ServerStatistics()

    func onStore<T: Sendable>(_ body: @escaping @Sendable (Coordinator) throws -> T) async throws -> T {
        let coordinator = coordinator
        return try await storage.runIfActive { try body(coordinator) }
    }

    func authenticate(token: String) async throws -> Int64? {
        guard !token.isEmpty else { return nil }
        return try await onStore { try $0.store.authenticate(token: token).id.rawValue }
    }

    func handle(_ request: Message, context: RequestContext, replier: Replier) async {
        do {
            let caller = context.contributor.map { ContributorID($0) }
            switch request {
            case .health:
                try await replier.finish(
                    .healthStatus(Wire.HealthStatus(
                        state: context.isDraining() ? .draining : .serving, serverVersion: CoordinatorServer.version,
                        uptimeMs: (ContinuousClock.now - context.serverStartedAt).wholeMicroseconds / 1000)))
            case .stats:
                let (queued, running) = try await onStore { coordinator in
                    (try coordinator.store.jobs(in: [.queued]).count, try coordinator.store.jobs(in: [.running]).count)
                }
                let stats = statistics.snapshot()
                try await replier.finish(
                    .statsReport(Wire.StatsReport(
                        connections: UInt32(clamping: stats.connections), requestsInFlight: UInt32(clamping: stats.requestsInFlight),
                        requestsCompleted: stats.requestsCompleted, tokensGenerated: 0, adaptersLoaded: 0,
                        jobsQueued: UInt32(clamping: queued), jobsRunning: UInt32(clamping: running),
                        latencyP50Us: stats.latencyP50Microseconds, latencyP99Us: stats.latencyP99Microseconds)))
            case .jobEvents(let events):
                try await streamEvents(of: events.job, after: events.afterSeq, context: context, replier: replier)
            default:
                try await replier.finish(try await onStore { try $0.respond(to: request, contributor: caller) })
            }
        } catch is CancellationError where replier.stream.isCancelled {
            try? await replier.fail(RequestFailure(.cancelled, "the request was cancelled"))
        } catch {
            try? await replier.fail(RequestFailure(error))
        }
    }

    /// The job's events after `after`, one credit each, then new ones as the coordinator's event feed reads them,
    /// until the final one (`done`, `failed`, `cancelled`), sent with FINAL. Needs a token and a job the caller
    /// may see (``Coordinator/authorizeWatch(job:after:contributor:)``), and a free place under the watcher limits.
    func streamEvents(of job: UInt64, after: UInt64, context: RequestContext, replier: Replier) async throws {
        let contributor = context.contributor.map { ContributorID($0) }
        let (id, start) = try await onStore { try $0.authorizeWatch(job: job, after: after, contributor: contributor) }
        let stream = replier.stream
        // Subscribed before the backlog is read, so that no event falls between the two.
        let subscription = try eventFeed.subscribe(
            job: id, connection: context.connectionID, contributor: contributor!, isCancelled: { stream.isCancelled })
        defer { subscription.cancel() }
        var after = start

        /// Sends what the store holds after `after`; true once the final event went out.
        func catchUp() async throws -> Bool {
            while true {
                let seen = after
                eventFeed.countStoreRead()
                // The state first: once it is final, the events read next include the final one.
                let (finished, events) = try await onStore { coordinator in
                    (try coordinator.store.job(id).state.isFinal, try coordinator.store.jobEvents(of: id, after: seen))
                }
                for event in events {
                    if try await send(event) { return true }
                }
                if events.isEmpty && finished {
                    // Resumed after the final event: send it again to end the stream.
                    let last = try await onStore { try $0.store.lastJobEvent(of: id) }
                    if let last { try await replier.finish(.jobEvent(Coordinator.wireEvent(last))) }
                    return true
                }
                if events.count < 1000 { return false }
            }
        }
        /// Sends one event unless already sent; true when it was the final one.
        func send(_ event: JobEvent) async throws -> Bool {
            guard event.sequence > after else { return false }
            let wire = Coordinator.wireEvent(event)
            if wire.kind.isFinal {
                try await replier.finish(.jobEvent(wire))
                return true
            }
            try await replier.send(streamed: .jobEvent(wire))
            after = event.sequence
            return false
        }

        if try await catchUp() { return }
        for await event in subscription.events {
            if subscription.takeLagged() {
                // Events were dropped while this client was slow: read them from the store.
                if try await catchUp() { return }
                continue
            }
            if try await send(event) { return }
        }
        if stream.isCancelled { throw CancellationError() }
        throw RequestFailure(.unavailable, "the coordinator is shutting down: reconnect and resume with after_seq \(after)")
    }
}

extension CoordinatorError: WireFailureConvertible {
    public var requestFailure: RequestFailure {
        switch self {
        case .refused(let code, let message): RequestFailure(code, message)
        case .invalidEngine(let message): RequestFailure(.invalidArgument, message)
        case .unknownEngine: RequestFailure(.notFound, description)
        }
    }
}
