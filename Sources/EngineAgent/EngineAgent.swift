import Foundation
import Logging
import NIOPosix
import Serving
import Store
import Synchronization
import TributaryClient
import WireProtocol

/// Where an engine's agent finds its coordinator and what it tells it.
public struct AgentConfiguration: Sendable {
    public var coordinatorHost: String
    public var coordinatorPort: Int
    /// A contributor's token: the coordinator accepts engines from authenticated connections only.
    public var token: String
    /// Unique among the coordinator's engines; the store's leases name it.
    public var name: String
    /// Where this engine serves the protocol (`host:port`).
    public var address: String
    /// Attempts this engine runs at once, each on a thread of its own.
    public var jobSlots: Int
    /// How long to wait before connecting again after the coordinator could not be reached.
    public var reconnectDelay: Duration = .milliseconds(500)

    public init(coordinatorHost: String, coordinatorPort: Int, token: String, name: String, address: String, jobSlots: Int = 1) {
        self.coordinatorHost = coordinatorHost
        self.coordinatorPort = coordinatorPort
        self.token = token
        self.name = name
        self.address = address
        self.jobSlots = jobSlots
    }

    /// `HOST:PORT` as the two parts, or nil when it is not one.
    public static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
            colon != text.startIndex
        else { return nil }
        return (String(text[..<colon]), port)
    }
}

/// An engine's agent: registers with the coordinator, sends a heartbeat every interval (which renews the
/// leases of its running attempts; registering again when the coordinator no longer knows it, e.g. after a
/// restart), and runs the attempts the store shows leased to it with ``JobRunner``, one thread per job slot,
/// reporting through the store. The coordinator and its engines share the store and its work folder.
///
///     let agent = EngineAgent(configuration, runner: runner, logger: logger)
///     try await agent.run()           // until stop()
public final class EngineAgent: Sendable {
    public let configuration: AgentConfiguration
    public let runner: JobRunner
    private let logger: Logger
    private let slots: NIOThreadPool
    /// Store reads (SQLite may wait on a lock): off Swift's cooperative threads.
    private let storage = NIOThreadPool(numberOfThreads: 1)

    private struct State {
        var stopped = false
        /// Whether this process has given up the attempts an earlier process of this name left leased to it.
        var orphansGivenUp = false
        /// The attempts running here.
        var running: Set<JobLease> = []
        /// The last `HeartbeatAck`'s drain: the coordinator leases this engine no new jobs (those leased to it
        /// already still run here).
        var draining = false
    }

    private let state = Mutex(State())

    public init(_ configuration: AgentConfiguration, runner: JobRunner, logger: Logger) {
        precondition(configuration.jobSlots >= 1, "at least one job slot")
        self.configuration = configuration
        self.runner = runner
        self.logger = logger
        slots = NIOThreadPool(numberOfThreads: configuration.jobSlots)
    }

    /// The attempts running on this engine now.
    public var runningAttempts: Set<JobLease> { state.withLock { $0.running } }

    /// Stops taking jobs: ``run()`` returns. Attempts still running are left to their threads; if the process
    /// exits, their leases lapse and the coordinator retries them elsewhere from their last checkpoint.
    public func stop() { state.withLock { $0.stopped = true } }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    /// Connects, registers and heartbeats until ``stop()``, connecting again whenever the connection fails.
    ///
    /// - Throws: the coordinator's `ServerError` when it refuses the token (`unauthenticated`), the credential
    ///   (`permission_denied`: not an engine credential) or the name (`already_exists`: bound to another
    ///   credential): trying again cannot help.
    public func run() async throws {
        slots.start()
        storage.start()
        while !isStopped {
            do {
                try await serve()
            } catch let error as ServerError where [.unauthenticated, .permissionDenied, .alreadyExists].contains(error.errorCode) {
                logger.error("the coordinator refused this engine", metadata: ["error": "\(error)"])
                throw error
            } catch {
                guard !isStopped else { break }
                logger.warning("coordinator unreachable", metadata: ["error": "\(error)", "retry_in": "\(configuration.reconnectDelay)"])
                await sleep(configuration.reconnectDelay)
            }
        }
        logger.info("agent stopped", metadata: ["running": "\(runningAttempts.count)"])
    }

    /// One connection's life: register, then a heartbeat and a look at the store every interval.
    private func serve() async throws {
        let connection = try await TributaryConnection.connect(
            host: configuration.coordinatorHost, port: configuration.coordinatorPort, token: configuration.token,
            clientName: "tributary-engine \(configuration.name)")
        defer { Task { await connection.close() } }
        // Before this process registers, nothing can be leased to it: what the store shows leased to its name is
        // an earlier process's.
        try await giveUpOrphanedAttempts()
        var registration = try await register(on: connection)
        while !isStopped {
            do {
                if case .heartbeatAck(let ack) = try await connection.call(.engineHeartbeat(heartbeat(engine: registration.engine))) {
                    noteDrain(ack.drain)
                }
            } catch let error as ServerError where error.errorCode == .notFound {
                // The coordinator dropped this engine after missed heartbeats (e.g. a long pause).
                logger.notice("registering again", metadata: ["reason": "\(error.message)"])
                registration = try await register(on: connection)
            }
            try await startLeasedAttempts()
            // At least 10 ms: an interval of 0 from a misconfigured coordinator would spin.
            await sleep(.milliseconds(max(10, Int64(registration.heartbeatIntervalMs))))
        }
    }

