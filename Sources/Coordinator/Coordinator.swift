import Foundation
import Serving
import Store
import Synchronization
import WireProtocol

/// How the coordinator paces engines and retries.
public struct CoordinatorPolicy: Sendable, Equatable {
    /// How often engines send heartbeats.
    public var heartbeatInterval: TimeInterval
    /// Heartbeats an engine may miss before it is considered gone and its running attempts are retried.
    public var missedHeartbeats: Int
    /// The backoff between attempts of a failed job.
    public var retry: RetryPolicy

    public init(heartbeatInterval: TimeInterval = 1, missedHeartbeats: Int = 3, retry: RetryPolicy = RetryPolicy()) {
        self.heartbeatInterval = heartbeatInterval
        self.missedHeartbeats = missedHeartbeats
        self.retry = retry
    }

    /// How long a running attempt's lease lasts past its engine's last heartbeat.
    public var leaseDuration: TimeInterval { heartbeatInterval * Double(missedHeartbeats) }
}

/// A registered engine as the coordinator sees it.
public struct RegisteredEngine: Sendable, Equatable {
    public var id: UInt64
    /// Unique among live engines; the store's leases name it.
    public var name: String
    /// Where it serves the protocol.
    public var address: String
    public var computeSlots: Int
    public var jobKinds: Set<JobKind>
    public var lastHeartbeat: Date
    /// The contributor whose token registered it: the one who may drain it (nil: registered in process).
    public var owner: ContributorID?
    /// Leased no more jobs; it finishes those it has. Stored by name: it holds when the engine registers again
    /// and when the coordinator restarts.
    public var draining = false
}

/// A job the coordinator started on an engine.
public struct Dispatch: Sendable, Equatable {
    public var lease: JobLease
    public var engine: RegisteredEngine
}

/// The coordinator's state machine over the store's durable job queue: the engine registry (in memory: engines
/// register again after a coordinator restart, while the queue, its leases and engine drains are on disk),
/// heartbeats that renew the leases of an engine's running attempts, and dispatch of runnable jobs to the
/// least-loaded engine that runs their kind. Networking is elsewhere; every method takes `now` so tests drive
/// the clock.
public final class Coordinator: Sendable {
    public let store: Store
    public let policy: CoordinatorPolicy
    private struct Registry {
        var engines: [UInt64: RegisteredEngine] = [:]
        var nextID: UInt64 = 1
    }
    private let registry = Mutex(Registry())

    public init(store: Store, policy: CoordinatorPolicy = CoordinatorPolicy()) {
        self.store = store
        self.policy = policy
    }

    public var engines: [RegisteredEngine] { registry.withLock { $0.engines.values.sorted { $0.id < $1.id } } }

    /// Registers an engine (again, under a new id, if its name is registered: it restarted; a drain holds).
    public func register(
        name: String, address: String, computeSlots: Int, jobKinds: Set<JobKind>, owner: ContributorID? = nil,
        now: Date = Date()
    ) throws -> RegisteredEngine {
        guard !name.isEmpty, name.utf8.count <= 200 else { throw CoordinatorError.invalidEngine("engine names are 1 to 200 bytes") }
        guard computeSlots >= 1 else { throw CoordinatorError.invalidEngine("engine \(name) offers no compute slot") }
        guard !jobKinds.isEmpty else { throw CoordinatorError.invalidEngine("engine \(name) runs no job kind") }
        // Drains and registrations are ordered by the registry's lock, the store read and written under it.
        return try registry.withLock { registry in
            let draining = try store.engineDrain(named: name) != nil
            registry.engines = registry.engines.filter { $0.value.name != name }
            let engine = RegisteredEngine(
                id: registry.nextID, name: name, address: address, computeSlots: computeSlots, jobKinds: jobKinds,
                lastHeartbeat: now, owner: owner, draining: draining)
            registry.nextID += 1
            registry.engines[engine.id] = engine
            return engine
        }
    }

    /// An engine's heartbeat: it is alive, and its running attempts' leases are renewed. Returns those leases.
    ///
    /// - Throws: ``CoordinatorError/unknownEngine(_:)`` for an engine that is not registered (it was dropped
    ///   after missing heartbeats, or the coordinator restarted): it must register again.
    public func heartbeat(engine id: UInt64, now: Date = Date()) throws -> [JobLease] {
        let name = try registry.withLock { registry -> String in
            guard registry.engines[id] != nil else { throw CoordinatorError.unknownEngine(id) }
            registry.engines[id]!.lastHeartbeat = now
            return registry.engines[id]!.name
        }
        return try store.renewLeases(engine: name, leaseDuration: policy.leaseDuration, now: now)
    }

