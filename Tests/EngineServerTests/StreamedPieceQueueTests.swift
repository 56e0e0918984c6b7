@testable import EngineServer
import Foundation
import LlamaModel
import Testing

/// Pieces from a compute thread reach the connection's reader in order, exactly once, coalesced by the interval.
@Suite struct StreamedPieceQueueTests {
    static func pieces(_ count: Int) -> [StreamedPiece] { (0..<count).map { StreamedPiece(token: $0, text: "\($0) ") } }

    /// Pushes `pieces` from a thread of its own (as the compute pool does), then finishes; returns the batches
    /// read. With `lockstep`, each piece is pushed only once the reader has the one before.
    static func relay(_ pieces: [StreamedPiece], interval: Duration, lockstep: Bool = false) async -> [[StreamedPiece]] {
        let queue = StreamedPieceQueue(flushInterval: interval)
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

    @Test func anEmptyGenerationEndsTheReaderAtOnce() async {
        #expect(await Self.relay([], interval: .milliseconds(1)).isEmpty)
    }
}
