import NIOCore

/// Splits the inbound byte stream into frames, refusing an oversized length before buffering its payload.
/// Errors are `WireError`s; NIO's `ByteToMessageHandler` then stops decoding and reports the error.
public struct FrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = Frame
    public let maxPayload: UInt32

    public init(maxPayload: UInt32 = FrameLimits.defaultMaxPayload) {
        precondition(maxPayload <= FrameLimits.absoluteMaxPayload, "max payload above the protocol's 16 MiB")
        self.maxPayload = maxPayload
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Frame.read(from: &buffer, maxPayload: maxPayload) else { return .needMoreData }
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
