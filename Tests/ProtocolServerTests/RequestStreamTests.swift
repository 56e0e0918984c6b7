import Testing

@testable import ProtocolServer

/// A stream's credits: taken in batches as far as they reach, waited for when there are none.
@Suite struct RequestStreamTests {
    @Test func creditsAreTakenAsFarAsTheyReachThenWaitedFor() async throws {
        let stream = RequestStream(requestID: 7, credits: 3)
        #expect(try await stream.takeCredits(upTo: 5) == 3)
        async let next = stream.takeCredits(upTo: 5)
        try await Task.sleep(for: .milliseconds(20))
        stream.grant(2)
        #expect(try await next == 2)
        stream.grant(10)
        #expect(try await stream.takeCredits(upTo: 4) == 4)
        #expect(try await stream.takeCredits(upTo: 100) == 6)
    }

    @Test func aCancelledStreamRefusesCreditsAndWakesItsWaiter() async throws {
        let stream = RequestStream(requestID: 8, credits: 0)
        let waiting = Task { try await stream.takeCredits(upTo: 1) }
        try await Task.sleep(for: .milliseconds(20))
        stream.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        await #expect(throws: CancellationError.self) { _ = try await stream.takeCredits(upTo: 1) }
    }

    /// PROTOCOL.md: a CREDIT that would raise a stream's credit above 2^31 - 1 is refused, and adds nothing.
    @Test func creditBeyondTwoToTheThirtyOneIsRefused() async throws {
        let stream = RequestStream(requestID: 9, credits: 1)
        #expect(stream.grant(UInt32(RequestStream.maxCredits) - 1))
        #expect(!stream.grant(1))
        #expect(!stream.grant(UInt32.max))
        #expect(try await stream.takeCredits(upTo: Int.max) == Int(RequestStream.maxCredits))
        #expect(stream.grant(UInt32(RequestStream.maxCredits)))
    }
}
