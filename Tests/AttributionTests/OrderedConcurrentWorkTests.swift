import Foundation
import Synchronization
import TensorCore
import Testing
@testable import Attribution

@Suite struct OrderedConcurrentWorkTests {
    struct Failure: Error, Equatable { let index: Int }

    @Test(arguments: [1, 2, 5])
    func resultsArriveInIndexOrderWhateverTheyTake(workers: Int) throws {
        var random = SeededRandom(seed: 41)
        let delays = (0..<40).map { _ in UInt32(random.next() % 400) }  // microseconds
        var consumed: [Int] = []
        try orderedConcurrentWork(count: delays.count, workers: workers) { (index: Int) throws(Failure) -> Int in
            usleep(delays[index])
            return index * index
        } consume: { (index: Int, square: Int) throws(Failure) in
            #expect(square == index * index)
            consumed.append(index)
        }
        #expect(consumed == Array(0..<40))
    }

    @Test func theFirstFailureIsThrownAndStopsNewWork() {
        let started = Mutex(Set<Int>())
        var consumed: [Int] = []
        #expect(throws: Failure(index: 3)) {
            try orderedConcurrentWork(count: 200, workers: 2) { (index: Int) throws(Failure) -> Int in
                started.withLock { _ = $0.insert(index) }
                if index == 3 { throw Failure(index: 3) }
                return index
            } consume: { (index: Int, _: Int) throws(Failure) in
                consumed.append(index)
            }
        }
        #expect(consumed == [0, 1, 2])
        // At most 2 x workers results wait unconsumed, so the work stopped long before the end.
        #expect(started.withLock { $0.count } < 20)
    }

    @Test func aFailingConsumerStopsTheWorkers() {
        let started = Mutex(0)
        #expect(throws: Failure(index: 1)) {
            try orderedConcurrentWork(count: 500, workers: 3) { (index: Int) throws(Failure) -> Int in
                started.withLock { $0 += 1 }
                return index
            } consume: { (index: Int, _: Int) throws(Failure) in
                if index == 1 { throw Failure(index: 1) }
            }
        }
        #expect(started.withLock { $0 } < 20)
    }
}
