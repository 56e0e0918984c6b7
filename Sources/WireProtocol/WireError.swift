/// Every way a frame or a payload can break protocol/PROTOCOL.md. `kind` is the name the test vectors use.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The header's length is above the receiver's limit; raised before any of the payload is buffered.
    case frameTooLarge(length: UInt32, limit: UInt32)
    case unsupportedVersion(UInt8)
    /// Flag bits this version does not define are set.
    case reservedFlags(UInt16)
    case unknownMessageType(UInt8)
    /// A field runs past the end of the payload.
    case truncated(field: String, needed: Int, available: Int)
    /// The payload has bytes after its last field.
    case trailingBytes(message: String, count: Int)
    case invalidBool(field: String, value: UInt8)
    case invalidOptionalTag(field: String, value: UInt8)
    case invalidEnum(type: String, value: UInt8)
    case invalidUTF8(field: String)
    /// An array announces more elements than the payload has bytes left: refused before allocating.
    case countExceedsPayload(field: String, count: UInt32, available: Int)
    case invalidTensor(field: String, reason: String)

    public var kind: String {
        switch self {
        case .frameTooLarge: "frame_too_large"
        case .unsupportedVersion: "unsupported_version"
        case .reservedFlags: "reserved_flags"
        case .unknownMessageType: "unknown_message_type"
        case .truncated: "truncated"
        case .trailingBytes: "trailing_bytes"
        case .invalidBool: "invalid_bool"
        case .invalidOptionalTag: "invalid_optional_tag"
        case .invalidEnum: "invalid_enum"
        case .invalidUTF8: "invalid_utf8"
        case .countExceedsPayload: "count_exceeds_payload"
        case .invalidTensor: "invalid_tensor"
        }
    }

    /// The error code a server answers with (protocol errors close the connection; see PROTOCOL.md).
    public var code: ErrorCode {
        switch self {
        case .frameTooLarge: .frameTooLarge
        case .unsupportedVersion: .unsupportedVersion
        case .reservedFlags: .malformedFrame
        case .unknownMessageType: .unknownMessageType
        default: .invalidMessage
        }
    }

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let limit): "frame payload of \(length) bytes exceeds the limit of \(limit)"
        case .unsupportedVersion(let v): "frame version \(v) is not supported (this codec speaks \(WireVersion.supported))"
        case .reservedFlags(let flags): "reserved flag bits set: 0x\(String(flags, radix: 16))"
        case .unknownMessageType(let type): "unknown message type 0x\(String(type, radix: 16))"
        case .truncated(let field, let needed, let available):
            "\(field): needs \(needed) bytes, only \(available) left in the payload"
        case .trailingBytes(let message, let count): "\(message): \(count) bytes after the last field"
        case .invalidBool(let field, let value): "\(field): \(value) is not a bool (0 or 1)"
        case .invalidOptionalTag(let field, let value): "\(field): optional tag \(value) is not 0 or 1"
        case .invalidEnum(let type, let value): "\(type) has no value \(value)"
        case .invalidUTF8(let field): "\(field): not valid UTF-8"
        case .countExceedsPayload(let field, let count, let available):
            "\(field): \(count) elements announced, only \(available) bytes left"
        case .invalidTensor(let field, let reason): "\(field): \(reason)"
        }
    }
}
