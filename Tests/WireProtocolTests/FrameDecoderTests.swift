import NIOCore
import NIOEmbedded
import NIOTestUtils
import TensorCore
import Testing

@testable import WireProtocol

@Suite("Frame decoder and encoder on NIO")
struct FrameDecoderTests {
    static func envelopes(_ count: Int, seed: UInt64) -> [Envelope] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { i in
            let type = MessageType.allCases[i % MessageType.allCases.count]
            return Envelope(requestID: UInt64(i + 1), message: .random(type, using: &rng))
        }
    }

    @Test func byteToMessageDecoderVerifier() throws {
        let pairs = Self.envelopes(40, seed: 3).map { envelope in (envelope.frameBytes, [envelope.frame]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    @Test func coalescedAndSplitFrames() throws {
        let envelopes = Self.envelopes(60, seed: 4)
        var stream = ByteBuffer()
        for envelope in envelopes { envelope.write(to: &stream) }

        // All frames in one read, then the same bytes in reads of 1 to 97 bytes.
        for chunkSize in [stream.readableBytes, 1, 7, 16, 97] {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
            var input = stream
            while input.readableBytes > 0 {
                try channel.writeInbound(input.readSlice(length: min(chunkSize, input.readableBytes))!)
            }
            var decoded: [Envelope] = []
            while let frame = try channel.readInbound(as: Frame.self) { decoded.append(try Envelope(decoding: frame)) }
            #expect(decoded == envelopes, "chunks of \(chunkSize)")
            #expect(try channel.finish().isClean)
        }
    }

    @Test func oversizedLengthIsRefusedFromItsFourBytes() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayload: 4096)))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(4097))
        #expect(throws: WireError.frameTooLarge(length: 4097, limit: 4096)) { try channel.writeInbound(buffer) }
        _ = try? channel.finish()
    }

    @Test func aFrameAtTheLimitPasses() throws {
        let envelope = Envelope(requestID: 1, message: .exportChunk(.init(jsonl: Array(repeating: 0x61, count: 4092))))
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayload: 4096)))
        try channel.writeInbound(envelope.frameBytes)
        #expect(try Envelope(decoding: #require(try channel.readInbound(as: Frame.self))) == envelope)
        #expect(try channel.finish().isClean)
    }

    /// A server's first frame (HELLO) is held to the handshake limit from its 4 length bytes, whatever the
    /// post-handshake limit: a 16 MiB announcement is refused with nothing of it buffered.
    @Test func theFirstFrameHasTheHandshakeLimitFromItsFourBytes() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(
            maxPayload: FrameLimits.absoluteMaxPayload, firstFrameMaxPayload: FrameLimits.handshakeMaxPayload)))
        var buffer = ByteBuffer()
        buffer.writeInteger(FrameLimits.absoluteMaxPayload)
        #expect(throws: WireError.frameTooLarge(length: FrameLimits.absoluteMaxPayload, limit: FrameLimits.handshakeMaxPayload)) {
            try channel.writeInbound(buffer)
        }
        _ = try? channel.finish()
    }

    @Test func afterTheFirstFrameTheNegotiatedLimitApplies() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxPayload: 1 << 20, firstFrameMaxPayload: 4096)))
        let small = Envelope(requestID: 0, message: .ping(.init(opaque: 7)))
        let large = Envelope(requestID: 1, message: .exportChunk(.init(jsonl: Array(repeating: 0x61, count: 100_000))))
        try channel.writeInbound(small.frameBytes)
        try channel.writeInbound(large.frameBytes)
        #expect(try Envelope(decoding: #require(try channel.readInbound(as: Frame.self))) == small)
        #expect(try Envelope(decoding: #require(try channel.readInbound(as: Frame.self))) == large)
        #expect(try channel.finish().isClean)
    }

    @Test func badHeadersAreRefusedBeforeThePayloadArrives() throws {
        for (header, error) in [
            ([0, 0, 0, 100, 2, 3, 0, 0] + [UInt8](repeating: 0, count: 8), WireError.unsupportedVersion(2)),
            ([0, 0, 0, 100, 1, 3, 0, 2] + [UInt8](repeating: 0, count: 8), WireError.reservedFlags(2)),
        ] {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
            #expect(throws: error) { try channel.writeInbound(ByteBuffer(bytes: header)) }
            _ = try? channel.finish()
        }
    }

    @Test func encoderWritesWhatEnvelopeWrites() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(EnvelopeEncoder()))
        for envelope in Self.envelopes(20, seed: 5) {
            try channel.writeOutbound(envelope)
            #expect(try channel.readOutbound(as: ByteBuffer.self) == envelope.frameBytes)
        }
        #expect(try channel.finish().isClean)
    }
}
