import NIOCore
import NIOEmbedded
import Synchronization
import Testing
import WireProtocol

@testable import ProtocolServer

/// A request's replies as the channel sees them: credits taken, frames in order, and which frames share a
/// flush (one socket write).
@Suite struct ReplierTests {
    /// Counts the frames written between flushes.
    final class FlushRecorder: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Envelope
        typealias OutboundOut = Envelope
        private let counts = Mutex((pending: 0, framesPerFlush: [Int]()))

        var framesPerFlush: [Int] { counts.withLock { $0.framesPerFlush } }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            counts.withLock { $0.pending += 1 }
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            counts.withLock { counts in
                counts.framesPerFlush.append(counts.pending)
                counts.pending = 0
            }
            context.flush()
        }
    }

    static func token(_ index: UInt32) -> Message { .token(Wire.Token(index: index, token: index + 100, text: "t\(index)")) }

    static let end = Message.inferEnd(Wire.InferEnd(
        stopReason: .maxTokens, promptTokens: 4, completionTokens: 3, promptUs: 10, generationUs: 20))

    /// Runs `body` with a replier for request 9 with `credits`, over a testing channel; returns the frames
    /// written and how many went out in each flush.
    static func replies(
        credits: UInt32, _ body: @Sendable (Replier) async throws -> Void
    ) async throws -> (frames: [Envelope], framesPerFlush: [Int]) {
        let recorder = FlushRecorder()
        let channel = NIOAsyncTestingChannel()
        try await channel.pipeline.addHandler(recorder)
        let wrapped = try await channel.testingEventLoop.executeInContext {
            try NIOAsyncChannel<Envelope, Envelope>(wrappingChannelSynchronously: channel)
        }
        try await wrapped.executeThenClose { _, outbound in
            try await body(Replier(stream: RequestStream(requestID: 9, credits: credits), outbound: outbound, eventLoop: channel.eventLoop))
        }
        var frames: [Envelope] = []
        while let frame = try await channel.readOutbound(as: Envelope.self) { frames.append(frame) }
        return (frames, recorder.framesPerFlush)
    }

    @Test func theLastStreamedFramesAndTheEndShareOneWrite() async throws {
        let (frames, flushes) = try await Self.replies(credits: 8) { replier in
            try await replier.send(streamed: [Self.token(0), Self.token(1)])
            try await replier.send(streamed: [Self.token(2)], then: Self.end, final: true)
        }
        #expect(frames.map(\.message) == [Self.token(0), Self.token(1), Self.token(2), Self.end])
        #expect(frames.map(\.flags) == [FrameFlags(), [], [], .final])
        #expect(frames.allSatisfy { $0.requestID == 9 })
        #expect(flushes == [2, 2])
    }

    @Test func withoutCreditsTheEndWaitsBehindTheStreamedFrames() async throws {
        let (frames, flushes) = try await Self.replies(credits: 1) { replier in
            async let sending: Void = replier.send(streamed: [Self.token(0), Self.token(1), Self.token(2)], then: Self.end, final: false)
            try await Task.sleep(for: .milliseconds(20))
            replier.stream.grant(5)
            try await sending
        }
        #expect(frames.map(\.message) == [Self.token(0), Self.token(1), Self.token(2), Self.end])
        #expect(frames.map(\.flags) == [FrameFlags(), [], [], []])
        #expect(flushes == [1, 3])
    }

    @Test func anEndWithNothingStreamedTakesNoCredit() async throws {
        let (frames, flushes) = try await Self.replies(credits: 0) { replier in
            try await replier.send(streamed: [], then: Self.end, final: true)
        }
        #expect(frames.map(\.message) == [Self.end])
        #expect(frames.map(\.flags) == [FrameFlags.final])
        #expect(flushes == [1])
    }
}
