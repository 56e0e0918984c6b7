import NIOCore
import NIOEmbedded
import TensorCore
import Testing
import WireProtocol

@testable import ProtocolServer

/// The connection's protocol handler on an EmbeddedChannel, bytes in and bytes out, as a server pipeline has it.
@Suite struct ProtocolHandlerTests {
    let channel = EmbeddedChannel()

    init() throws {
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(FrameDecoder(maxPayload: 4096)), MessageToByteHandler(EnvelopeEncoder()), ProtocolHandler())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
    }

    static func hello(
        minVersion: UInt16 = 1, maxVersion: UInt16 = 1, magic: UInt32 = WireVersion.helloMagic, maxFrameSize: UInt32 = 1 << 20,
        streamCredits: UInt32 = 8, clientName: String = "test"
    ) -> Envelope {
        Envelope(requestID: 0, message: .hello(Wire.Hello(
            magic: magic, minVersion: minVersion, maxVersion: maxVersion, features: 0, authToken: "", maxFrameSize: maxFrameSize,
            streamCredits: streamCredits, clientName: clientName)))
    }

    static let welcome = Envelope(requestID: 0, message: .welcome(Wire.Welcome(
        version: 1, features: 0, maxFrameSize: 1 << 20, maxConcurrentRequests: 64, contributor: nil, serverName: "test")))

    /// A channel with a server's pipeline (the handshake limit on the first frame) and `gate`.
    static func serverChannel(gate: HandshakeGate) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(FrameDecoder(maxPayload: FrameLimits.absoluteMaxPayload, firstFrameMaxPayload: FrameLimits.handshakeMaxPayload)),
            MessageToByteHandler(EnvelopeEncoder()), ProtocolHandler(handshake: gate))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
        return channel
    }

    static func errorCode(of channel: EmbeddedChannel) throws -> ErrorCode? {
        guard var out = try channel.readOutbound(as: ByteBuffer.self),
            let frame = try Frame.read(from: &out, maxPayload: FrameLimits.absoluteMaxPayload),
            case .errorReply(let error) = try Envelope(decoding: frame).message
        else { return nil }
        return ErrorCode(rawValue: error.code)
    }

    func send(_ envelope: Envelope) throws {
        var buffer = channel.allocator.buffer(capacity: 64)
        envelope.write(to: &buffer)
        try send(buffer)
    }

    func send(_ bytes: ByteBuffer) throws {
        do {
            try channel.writeInbound(bytes)
        } catch {
            // The decoder's error reaches the protocol handler, which answers it; EmbeddedChannel rethrows it too.
        }
    }

    /// Every frame the handler wrote, decoded.
    func written() throws -> [Envelope] {
        var all = channel.allocator.buffer(capacity: 0)
        while var chunk = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&chunk) }
        var envelopes: [Envelope] = []
        while let frame = try Frame.read(from: &all, maxPayload: FrameLimits.absoluteMaxPayload) {
            envelopes.append(try Envelope(decoding: frame))
        }
        return envelopes
    }

    func errorCode(_ envelope: Envelope?) -> ErrorCode? {
        guard case .errorReply(let error) = envelope?.message else { return nil }
        return ErrorCode(rawValue: error.code)
    }

    @Test func aValidHelloPassesUpAndPingsAreAnswered() throws {
        try send(Self.hello())
        let received = try channel.readInbound(as: Envelope.self)
        #expect(received == Self.hello())
        try send(Envelope(requestID: 0, message: .ping(Wire.Ping(opaque: 42))))
        #expect(try written() == [Envelope(requestID: 0, message: .pong(Wire.Pong(opaque: 42)))])
        try send(Envelope(requestID: 5, message: .health(Wire.Health())))
        #expect(try channel.readInbound(as: Envelope.self)?.requestID == 5)
        #expect(channel.isActive)
    }

    @Test func anEchoIsAnsweredHereWithItsPayloadAndNothingPassesUp() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        var random = SeededRandom(seed: 74)
        let payload = (0..<777).map { _ in UInt8.random(in: 0...255, using: &random) }
        try send(Envelope(requestID: 9, message: .echo(Wire.Echo(payload: payload))))
        #expect(try written() == [Envelope(requestID: 9, flags: .final, message: .echoed(Wire.Echoed(payload: payload)))])
        #expect(try channel.readInbound(as: Envelope.self) == nil)
        // Off request id 0 only, like any request.
        try send(Envelope(requestID: 0, message: .echo(Wire.Echo(payload: payload))))
        #expect(errorCode(try written().first) == .duplicateRequestID)
        #expect(!channel.isActive)
    }

    @Test func aRequestBeforeHelloIsRefusedAndTheConnectionClosed() throws {
        try send(Envelope(requestID: 1, message: .health(Wire.Health())))
        let replies = try written()
        #expect(replies.count == 1 && replies.first?.requestID == 0)
        #expect(errorCode(replies.first) == .handshakeRequired)
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: Envelope.self) == nil)
    }

    @Test(arguments: [(UInt16(2), UInt16(3)), (UInt16(0), UInt16(0)), (UInt16(3), UInt16(1))])
    func aVersionThisServerDoesNotSpeakIsRefused(versions: (UInt16, UInt16)) throws {
        try send(Self.hello(minVersion: versions.0, maxVersion: versions.1))
        let replies = try written()
        #expect(errorCode(replies.first) == .unsupportedVersion)
        #expect(!channel.isActive)
    }

    @Test func aWrongMagicIsClosedWithoutAnswering() throws {
        try send(Self.hello(magic: 0x4854_5450))
        #expect(try written().isEmpty)
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: Envelope.self) == nil)
    }

    /// HELLO's fields outside PROTOCOL.md's ranges: `invalid_message` naming the field, and the connection closed.
    @Test(arguments: [
        (hello: hello(maxFrameSize: 16), field: "max_frame_size"),
        (hello: hello(maxFrameSize: 4095), field: "max_frame_size"),
        (hello: hello(maxFrameSize: (1 << 24) + 1), field: "max_frame_size"),
        (hello: hello(streamCredits: 0), field: "stream_credits"),
        (hello: hello(streamCredits: 65_536), field: "stream_credits"),
        (hello: hello(clientName: String(repeating: "n", count: 201)), field: "client_name"),
    ])
    func aHelloFieldOutOfRangeIsRefusedByName(hello: Envelope, field: String) throws {
        try send(hello)
        let replies = try written()
        guard case .errorReply(let error) = replies.first?.message else {
            Issue.record("expected ERROR, got \(replies)")
            return
        }
        #expect(ErrorCode(rawValue: error.code) == .invalidMessage && replies.first?.requestID == 0)
        #expect(error.message.contains(field), "\(error.message)")
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: Envelope.self) == nil)
    }

    @Test func theRangesEndsAreAccepted() throws {
        try send(Self.hello(maxFrameSize: 4096, streamCredits: 65_535, clientName: String(repeating: "é", count: 100)))
        #expect(try channel.readInbound(as: Envelope.self) != nil)
        #expect(channel.isActive)
    }

    @Test func aSecondHelloIsHandshakeRequired() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        try send(Self.hello())
        #expect(errorCode(try written().first) == .handshakeRequired)
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: Envelope.self) == nil)
    }

    @Test func aRequestOnRequestIdZeroIsDuplicateRequestID() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        try send(Envelope(requestID: 0, message: .health(Wire.Health())))
        let replies = try written()
        #expect(errorCode(replies.first) == .duplicateRequestID && replies.first?.requestID == 0)
        #expect(!channel.isActive)
        #expect(try channel.readInbound(as: Envelope.self) == nil)
    }

    /// A 16 MiB frame announced before HELLO, on a pipeline that admits 16 MiB after the handshake: refused from
    /// its 4 length bytes with the handshake limit, and nothing passes up.
    @Test func aHugeFrameBeforeHelloIsRefusedFromItsLength() throws {
        let server = try Self.serverChannel(gate: HandshakeGate(limit: 4, timeout: .seconds(10)))
        var header = server.allocator.buffer(capacity: 16)
        header.writeMultipleIntegers(FrameLimits.absoluteMaxPayload, UInt8(1), MessageType.hello.rawValue, UInt16(0), UInt64(0), endianness: .big)
        _ = try? server.writeInbound(header)
        #expect(try Self.errorCode(of: server) == .frameTooLarge)
        #expect(!server.isActive)
        #expect(try server.readInbound(as: Envelope.self) == nil)
    }

    @Test func aHandshakeThatDoesNotFinishInTimeIsRefusedAndClosed() throws {
        let gate = HandshakeGate(limit: 4, timeout: .seconds(2))
        let silent = try Self.serverChannel(gate: gate)
        let welcomed = try Self.serverChannel(gate: gate)
        #expect(gate.handshaking == 2)
        var hello = welcomed.allocator.buffer(capacity: 64)
        Self.hello().write(to: &hello)
        try welcomed.writeInbound(hello)
        _ = try welcomed.readInbound(as: Envelope.self)
        try welcomed.writeOutbound(Self.welcome)
        #expect(gate.handshaking == 1)
        silent.embeddedEventLoop.advanceTime(by: .milliseconds(1999))
        #expect(silent.isActive)
        silent.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try Self.errorCode(of: silent) == .timeout)
        #expect(!silent.isActive)
        #expect(gate.handshaking == 0)
        // A connection past its WELCOME has no handshake clock.
        welcomed.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(welcomed.isActive)
    }

    @Test func beyondTheHandshakeLimitTheOldestConnectionInItsHandshakeMakesRoom() throws {
        let gate = HandshakeGate(limit: 2, timeout: .seconds(10))
        let first = try Self.serverChannel(gate: gate)
        let second = try Self.serverChannel(gate: gate)
        let third = try Self.serverChannel(gate: gate)
        first.embeddedEventLoop.run()
        var out = try #require(try first.readOutbound(as: ByteBuffer.self))
        let refusal = try Envelope(decoding: #require(try Frame.read(from: &out, maxPayload: 1 << 20)))
        guard case .errorReply(let error) = refusal.message else {
            Issue.record("expected ERROR, got \(refusal)")
            return
        }
        #expect(ErrorCode(rawValue: error.code) == .overloaded && refusal.requestID == 0 && error.retryAfterMs > 0)
        #expect(!first.isActive)
        #expect(second.isActive && third.isActive && gate.handshaking == 2)
        // A connection that goes makes room without refusing anyone.
        try second.close().wait()
        #expect(gate.handshaking == 1)
        let fourth = try Self.serverChannel(gate: gate)
        #expect(fourth.isActive && third.isActive && gate.handshaking == 2)
    }

    /// A reply larger than HELLO's `max_frame_size` would break the client's connection: it goes out as
    /// `too_large` on its request instead, naming both sizes; one within the limit goes out as it is.
    @Test func aReplyOverTheClientsFrameSizeBecomesTooLarge() throws {
        try send(Self.hello(maxFrameSize: 4096))
        _ = try channel.readInbound(as: Envelope.self)
        func echoed(_ count: Int, requestID: UInt64) throws -> Envelope? {
            try channel.writeOutbound(Envelope(requestID: requestID, flags: .final, message: .balances(Wire.Balances(
                balances: (0..<count).map { Wire.Balance(contributor: Int64($0), amount: Int64($0)) }))))
            return try written().first
        }
        // 19 bytes a balance: 200 fit in 4096 bytes, 300 do not.
        guard case .balances(let fits)? = try echoed(200, requestID: 3)?.message else {
            Issue.record("a reply within the limit was not sent as it is")
            return
        }
        #expect(fits.balances.count == 200)
        let refused = try #require(try echoed(300, requestID: 4))
        #expect(refused.requestID == 4 && refused.flags == .final && errorCode(refused) == .tooLarge)
        guard case .errorReply(let error) = refused.message else { return }
        #expect(error.message.contains("over your max_frame_size of 4096"))
        #expect(channel.isActive)
    }

    @Test func aMalformedPayloadOnARequestIdIsAnsweredThereAndTheConnectionGoesOn() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        // A HEALTH request (no fields) with two stray payload bytes.
        var bad = channel.allocator.buffer(capacity: 32)
        bad.writeMultipleIntegers(UInt32(2), UInt8(1), MessageType.health.rawValue, UInt16(0), UInt64(9), endianness: .big)
        bad.writeBytes([0xAB, 0xCD])
        try send(bad)
        let replies = try written()
        #expect(replies.count == 1 && replies.first?.requestID == 9 && replies.first?.flags == .final)
        #expect(errorCode(replies.first) == .invalidMessage)
        #expect(channel.isActive)
        try send(Envelope(requestID: 10, message: .health(Wire.Health())))
        #expect(try channel.readInbound(as: Envelope.self)?.requestID == 10)
    }

    @Test func anUnknownMessageTypeOnRequestIdZeroClosesTheConnection() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        var bad = channel.allocator.buffer(capacity: 16)
        bad.writeMultipleIntegers(UInt32(0), UInt8(1), UInt8(0xEE), UInt16(0), UInt64(0), endianness: .big)
        try send(bad)
        #expect(errorCode(try written().first) == .unknownMessageType)
        #expect(!channel.isActive)
    }

    @Test func aReplyTypeFromTheClientIsRefusedOnItsRequestId() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        try send(Envelope(requestID: 3, message: .healthStatus(Wire.HealthStatus(state: .serving, serverVersion: "x", uptimeMs: 1))))
        let replies = try written()
        #expect(replies.first?.requestID == 3 && errorCode(replies.first) == .invalidMessage)
        #expect(channel.isActive)
        // A connection-level message off request id 0 breaks the connection.
        try send(Envelope(requestID: 3, message: .pong(Wire.Pong(opaque: 1))))
        #expect(errorCode(try written().first) == .invalidMessage)
        #expect(!channel.isActive)
    }

    @Test func anOversizedFrameIsRefusedBeforeItsPayloadArrives() throws {
        try send(Self.hello())
        _ = try channel.readInbound(as: Envelope.self)
        // Only the header: a 1 MiB payload is announced, above the pipeline's 4096-byte limit.
        var header = channel.allocator.buffer(capacity: 16)
        header.writeMultipleIntegers(UInt32(1 << 20), UInt8(1), MessageType.infer.rawValue, UInt16(0), UInt64(4), endianness: .big)
        try send(header)
        let replies = try written()
        #expect(errorCode(replies.first) == .frameTooLarge && replies.first?.requestID == 0)
        #expect(!channel.isActive)
    }

    @Test func anOversizedHelloIsRefused() throws {
        // The pipeline admits 4096 bytes; the handshake limit is 64 KiB, so use a pipeline with a larger limit.
        let big = EmbeddedChannel()
        try big.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(FrameDecoder(maxPayload: 1 << 20)), MessageToByteHandler(EnvelopeEncoder()), ProtocolHandler())
        try big.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
        let hello = Envelope(requestID: 0, message: .hello(Wire.Hello(
            magic: WireVersion.helloMagic, minVersion: 1, maxVersion: 1, features: 0,
            authToken: String(repeating: "x", count: 70_000), maxFrameSize: 1 << 20, streamCredits: 8, clientName: "big")))
        var buffer = big.allocator.buffer(capacity: 80_000)
        hello.write(to: &buffer)
        try big.writeInbound(buffer)
        var out = try big.readOutbound(as: ByteBuffer.self)!
        let reply = try Envelope(decoding: try Frame.read(from: &out, maxPayload: 1 << 20)!)
        #expect(errorCode(reply) == .frameTooLarge)
        #expect(!big.isActive)
    }
}
