@testable import EngineServer
import Foundation
import LlamaModel
import NIOPosix
import Testing

/// Pieces from a compute thread reach the connection's reader in order, exactly once, coalesced by the interval.
@Suite struct StreamedPieceQueueTests {
    static func pieces(_ count: Int) -> [StreamedPiece] { (0..<count).map { StreamedPiece(token: $0, text: "\($0) ") } }

    /// Pushes `pieces` from a thread of its own (as the compute pool does), then finishes; returns the batches
    /// read. With `lockstep`, each piece is pushed only once the reader has the one before.
    static func relay(_ pieces: [StreamedPiece], interval: Duration, lockstep: Bool = false) async -> [[StreamedPiece]] {
        let queue = StreamedPieceQueue(flushInterval: interval, pacedOn: MultiThreadedEventLoopGroup.singleton.next())
        let received = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for piece in pieces {
                queue.push(piece)
                if lockstep { received.wait() }
            }
            queue.finish()
        }
        var batches: [[StreamedPiece]] = []
        while true {
            let (batch, isLast) = await queue.next()
            for _ in batch { received.signal() }
            if isLast {
                // The last batch (pieces left at the end, perhaps none): nothing follows it.
                let after = await queue.next()
                #expect(after.pieces.isEmpty && after.isLast)
                if !batch.isEmpty { batches.append(batch) }
                return batches
            }
            #expect(!batch.isEmpty, "only the last batch may be empty")
            batches.append(batch)
        }
    }

    @Test func withALongIntervalAFastGenerationArrivesInAtMostThreeWrites() async {
        let sent = Self.pieces(200)
        let batches = await Self.relay(sent, interval: .seconds(3600))
        #expect(batches.joined().elementsEqual(sent))
        // The first piece at once, then (at most) one more wake-up, then the rest at the end.
        #expect(batches.count <= 3, "\(batches.map(\.count))")
    }

    @Test func withNoIntervalEachPieceWakesTheReader() async {
        let sent = Self.pieces(60)
        let batches = await Self.relay(sent, interval: .zero, lockstep: true)
        #expect(batches.map(\.count) == Array(repeating: 1, count: 60))
        #expect(batches.joined().elementsEqual(sent))
    }

    @Test func whilePiecesFlowTheReaderWakesOnItsOwnTimerAndTheEndCutsItsSleepShort() async {
        let queue = StreamedPieceQueue(flushInterval: .seconds(3600), pacedOn: MultiThreadedEventLoopGroup.singleton.next())
        let sent = Self.pieces(10)
        queue.push(sent[0])
        let first = await queue.next()
        #expect(first.pieces == [sent[0]] && !first.isLast)
        // The reader sleeps on the loop's timer now: more pieces wake nobody; the end does.
        Thread.detachNewThread {
            for piece in sent.dropFirst() { queue.push(piece) }
            Thread.sleep(forTimeInterval: 0.05)
            queue.finish()
        }
        let start = ContinuousClock.now
        let rest = await queue.next()
        #expect(rest.pieces == Array(sent.dropFirst()) && rest.isLast)
        // Far below the hour's timer, with room for a test process whose suites share two busy cores.
        #expect(ContinuousClock.now - start < .seconds(600))
    }

    @Test func aPieceThatArrivesAfterTheIntervalWakesTheReaderAtOnce() async {
        let queue = StreamedPieceQueue(flushInterval: .milliseconds(20), pacedOn: MultiThreadedEventLoopGroup.singleton.next())
        let sent = Self.pieces(2)
        queue.push(sent[0])
        _ = await queue.next()
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.1)  // the reader's timer fires first and finds nothing
            queue.push(sent[1])
        }
        let second = await queue.next()
        #expect(second.pieces == [sent[1]] && !second.isLast)
        queue.finish()
        #expect(await queue.next() == ([], true))
    }

    @Test func anEmptyGenerationEndsTheReaderAtOnce() async {
        #expect(await Self.relay([], interval: .milliseconds(1)).isEmpty)
    }
}
