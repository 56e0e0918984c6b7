import Authorization
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

    /// The bound port (the configured one, or the one the system picked for port 0).
    public var localPort: Int { server.localPort }

    private init(coordinator: Coordinator, server: ProtocolServer<CoordinatorService>, storage: NIOThreadPool, logger: Logger) {
        self.coordinator = coordinator
        self.server = server
        self.storage = storage
        self.logger = logger
    }

    /// Binds the listening socket; connections are served and jobs dispatched once ``run()`` runs.
    /// `eventPollInterval`: how often a `JobEvents` stream looks for new events in the store.
    public static func bind(
        _ configuration: ServerConfiguration, coordinator: Coordinator, eventPollInterval: Duration = .milliseconds(100),
        logger: Logger
    ) async throws -> CoordinatorServer {
        let storage = NIOThreadPool(numberOfThreads: 2)
        storage.start()
        let service = CoordinatorService(coordinator: coordinator, storage: storage, eventPollInterval: eventPollInterval)
        do {
            let server = try await ProtocolServer.bind(configuration, service: service, logger: logger)
            return CoordinatorServer(coordinator: coordinator, server: server, storage: storage, logger: logger)
        } catch {
            try? await storage.shutdownGracefully()
            throw error
        }
    }

    /// Serves connections and dispatches jobs until ``shutdown()``, then drains every connection.
    public func run() async throws {
        let dispatching = Task { await dispatchLoop() }
        try await server.run()
        dispatching.cancel()
        await dispatching.value
        try? await storage.shutdownGracefully()
        logger.info("coordinator stopped")
    }

    /// Stops dispatching and accepting, sends GOAWAY, lets in-flight requests finish (job event streams end at
    /// once with `unavailable`: clients resume elsewhere with `after_seq`).
    public func shutdown() { server.shutdown() }

    private func dispatchLoop() async {
        let coordinator = coordinator
        let interval = Duration.milliseconds(Int64((coordinator.policy.heartbeatInterval * 1000).rounded()))
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
    let eventPollInterval: Duration
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
            // Who may send what (docs/SECURITY.md), before anything is read or changed.
            let caller = context.contributor.map { ContributorID($0) }
            if AccessRule.rule(for: request.type)?.readsStore == true {
                try await onStore { try Authorizer(store: $0.store).authorize(request, caller: caller) }
            } else {
                try Authorizer(store: coordinator.store).authorize(request, caller: caller)
            }
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
                        connections: UInt32(stats.connections), requestsInFlight: UInt32(stats.requestsInFlight),
                        requestsCompleted: stats.requestsCompleted, tokensGenerated: 0, adaptersLoaded: 0,
                        jobsQueued: UInt32(queued), jobsRunning: UInt32(running),
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

    /// The job's events after `after`, one credit each, then new ones as the store records them, until the
    /// final one (`done`, `failed`, `cancelled`), sent with FINAL.
    func streamEvents(of job: UInt64, after: UInt64, context: RequestContext, replier: Replier) async throws {
        var after = after
        while true {
            let seen = after
            // The state first: once it is final, the events read next include the final one.
            let (finished, events) = try await onStore { coordinator in
                (try coordinator.store.job(JobID(Int64(job))).state.isFinal, try coordinator.jobEvents(job, after: seen))
            }
            for event in events {
                if event.kind.isFinal {
                    try await replier.finish(.jobEvent(event))
                    return
                }
                try await replier.send(streamed: .jobEvent(event))
                after = event.seq
            }
            if events.isEmpty && finished {
                // Resumed after the final event: send it again to end the stream.
                let last = try await onStore { try $0.jobEvents(job, after: 0).last(where: \.kind.isFinal) }
                if let last { return try await replier.finish(.jobEvent(last)) }
            }
            if replier.stream.isCancelled { throw CancellationError() }
            if context.isDraining() {
                throw RequestFailure(.unavailable, "the coordinator is shutting down: reconnect and resume with after_seq \(after)")
            }
            try await Task.sleep(for: eventPollInterval)
        }
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
