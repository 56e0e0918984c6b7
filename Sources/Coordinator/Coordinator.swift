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
    /// A running attempt that reports nothing (no progress, no checkpoint) for this long is given up and retried,
    /// even while its engine sends heartbeats: an engine that only heartbeats cannot hold a job forever. Generous,
    /// since a slow step or a slow 5% of an index reports nothing in between.
    public var attemptStallTimeout: TimeInterval

    public init(
        heartbeatInterval: TimeInterval = 1, missedHeartbeats: Int = 3, retry: RetryPolicy = RetryPolicy(),
        attemptStallTimeout: TimeInterval = 3600
    ) {
        self.heartbeatInterval = heartbeatInterval
        self.missedHeartbeats = missedHeartbeats
        self.retry = retry
        self.attemptStallTimeout = attemptStallTimeout
    }

    /// The heartbeat interval as `EngineRegistered` says it, in milliseconds (saturating: never traps).
    public var heartbeatIntervalMilliseconds: UInt32 {
        let milliseconds = (heartbeatInterval * 1000).rounded()
        return milliseconds.isFinite ? UInt32(clamping: Int64(exactly: min(milliseconds, 4e9)) ?? Int64(UInt32.max)) : UInt32.max
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
    /// The credential that registered it, to which its name is bound (the store's `engine_binding`): the one who
    /// heartbeats it and, with operators, drains it (nil: registered in process).
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

    /// The most compute slots an engine may offer.
    public static let maximumComputeSlots = 4096

    /// Registers an engine (again, under a new id, if its name is registered: it restarted; a drain holds).
    ///
    /// With an `owner` (every registration over the wire, where `Authorizer` admitted only engine credentials), the
    /// name is bound to the owner in the store the first time: registering a name bound to
    /// another credential is refused with `already_exists`, so nobody takes over (and drains, or heartbeats)
    /// another's engine by its name, even after a coordinator restart. Nothing is written before the request is
    /// validated and authorized.
    public func register(
        name: String, address: String, computeSlots: Int, jobKinds: Set<JobKind>, owner: ContributorID? = nil,
        now: Date = Date()
    ) throws -> RegisteredEngine {
        guard !name.isEmpty, name.utf8.count <= 200, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw CoordinatorError.invalidEngine("name: engine names are 1 to 200 bytes, without control characters")
        }
        guard address.utf8.count <= 300 else { throw CoordinatorError.invalidEngine("address: at most 300 bytes") }
        guard computeSlots >= 1 else { throw CoordinatorError.invalidEngine("compute_slots: engine \(name) offers no compute slot") }
        guard computeSlots <= Self.maximumComputeSlots else {
            throw CoordinatorError.invalidEngine("compute_slots: \(computeSlots) is more than \(Self.maximumComputeSlots)")
        }
        guard !jobKinds.isEmpty else { throw CoordinatorError.invalidEngine("job_kinds: engine \(name) runs no job kind") }
        if let owner {
            let binding = try store.bindEngine(named: name, to: owner, now: now)
            guard binding.contributor == owner else {
                throw CoordinatorError.refused(
                    .alreadyExists, "the engine name \(name) is bound to another credential (\(binding.contributor)): register under another name")
            }
        }
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
    /// With `contributor` (every heartbeat over the wire), only the credential that registered the engine may send
    /// it: another's heartbeat would keep a dead engine's leases alive.
    ///
    /// - Throws: ``CoordinatorError/unknownEngine(_:)`` for an engine that is not registered (it was dropped
    ///   after missing heartbeats, or the coordinator restarted): it must register again. `permission_denied` for
    ///   an engine another credential registered.
    public func heartbeat(engine id: UInt64, by contributor: ContributorID? = nil, now: Date = Date()) throws -> [JobLease] {
        let name = try registry.withLock { registry -> String in
            guard let engine = registry.engines[id] else { throw CoordinatorError.unknownEngine(id) }
            if let contributor, engine.owner != contributor {
                throw CoordinatorError.refused(.permissionDenied, "engine \(id) was registered by another credential: heartbeat your own engines")
            }
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
    /// - Throws: ``CoordinatorError/refused(_:_:)``: `permission_denied` unless the engine's name is bound to
    ///   `contributor` or it is an operator (engine credentials only reach here: `Authorizer`); `not_found` for no
    ///   live engine of that name.
    public func drain(engine name: String, draining: Bool, by contributor: ContributorID, now: Date = Date()) throws -> RegisteredEngine {
        let isOperator = try store.isOperator(contributor)
        return try registry.withLock { registry in
            guard let id = registry.engines.first(where: { $0.value.name == name })?.key else {
                throw CoordinatorError.refused(.notFound, "no engine named \(name) is registered")
            }
            guard registry.engines[id]!.owner == contributor || isOperator else {
                throw CoordinatorError.refused(.permissionDenied, "only the credential that registered engine \(name), or an operator, may drain it")
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
        _ = try store.expireStalledAttempts(stalledAfter: policy.attemptStallTimeout, retry: policy.retry, now: now)
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
