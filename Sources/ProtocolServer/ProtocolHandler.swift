import NIOCore
import WireProtocol

/// The connection's protocol rules that need no application state, on the event loop: frames become typed
/// envelopes, the first frame must be a HELLO this server can speak, PING and ECHO are answered here, and a frame
/// that breaks the protocol gets an ERROR frame. A broken payload on an open request id is refused on that id
/// and the connection goes on; anything wrong on request id 0 or in the framing itself gets an ERROR on
/// request id 0, then the connection is closed (other connections are untouched).
///
/// What passes upward: the HELLO (once), requests, CREDIT and CANCEL. Authentication and WELCOME are the
/// application's (they need the store, which never runs on an event loop).
///
/// Until its WELCOME goes out a connection counts against the server's ``HandshakeGate``: beyond the gate's
/// limit the oldest connection in its handshake is refused (`overloaded`) to make room, and one still without
/// WELCOME after the gate's timeout is refused (`timeout`) and closed.
public final class ProtocolHandler: ChannelDuplexHandler {
    public typealias InboundIn = Frame
    public typealias InboundOut = Envelope
    public typealias OutboundIn = Envelope
    public typealias OutboundOut = Envelope

    enum State {
        case awaitingHello
        case open
        case closed
    }

    private var state = State.awaitingHello
    /// A read held back while the connection's replies are backed up past the write-buffer high mark.
    private var readPending = false

    private let statistics: ServerStatistics
    private let handshake: HandshakeGate
    /// Whether this connection has been counted in by the gate.
    private var handshakeStarted = false
    /// The gate's ticket while this connection is counted in it: from its start to its WELCOME, refusal or end.
    private var handshakeTicket: UInt64?
    private var handshakeTimer: Scheduled<Void>?
    /// HELLO's `max_frame_size`: no reply payload may exceed it (PROTOCOL.md, "Limits").
    private var peerMaxPayload = FrameLimits.handshakeMaxPayload

    /// HELLO's `stream_credits` (PROTOCOL.md, handshake).
    static let streamCreditRange: ClosedRange<UInt32> = 1...65_535
    /// HELLO's `client_name`, in UTF-8 bytes.
    static let maxClientNameBytes = 200

