import NIOCore

/// Splits the inbound byte stream into frames, refusing an oversized length before buffering its payload.
/// Errors are `WireError`s; NIO's `ByteToMessageHandler` then stops decoding and reports the error.
public struct FrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = Frame
    public let maxPayload: UInt32
    /// The limit on the next frame while it is the connection's first (a server's HELLO): nil once one has been
    /// read. A server sets it to the handshake limit so that an unauthenticated peer can never make it buffer
    /// more than 64 KiB, whatever the post-handshake limit is: the check is made on the 4 length bytes.
    private var firstFrameMaxPayload: UInt32?

    /// `firstFrameMaxPayload`: a lower limit for the first frame only (``FrameLimits/handshakeMaxPayload`` on a
    /// server); nil: every frame has `maxPayload`.
    public init(maxPayload: UInt32 = FrameLimits.defaultMaxPayload, firstFrameMaxPayload: UInt32? = nil) {
        precondition(maxPayload <= FrameLimits.absoluteMaxPayload, "max payload above the protocol's 16 MiB")
        self.maxPayload = maxPayload
        self.firstFrameMaxPayload = firstFrameMaxPayload.map { min($0, maxPayload) }
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Frame.read(from: &buffer, maxPayload: firstFrameMaxPayload ?? maxPayload) else { return .needMoreData }
        firstFrameMaxPayload = nil
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Writes envelopes as frames.
public struct EnvelopeEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = Envelope
    public init() {}
    public func encode(data: Envelope, out: inout ByteBuffer) throws { data.write(to: &out) }
}
