import NIOCore

/// The protocol versions this codec speaks; a frame's header carries the connection's negotiated one.
public enum WireVersion {
    public static let current: UInt8 = 1
    public static let supported: ClosedRange<UInt8> = 1...1
    /// HELLO's `magic`: "TRBW".
    public static let helloMagic: UInt32 = 0x5452_4257
}

/// The frame header's flag bits. Bits this version does not define must be zero.
public struct FrameFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// The last frame of its request id in this direction.
    public static let final = FrameFlags(rawValue: 0x0001)
    public static let known: FrameFlags = [.final]
}

/// Payload limits, in bytes (the 16-byte header not counted).
public enum FrameLimits {
    public static let headerSize = 16
    /// No negotiation may exceed this: 16 MiB.
    public static let absoluteMaxPayload: UInt32 = 1 << 24
    /// The limit on HELLO and on every frame before WELCOME: 64 KiB.
    public static let handshakeMaxPayload: UInt32 = 1 << 16
    /// The least a side may announce it accepts: 4 KiB.
    public static let minimumMaxPayload: UInt32 = 1 << 12
    /// What a side accepts unless configured otherwise: 1 MiB.
    public static let defaultMaxPayload: UInt32 = 1 << 20
}

/// One frame as read off the wire: the header's fields and the payload, not yet decoded.
///
/// Header (16 bytes, big-endian): `length` u32 (payload bytes), `version` u8, `type` u8, `flags` u16,
/// `request_id` u64.
public struct Frame: Sendable, Equatable {
    public var version: UInt8
    public var type: UInt8
    public var flags: FrameFlags
    public var requestID: UInt64
    public var payload: ByteBuffer

    public init(version: UInt8 = WireVersion.current, type: UInt8, flags: FrameFlags, requestID: UInt64, payload: ByteBuffer) {
        self.version = version
        self.type = type
        self.flags = flags
        self.requestID = requestID
        self.payload = payload
    }

    /// Reads one whole frame if `buffer` holds one; nil (consuming nothing) if more bytes are needed.
    /// The length is checked against `maxPayload` as soon as its 4 bytes are there, before the payload is
    /// waited for, so an oversized frame is refused without buffering it.
    public static func read(from buffer: inout ByteBuffer, maxPayload: UInt32) throws(WireError) -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return nil
        }
        guard length <= maxPayload else { throw .frameTooLarge(length: length, limit: maxPayload) }
        guard buffer.readableBytes >= FrameLimits.headerSize else { return nil }
        let start = buffer.readerIndex
        let version = buffer.getInteger(at: start + 4, as: UInt8.self)!
        let type = buffer.getInteger(at: start + 5, as: UInt8.self)!
        let flags = FrameFlags(rawValue: buffer.getInteger(at: start + 6, endianness: .big, as: UInt16.self)!)
        let requestID = buffer.getInteger(at: start + 8, endianness: .big, as: UInt64.self)!
        guard WireVersion.supported.contains(version) else { throw .unsupportedVersion(version) }
        guard flags.isSubset(of: .known) else { throw .reservedFlags(flags.rawValue) }
        guard buffer.readableBytes >= FrameLimits.headerSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: FrameLimits.headerSize)
        let payload = buffer.readSlice(length: Int(length))!
        return Frame(version: version, type: type, flags: flags, requestID: requestID, payload: payload)
    }

    public func write(to buffer: inout ByteBuffer) {
        Self.writeHeader(
            to: &buffer, length: UInt32(payload.readableBytes), version: version, type: type, flags: flags,
            requestID: requestID)
        buffer.writeImmutableBuffer(payload)
    }

    static func writeHeader(
        to buffer: inout ByteBuffer, length: UInt32, version: UInt8, type: UInt8, flags: FrameFlags, requestID: UInt64
    ) {
        buffer.writeMultipleIntegers(length, version, type, flags.rawValue, requestID, endianness: .big)
    }
}

/// A typed message with its request id and flags: what the application sends and receives.
public struct Envelope: Sendable, Equatable {
    public var requestID: UInt64
    public var flags: FrameFlags
    public var message: Message

    public init(requestID: UInt64, flags: FrameFlags = [], message: Message) {
        self.requestID = requestID
        self.flags = flags
        self.message = message
    }

    /// Decodes the frame's payload as its message type; every byte of the payload must be used.
    public init(decoding frame: Frame) throws(WireError) {
        guard let type = MessageType(rawValue: frame.type) else { throw .unknownMessageType(frame.type) }
        var payload = frame.payload
        let message = try Message.readFields(of: type, from: &payload)
        guard payload.readableBytes == 0 else {
            throw .trailingBytes(message: "\(type)", count: payload.readableBytes)
        }
        self.init(requestID: frame.requestID, flags: frame.flags, message: message)
    }

    /// Writes the whole frame, header and payload, with no intermediate buffer: the length is patched in after.
    public func write(to buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        Frame.writeHeader(
            to: &buffer, length: 0, version: WireVersion.current, type: message.type.rawValue, flags: flags,
            requestID: requestID)
        message.writeFields(to: &buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start - FrameLimits.headerSize), at: start, endianness: .big)
    }
}

/// Who sends a message type, and on which request id (PROTOCOL.md, "Request ids").
public enum MessageDirection: String, Sendable {
    /// Request id 0: the handshake, pings, GOAWAY.
    case connection
    /// Either side, on an open request id: CREDIT and CANCEL from the client, ERROR from the server.
    case control
    /// Client to server, opening a new request id.
    case request
    /// Server to client, on the request id it answers.
    case reply
}
