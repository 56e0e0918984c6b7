import NIOCore

/// A Float32 tensor on the wire: a rank byte (at most 8), each dimension as a u32, then the elements in
/// row-major order as raw little-endian IEEE 754 floats, so that little-endian hosts copy them in one move.
public struct FloatTensor: WireField {
    public static let maxRank = 8
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(shape.count <= Self.maxRank, "rank \(shape.count) above \(Self.maxRank)")
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
    }

    public init(from buffer: inout ByteBuffer, field: StaticString) throws(WireError) {
        let rank = Int(try UInt8(from: &buffer, field: field))
        guard rank <= Self.maxRank else {
            throw .invalidTensor(field: String(describing: field), reason: "rank \(rank) above \(Self.maxRank)")
        }
        var shape: [Int] = []
        for _ in 0..<rank { shape.append(Int(try UInt32(from: &buffer, field: field))) }
        var count = 1
        var overflow = false
        if !shape.contains(0) {
            for dimension in shape where !overflow { (count, overflow) = count.multipliedReportingOverflow(by: dimension) }
        } else {
            count = 0
        }
        // Refuse a shape the payload cannot hold before allocating for it.
        guard !overflow, count <= buffer.readableBytes / 4 else {
            let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: 4)
            throw .truncated(
                field: String(describing: field), needed: overflow || bytesOverflow ? .max : bytes,
                available: buffer.readableBytes)
        }
        let values = [Float](unsafeUninitializedCapacity: count) { elements, initialized in
            buffer.withUnsafeReadableBytes { raw in
                for i in 0..<count {
                    elements[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            }
            initialized = count
        }
        buffer.moveReaderIndex(forwardBy: count * 4)
        self.shape = shape
        self.values = values
    }

    /// The bytes `write(to:)` writes: the rank byte, the dimensions, the elements.
    public var encodedSize: Int { 1 + 4 * shape.count + 4 * values.count }

    public func write(to buffer: inout ByteBuffer) {
        UInt8(shape.count).write(to: &buffer)
        for dimension in shape { UInt32(dimension).write(to: &buffer) }
        #if _endian(little)
        _ = values.withUnsafeBytes { buffer.writeBytes($0) }
        #else
        for value in values { buffer.writeInteger(value.bitPattern, endianness: .little) }
        #endif
    }
}