    private func noteDrain(_ draining: Bool) {
        let (changed, running) = state.withLock { state in
            defer { state.draining = draining }
            return (state.draining != draining, state.running.count)
        }
        guard changed else { return }
        if draining {
            logger.notice("draining: the coordinator leases this engine no more jobs", metadata: ["running": "\(running)"])
        } else {
            logger.notice("back in dispatch: the coordinator leases this engine jobs again")
        }
    }

    /// Once per process, before its first registration: the attempts the store shows leased to this engine's name
    /// are an earlier process's (this one has started none), which died with them: they are failed, so that they
    /// count as attempts. Otherwise this engine's heartbeats would renew their leases and it would run them again,
    /// and a job that aborts its engine would take down every restart of it, never reaching its last attempt.
    private func giveUpOrphanedAttempts() async throws {
        guard state.withLock({ !$0.orphansGivenUp }) else { return }
        let (name, store) = (configuration.name, runner.store)
        let orphans = try await storage.runIfActive { () throws -> [JobLease] in
            let leases = try store.jobs(in: [.running]).filter { $0.engine == name }.map { JobLease(job: $0.id, attempt: $0.attempt, engine: name) }
            return leases.filter { lease in
                (try? store.failJobAttempt(lease, error: "engine \(name) restarted during this attempt (it may have crashed on it)")) != nil
            }
        }
        state.withLock { $0.orphansGivenUp = true }
        for lease in orphans {
            logger.warning("gave up an attempt an earlier process of this engine left", metadata: ["job": "\(lease.job)", "attempt": "\(lease.attempt)"])
        }
    }

    private func register(on connection: TributaryConnection) async throws -> Wire.EngineRegistered {
        let request = Wire.EngineRegister(
            name: configuration.name, address: configuration.address, computeSlots: UInt32(clamping: configuration.jobSlots),
            memoryBytes: ProcessInfo.processInfo.physicalMemory, maxAdapters: 0, jobKinds: [.train, .index, .evaluate])
        guard case .engineRegistered(let registered) = try await connection.call(.engineRegister(request)) else {
            throw ConnectionError.protocolViolation("EngineRegister was not answered with EngineRegistered")
        }
        logger.info("registered", metadata: ["engine": "\(registered.engine)", "heartbeat_ms": "\(registered.heartbeatIntervalMs)"])
        return registered
    }

    private func heartbeat(engine: UInt64) -> Wire.EngineHeartbeat {
        let running = runningAttempts.count
        return Wire.EngineHeartbeat(
            engine: engine, jobsRunning: UInt32(clamping: running), jobsQueued: 0, load: Float(running) / Float(configuration.jobSlots),
            freeMemoryBytes: 0, loadedAdapters: [])
    }

    /// Starts every attempt the store shows leased to this engine that is not running here yet.
    private func startLeasedAttempts() async throws {
        let (name, store) = (configuration.name, runner.store)
        let leases = try await storage.runIfActive {
            try store.jobs(in: [.running]).filter { $0.engine == name }.map { JobLease(job: $0.id, attempt: $0.attempt, engine: name) }
        }
        for lease in leases {
            let isNew = state.withLock { state -> Bool in
                guard !state.stopped, !state.running.contains(lease), state.running.count < configuration.jobSlots else { return false }
                state.running.insert(lease)
                return true
            }
            guard isNew else { continue }
            logger.info("attempt started", metadata: ["job": "\(lease.job)", "attempt": "\(lease.attempt)"])
            let (runner, slots, logger) = (runner, slots, logger)
            Task {
                do {
                    let job = try await slots.runIfActive { try runner.run(lease) }
                    logger.info("attempt ended", metadata: ["job": "\(lease.job)", "attempt": "\(lease.attempt)", "state": "\(job.state)"])
                } catch {
                    // Its lease was given up (a report came too late), or the store failed: the queue moves on.
                    logger.warning("attempt abandoned", metadata: ["job": "\(lease.job)", "attempt": "\(lease.attempt)", "error": "\(error)"])
                }
                _ = self.state.withLock { $0.running.remove(lease) }
            }
        }
    }

    /// Sleeps for `duration`, or until ``stop()``.
    private func sleep(_ duration: Duration) async {
        let deadline = ContinuousClock.now + duration
        while !isStopped, ContinuousClock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(50), deadline - ContinuousClock.now))
        }
    }
}
