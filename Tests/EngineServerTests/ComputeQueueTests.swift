import Foundation
import NIOPosix
import Store
import Synchronization
import Testing
import TributaryClient
import WireProtocol

@testable import EngineServer

/// The engine's compute queue: bounded per contributor and in all, and served in turns.
@Suite(.timeLimit(.minutes(2))) struct ComputeQueueTests {
    /// A latch the pool's threads wait on, so that the test decides when work ends.
    final class Latch: Sendable {
        private let open = Atomic<Bool>(false)
        func release() { open.store(true, ordering: .relaxed) }
        func wait() { while !open.load(ordering: .relaxed) { usleep(1000) } }
    }

    /// State the test's tasks share.
    final class Shared<Value: Sendable>: Sendable {
        let state: Mutex<Value>
        init(_ value: Value) { state = Mutex(value) }
        func withLock<R>(_ body: (inout Value) -> R) -> R { state.withLock { body(&$0) } }
    }

    static func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    static func overloaded(_ body: () async throws -> Void) async -> RequestFailure? {
        do {
            try await body()
            return nil
        } catch let failure as RequestFailure {
            return failure.code == .overloaded ? failure : nil
        } catch {
            return nil
        }
    }

    @Test func beyondEitherBoundWorkIsRefusedAtOnceWithARetryHint() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let queue = ComputeQueue(pool: pool, threads: 1, limits: ComputeLimits(maxQueued: 4, maxQueuedPerContributor: 3))
        let latch = Latch()
        let alice = ComputeBucket.contributor(ContributorID(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { try await queue.run(for: alice) { latch.wait() } } }
            group.addTask { try await queue.run(for: .anonymous) { latch.wait() } }
            try await Self.waitUntil { queue.held == 4 }
            // Alice's fourth: her share is full. Anyone's fifth: the queue is full.
            let mine = await Self.overloaded { try await queue.run(for: alice) {} }
            #expect(mine?.message.contains("contributor 1") == true, "\(String(describing: mine))")
            let all = await Self.overloaded { try await queue.run(for: .contributor(ContributorID(2))) {} }
            #expect(all?.message.contains("queue is full") == true, "\(String(describing: all))")
            #expect((mine?.retryAfterMs ?? 0) >= 10 && (all?.retryAfterMs ?? 0) >= 10)
            latch.release()
            try await group.waitForAll()
        }
        #expect(queue.held == 0)
        // Room again once the work has run.
        try await queue.run(for: alice) {}
        try await pool.shutdownGracefully()
    }

    /// One contributor queues 20 pieces of work; another's single piece runs next, not after the 20.
    @Test func anotherContributorsWorkRunsInItsTurnNotBehindTheQueue() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let queue = ComputeQueue(pool: pool, threads: 1, limits: ComputeLimits(maxQueued: 100, maxQueuedPerContributor: 50))
        let latch = Latch()
        let order = Shared<[String]>([])
        let flooder = ComputeBucket.contributor(ContributorID(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await queue.run(for: flooder) { latch.wait() } }
            try await Self.waitUntil { queue.held == 1 }
            for index in 0..<20 {
                group.addTask { try await queue.run(for: flooder) { order.withLock { $0.append("flood \(index)") } } }
            }
            try await Self.waitUntil { queue.held == 21 }
            group.addTask { try await queue.run(for: .contributor(ContributorID(2))) { order.withLock { $0.append("other") } } }
            try await Self.waitUntil { queue.held == 22 }
            latch.release()
            try await group.waitForAll()
        }
        let ran = order.withLock { $0 }
        #expect(ran.count == 21)
        #expect((ran.firstIndex(of: "other") ?? 99) <= 1, "\(ran)")
        try await pool.shutdownGracefully()
    }

    @Test func workCancelledWhileItWaitedDoesNotRun() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let queue = ComputeQueue(pool: pool, threads: 1, limits: ComputeLimits())
        let latch = Latch()
        let cancelled = Shared(false)
        let ran = Shared(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await queue.run(for: .anonymous) { latch.wait() } }
            try await Self.waitUntil { queue.held == 1 }
            let waiting = Task {
                try await queue.run(for: .anonymous, isCancelled: { cancelled.withLock { $0 } }) { ran.withLock { $0 = true } }
            }
            try await Self.waitUntil { queue.held == 2 }
            cancelled.withLock { $0 = true }
            latch.release()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            try await group.waitForAll()
        }
        #expect(!ran.withLock { $0 } && queue.held == 0)
        try await pool.shutdownGracefully()
    }

    /// Hundreds of inferences from one contributor against a per-contributor bound of 8: the overflow is refused
    /// `overloaded` with a retry hint at once, and another client's inference is answered meanwhile, in
    /// well under a second.
    @Test func aFloodOfInferencesIsRefusedOverloadedWhileAnotherClientIsServed() async throws {
        let server = try await TestServer.start(
            computeThreads: 1, computeLimits: ComputeLimits(maxQueued: 32, maxQueuedPerContributor: 8)
        ) { $0.maxConcurrentRequests = 400 }
        let flooder = try await server.connect()
        let other = try server.store.createContributor(displayName: "other")
        let patient = try await server.connect(token: other.token)
        let count = 300
        let outcomes = Shared<(served: Int, refused: Int, hints: Set<UInt32>, other: [String])>((0, 0, [], []))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    do {
                        let streamed = try await collect(try await flooder.stream(inferRequest("flood \(index)", maxTokens: 48)))
                        outcomes.withLock { $0.served += streamed.end == nil ? 0 : 1 }
                    } catch let error as ServerError {
                        outcomes.withLock { outcomes in
                            if error.errorCode == .overloaded {
                                outcomes.refused += 1
                                outcomes.hints.insert(error.retryAfterMs)
                            } else {
                                outcomes.other.append("\(error)")
                            }
                        }
                    }
                }
            }
            try await Self.waitUntil { outcomes.withLock { $0.refused } > 0 }
            // Served within the flood, not after it. Generous: a loaded CI host slowed this to 2.4 s once.
            let start = ContinuousClock.now
            let streamed = try await collect(try await patient.stream(inferRequest("patient", maxTokens: 8)))
            let waited = ContinuousClock.now - start
            #expect(streamed.end?.completionTokens == 8)
            #expect(waited < .seconds(10), "the other client waited \(waited)")
            try await group.waitForAll()
        }
        let (served, refused, hints, errors) = outcomes.withLock { $0 }
        #expect(errors.isEmpty, "\(errors)")
        #expect(served + refused == count)
        #expect(served >= 8 && refused > count / 2, "served \(served), refused \(refused)")
        #expect(!hints.isEmpty && hints.allSatisfy { $0 >= 10 }, "\(hints)")
        #expect(server.server.engine.computeQueue.held == 0)
        await flooder.close()
        await patient.close()
        try await server.stop()
    }
}
