import Dispatch
import Foundation
import Synchronization

/// Runs `work(0..<count)` on up to `workers` threads at once and hands each result to `consume` on the
/// calling thread, in index order, as soon as it and every earlier one are done.
///
/// At most `2 × workers` results wait to be consumed, so memory stays bounded when an early item is
/// slow. The first failure (of `work` or `consume`) stops new items, waits for those under way and is
/// thrown. One worker runs everything on the calling thread. Workers are threads of their own:
/// Dispatch's global queue on Linux adds a second thread only after ~0.1 s, a whole pass.
func orderedConcurrentWork<Output: Sendable, Failure: Error>(
    count: Int, workers: Int,
    work: @escaping @Sendable (Int) throws(Failure) -> Output,
    consume: (Int, Output) throws(Failure) -> Void
) throws(Failure) {
    let workers = min(workers, count)
    if workers <= 1 {
        for index in 0..<count { try consume(index, try work(index)) }
        return
    }
    let board = WorkBoard<Output, Failure>(slots: 2 * workers)
    let running = DispatchGroup()
    for _ in 0..<workers {
        running.enter()
        Thread {
            while let index = board.claim(below: count) {
                let outcome: Result<Output, Failure>
                do throws(Failure) { outcome = .success(try work(index)) } catch { outcome = .failure(error) }
                board.finish(index, outcome)
            }
            running.leave()
        }.start()
    }
    defer {
        board.stop(wakingWorkers: workers)
        running.wait()
    }
    for index in 0..<count {
        try consume(index, try board.take(index).get())
    }
}

/// What `orderedConcurrentWork`'s workers share: the next index to claim, finished results and the
/// slots that bound them.
private final class WorkBoard<Output: Sendable, Failure: Error>: Sendable {
    private struct State {
        var next = 0
        var stopped = false
        var finished: [Int: Result<Output, Failure>] = [:]
    }

    private let state = Mutex(State())
    /// Signalled once per finished result.
    private let resultReady = DispatchSemaphore(value: 0)
    /// Claims not yet consumed, at most `slots`.
    private let freeSlots = DispatchSemaphore(value: 0)

    init(slots: Int) {
        // Signalled rather than created with the count: Dispatch traps when a semaphore is freed
        // below the value it was created with, which a stopped board may be.
        for _ in 0..<slots { freeSlots.signal() }
    }

    /// The next index to compute, or nil when all are claimed or the work stopped.
    func claim(below count: Int) -> Int? {
        freeSlots.wait()
        return state.withLock { state in
            guard !state.stopped, state.next < count else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    func finish(_ index: Int, _ outcome: Result<Output, Failure>) {
        state.withLock { $0.finished[index] = outcome }
        resultReady.signal()
    }

    /// Waits for `index`'s result and frees its slot.
    func take(_ index: Int) -> Result<Output, Failure> {
        while true {
            if let outcome = state.withLock({ $0.finished.removeValue(forKey: index) }) {
                freeSlots.signal()
                return outcome
            }
            resultReady.wait()
        }
    }

    /// No more claims; wakes workers waiting for a slot so that they see it.
    func stop(wakingWorkers workers: Int) {
        state.withLock { $0.stopped = true }
        for _ in 0..<workers { freeSlots.signal() }
    }
}