    /// The engine registered under `id`, if it still is.
    public func engine(id: UInt64) -> RegisteredEngine? { registry.withLock { $0.engines[id] } }

    /// Drains the engine named `name` (no more jobs are leased to it; it finishes those it has), or with
    /// `draining` false takes it back into dispatch. Returns the engine.
    ///
    /// - Throws: ``CoordinatorError/refused(_:_:)``: `not_found` for no live engine of that name,
    ///   `permission_denied` unless `contributor` registered it.
    public func drain(engine name: String, draining: Bool, by contributor: ContributorID, now: Date = Date()) throws -> RegisteredEngine {
        try registry.withLock { registry in
            guard let id = registry.engines.first(where: { $0.value.name == name })?.key else {
                throw CoordinatorError.refused(.notFound, "no engine named \(name) is registered")
            }
            guard registry.engines[id]!.owner == contributor else {
                throw CoordinatorError.refused(.permissionDenied, "only the contributor whose token registered engine \(name) may drain it")
            }
            if draining {
                try store.drainEngine(named: name, by: contributor, now: now)
            } else {
                try store.resumeEngine(named: name)
            }
            registry.engines[id]!.draining = draining
            return registry.engines[id]!
        }
    }

    /// One round of the coordinator's loop: drops engines that missed their heartbeats, gives up the attempts
    /// whose leases lapsed (queued again after the backoff, resuming from their last checkpoint), then starts
    /// every runnable job on the least-loaded live engine that runs its kind and is not draining. Returns what it
    /// started.
    public func dispatch(now: Date = Date()) throws -> [Dispatch] {
        let silentAfter = policy.leaseDuration
        let live = registry.withLock { registry -> [RegisteredEngine] in
            registry.engines = registry.engines.filter { now.timeIntervalSince($0.value.lastHeartbeat) <= silentAfter }
            return registry.engines.values.sorted { $0.id < $1.id }
        }
        _ = try store.expireLeases(retry: policy.retry, now: now)
        guard !live.isEmpty else { return [] }
        var running = try runningAttemptsByEngine()
        var started: [Dispatch] = []
        for job in try store.runnableJobs(now: now) where try isReady(job) {
            let candidates = live.filter {
                !$0.draining && $0.jobKinds.contains(job.kind) && running[$0.name, default: 0] < $0.computeSlots
            }
            // Least loaded: the smallest fraction of compute slots in use, then the earliest registered.
            guard let engine = candidates.min(by: {
                Double(running[$0.name, default: 0]) / Double($0.computeSlots) < Double(running[$1.name, default: 0]) / Double($1.computeSlots)
            }) else { continue }
            let lease = try store.startJob(job.id, engine: engine.name, leaseDuration: policy.leaseDuration, now: now)
            running[engine.name, default: 0] += 1
            started.append(Dispatch(lease: lease, engine: engine))
        }
        return started
    }
}

extension Coordinator {
    /// How many attempts the store shows running on each engine, by name.
    func runningAttemptsByEngine() throws -> [String: Int] {
        Dictionary(grouping: try store.jobs(in: [.running]), by: { $0.engine ?? "" }).mapValues(\.count)
    }

    /// An evaluation's gathering job waits until every one of its retrains has ended.
    func isReady(_ job: Job) throws -> Bool {
        guard job.kind == .evaluate, case .evaluate(let evaluate)? = try? JobSpecification(decoding: job.specification) else {
            return true
        }
        return try evaluate.retrains.allSatisfy { try store.job($0).state.isFinal }
    }
}

public enum CoordinatorError: Error, Equatable, CustomStringConvertible {
    case invalidEngine(String)
    case unknownEngine(UInt64)
    /// A request refused with its wire code and a message naming what is wrong.
    case refused(ErrorCode, String)

    public var description: String {
        switch self {
        case .invalidEngine(let message), .refused(_, let message): message
        case .unknownEngine(let id): "engine \(id) is not registered: register again"
        }
    }
}