    public init(
        statistics: ServerStatistics = ServerStatistics(), handshake: HandshakeGate = HandshakeGate(limit: 256, timeout: .seconds(10))
    ) {
        self.statistics = statistics
        self.handshake = handshake
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startHandshake(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        startHandshake(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        endHandshake()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        endHandshake()
    }

    /// Counts the connection in (refusing the oldest one in its handshake, past the gate's limit) and starts its
    /// handshake's clock.
    private func startHandshake(context: ChannelHandlerContext) {
        guard !handshakeStarted else { return }
        handshakeStarted = true
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        handshakeTicket = handshake.enter {
            loop.execute { bound.value.handler.handshakeEvicted(context: bound.value.context) }
        }
        handshakeTimer = context.eventLoop.scheduleTask(in: handshake.timeout) {
            bound.value.handler.handshakeTimedOut(context: bound.value.context)
        }
    }

    private func handshakeTimedOut(context: ChannelHandlerContext) {
        guard handshakeTicket != nil else { return }
        endHandshake()
        refuse(context: context, .timeout, "the handshake did not complete within \(handshake.timeout.nanoseconds / 1_000_000) ms")
    }

    private func handshakeEvicted(context: ChannelHandlerContext) {
        guard handshakeTicket != nil else { return }
        endHandshake()
        refuse(
            context: context, .overloaded,
            "\(handshake.limit) newer connections are in their handshake: this one made room; finish the handshake sooner",
            retryAfterMs: 100)
    }

    /// The connection leaves the gate: WELCOME went out, it was refused, or it ended. Idempotent.
    private func endHandshake() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if let ticket = handshakeTicket {
            handshakeTicket = nil
            handshake.leave(ticket)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let envelope = unwrapOutboundIn(data)
        switch envelope.message {
        case .welcome:
            endHandshake()
        case .token, .exportChunk, .errorReply:
            // Tokens are small and hot; export chunks are cut below the client's limit; errors are bounded.
            break
        default:
            if let oversized = oversizedReply(envelope, allocator: context.channel.allocator) {
                return context.write(wrapOutboundOut(oversized), promise: promise)
            }
        }
        context.write(data, promise: promise)
    }

    /// A reply larger than the client accepts would break its connection: it becomes `too_large` on its request,
    /// saying how large it was, so the client can ask for less (a smaller `limit`, a filter) or a larger frame size.
    private func oversizedReply(_ envelope: Envelope, allocator: ByteBufferAllocator) -> Envelope? {
        var scratch = allocator.buffer(capacity: 256)
        envelope.write(to: &scratch)
        let payload = scratch.readableBytes - FrameLimits.headerSize
        guard payload > Int(peerMaxPayload), envelope.requestID != 0 else { return nil }
        return Envelope.error(
            .tooLarge,
            "the \(envelope.message.type) reply is \(payload) bytes, over your max_frame_size of \(peerMaxPayload): ask for fewer items or connect with a larger max_frame_size",
            requestID: envelope.requestID)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        statistics.frameReceived()
        switch state {
        case .closed:
            return
        case .awaitingHello:
            receiveHello(context: context, frame: frame)
        case .open:
            receiveOpen(context: context, frame: frame)
        }
    }

    private func receiveHello(context: ChannelHandlerContext, frame: Frame) {
        guard frame.type == MessageType.hello.rawValue, frame.requestID == 0 else {
            return refuse(context: context, .handshakeRequired, "the first frame must be HELLO on request id 0")
        }
        // The server's decoder already holds the first frame to 64 KiB from its length bytes; this holds for
        // any decoder.
        guard frame.payload.readableBytes <= FrameLimits.handshakeMaxPayload else {
            return refuse(
                context: context, .frameTooLarge,
                "HELLO of \(frame.payload.readableBytes) bytes exceeds the handshake limit of \(FrameLimits.handshakeMaxPayload)")
        }
        let envelope: Envelope
        do {
            envelope = try Envelope(decoding: frame)
        } catch {
            return refuse(context: context, error.code, error.description)
        }
        guard case .hello(let hello) = envelope.message else { return }
        guard hello.magic == WireVersion.helloMagic else {
            // Not a Tributary client: it gets no answer it could misread (PROTOCOL.md, HELLO's magic).
            state = .closed
            return context.close(promise: nil)
        }
        if let refusal = Self.refusal(of: hello) {
            return refuse(context: context, refusal.code, refusal.message)
        }
        peerMaxPayload = hello.maxFrameSize
        state = .open
        context.fireChannelRead(wrapInboundOut(envelope))
    }

    /// Why this server cannot accept `hello` (its magic already checked), if it cannot.
    static func refusal(of hello: Wire.Hello) -> (code: ErrorCode, message: String)? {
        let ours = UInt16(WireVersion.supported.lowerBound)...UInt16(WireVersion.supported.upperBound)
        guard hello.minVersion <= hello.maxVersion, ours.overlaps(hello.minVersion...hello.maxVersion) else {
            return (
                .unsupportedVersion,
                "the client speaks versions \(hello.minVersion)-\(hello.maxVersion); this server speaks \(ours.lowerBound)-\(ours.upperBound)"
            )
        }
        let frameSizes = FrameLimits.minimumMaxPayload...FrameLimits.absoluteMaxPayload
        guard frameSizes.contains(hello.maxFrameSize) else {
            return (
                .invalidMessage,
                "HELLO max_frame_size \(hello.maxFrameSize) is out of range (\(frameSizes.lowerBound) to \(frameSizes.upperBound))"
            )
        }
        guard streamCreditRange.contains(hello.streamCredits) else {
            return (
                .invalidMessage,
                "HELLO stream_credits \(hello.streamCredits) is out of range (\(streamCreditRange.lowerBound) to \(streamCreditRange.upperBound))"
            )
        }
        guard hello.clientName.utf8.count <= maxClientNameBytes else {
            return (.invalidMessage, "HELLO client_name of \(hello.clientName.utf8.count) bytes is above \(maxClientNameBytes)")
        }
        return nil
    }

    private func receiveOpen(context: ChannelHandlerContext, frame: Frame) {
        let envelope: Envelope
        do {
            envelope = try Envelope(decoding: frame)
        } catch {
            if frame.requestID == 0 { return refuse(context: context, error.code, error.description) }
            return reply(context: context, requestID: frame.requestID, error.code, error.description)
        }
        let type = envelope.message.type
        switch (type.direction, envelope.message) {
        case (.connection, .ping(let ping)) where envelope.requestID == 0:
            context.writeAndFlush(wrapOutboundOut(Envelope(requestID: 0, message: .pong(Wire.Pong(opaque: ping.opaque)))), promise: nil)
        case (.connection, .pong) where envelope.requestID == 0:
            break
        case (.connection, .goAway) where envelope.requestID == 0:
            // The client is leaving: it sends nothing more, so its replies are what remains.
            break
        case (.connection, .hello):
            refuse(context: context, .handshakeRequired, "a second HELLO: the handshake is over")
        case (.connection, _):
            refuse(context: context, .invalidMessage, "\(type) is not allowed after the handshake or off request id 0")
        case (.request, _) where envelope.requestID == 0:
            refuse(context: context, .duplicateRequestID, "\(type) on request id 0, the connection's own: a request needs another id")
        case (.request, .echo(let echo)):
            // A round-trip probe: answered here, ahead of everything the application has queued.
            let reply = Envelope(requestID: envelope.requestID, flags: .final, message: .echoed(Wire.Echoed(payload: echo.payload)))
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        case (.request, _), (.control, .credit), (.control, .cancel):
            guard envelope.requestID != 0 else {
                return refuse(context: context, .invalidMessage, "\(type) needs a request id other than 0")
            }
            context.fireChannelRead(wrapInboundOut(envelope))
        case (.control, _), (.reply, _):
            if envelope.requestID == 0 {
                return refuse(context: context, .invalidMessage, "a client does not send \(type)")
            }
            reply(context: context, requestID: envelope.requestID, .invalidMessage, "a client does not send \(type)")
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        // The frame decoder stops at its first error (oversized length, unknown version, reserved flags).
        if let error = error as? WireError {
            refuse(context: context, error.code, error.description)
        } else {
            state = .closed
            context.close(promise: nil)
        }
    }

    // A client that does not read its replies is not read either: nothing it sends (pings included) can
    // make the server buffer more than the write-buffer high mark plus one read.
    public func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readPending {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    /// An ERROR on request id 0, then close: the connection cannot go on.
    private func refuse(context: ChannelHandlerContext, _ code: ErrorCode, _ message: String, retryAfterMs: UInt32 = 0) {
        guard state != .closed else { return }
        state = .closed
        let error = Envelope.error(code, message, requestID: 0, retryAfterMs: retryAfterMs)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(error)).whenComplete { _ in bound.value.close(promise: nil) }
    }

    /// An ERROR ending one request; the connection goes on.
    private func reply(context: ChannelHandlerContext, requestID: UInt64, _ code: ErrorCode, _ message: String) {
        context.writeAndFlush(wrapOutboundOut(Envelope.error(code, message, requestID: requestID)), promise: nil)
    }
}

@available(*, unavailable)
extension ProtocolHandler: Sendable {}
