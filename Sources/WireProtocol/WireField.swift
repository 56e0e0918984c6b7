import NIOCore

/// A value with a wire encoding (PROTOCOL.md, "Field encoding"). Every message is a sequence of these, so one
/// reader and one writer per field type serve the whole catalogue.
public protocol WireField: Sendable, Equatable {
    /// Reads the value at the buffer's reader index; `field` names it in errors.
    init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError)
    func write(to buffer: inout ByteBuffer)
}

/// A message of the catalogue: its fields are the whole payload of a frame of `type`.
public protocol WireMessage: WireField {
    static var type: MessageType { get }
}

/// An enumeration sent as its one-byte code.
public protocol WireEnum: WireField, RawRepresentable<UInt8>, CaseIterable {
    static var wireName: String { get }
}

extension WireEnum {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        let code = try UInt8(from: &buffer, field: field)
        guard let value = Self(rawValue: code) else { throw .invalidEnum(type: Self.wireName, value: code) }
        self = value
    }
    public func write(to buffer: inout ByteBuffer) { rawValue.write(to: &buffer) }
}

extension ByteBuffer {
    /// Checks that `count` bytes are left before anything reads them.
    @inline(__always)
    func require(_ count: Int, for field: StaticString) throws(WireError) {
        guard readableBytes >= count else {
            throw .truncated(field: String(describing: field), needed: count, available: readableBytes)
        }
    }

    /// A u32 length or count, checked against the bytes left (each element takes at least `minimumSize` bytes).
    @inline(__always)
    mutating func readCount(for field: StaticString, minimumSize: Int = 1) throws(WireError) -> Int {
        let count = try UInt32(from: &self, field: field)
        guard Int(count) <= readableBytes / minimumSize else {
            throw .countExceedsPayload(field: String(describing: field), count: count, available: readableBytes)
        }
        return Int(count)
    }
}

// Integers: fixed width, big-endian.
extension FixedWidthInteger where Self: WireField {
    @inline(__always)
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        try buffer.require(MemoryLayout<Self>.size, for: field)
        self = buffer.readInteger(endianness: .big, as: Self.self)!
    }
    @inline(__always)
    public func write(to buffer: inout ByteBuffer) { buffer.writeInteger(self, endianness: .big) }
}

extension UInt8: WireField {}
extension UInt16: WireField {}
extension UInt32: WireField {}
extension UInt64: WireField {}
extension Int64: WireField {}

// Floating point scalars: the IEEE 754 bit pattern, big-endian like every other scalar.
extension Float: WireField {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        self.init(bitPattern: try UInt32(from: &buffer, field: field))
    }
    public func write(to buffer: inout ByteBuffer) { bitPattern.write(to: &buffer) }
}

extension Double: WireField {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        self.init(bitPattern: try UInt64(from: &buffer, field: field))
    }
    public func write(to buffer: inout ByteBuffer) { bitPattern.write(to: &buffer) }
}

extension Bool: WireField {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        let byte = try UInt8(from: &buffer, field: field)
        guard byte <= 1 else { throw .invalidBool(field: String(describing: field), value: byte) }
        self = byte == 1
    }
    public func write(to buffer: inout ByteBuffer) { UInt8(self ? 1 : 0).write(to: &buffer) }
}

// string: u32 byte length, then UTF-8 (validated).
extension String: WireField {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        let length = try buffer.readCount(for: field)
        let bytes = buffer.readableBytesView.prefix(length)
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw .invalidUTF8(field: String(describing: field))
        }
        buffer.moveReaderIndex(forwardBy: length)
        self = string
    }
    public func write(to buffer: inout ByteBuffer) {
        var string = self
        string.withUTF8 { utf8 in
            UInt32(utf8.count).write(to: &buffer)
            buffer.writeBytes(utf8)
        }
    }
}

// [T]: u32 count, then the elements. `bytes` is [UInt8], the same layout, read and written in one copy.
extension Array: WireField where Element: WireField {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        let count = try buffer.readCount(for: field)
        if Element.self == UInt8.self {
            // The same type at run time; `as!` would convert element by element.
            self = unsafeBitCast(buffer.readBytes(length: count)!, to: [Element].self)
            return
        }
        self = []
        reserveCapacity(count)
        for _ in 0..<count { append(try Element(from: &buffer, field: field)) }
    }
    public func write(to buffer: inout ByteBuffer) {
        UInt32(count).write(to: &buffer)
        if Element.self == UInt8.self {
            buffer.writeBytes(unsafeBitCast(self, to: [UInt8].self))
        } else {
            for element in self { element.write(to: &buffer) }
        }
    }
}

// T?: a tag byte, 0 absent or 1 present, then the value.
extension Optional: WireField where Wrapped: WireField {
    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        switch try UInt8(from: &buffer, field: field) {
        case 0: self = .none
        case 1: self = .some(try Wrapped(from: &buffer, field: field))
        case let tag: throw .invalidOptionalTag(field: String(describing: field), value: tag)
        }
    }
    public func write(to buffer: inout ByteBuffer) {
        switch self {
        case .none: UInt8(0).write(to: &buffer)
        case .some(let value):
            UInt8(1).write(to: &buffer)
            value.write(to: &buffer)
        }
    }
}
