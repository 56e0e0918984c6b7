import CKernels

/// The Hugging Face safetensors format: an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {"key": "value"}}`, possibly padded with trailing spaces), then the data buffer
/// that the offsets index.
///
/// `SafeTensorsFile` reads such a file through a read-only memory map; `SafeTensors.write` writes one.
public enum SafeTensors {
    /// Headers longer than this are refused before they are read, as the official library does.
    public static let maximumHeaderByteCount = 100_000_000

    /// The safetensors element types, in the order of the official library's `Dtype` enum
    /// (ascending alignment), which its writer sorts by.
    public enum Dtype: String, CaseIterable, Sendable {
        case bool = "BOOL"
        case f4 = "F4"
        case f6E2M3 = "F6_E2M3"
        case f6E3M2 = "F6_E3M2"
        case u8 = "U8"
        case i8 = "I8"
        case f8E5M2 = "F8_E5M2"
        case f8E4M3 = "F8_E4M3"
        case f8E8M0 = "F8_E8M0"
        case i16 = "I16"
        case u16 = "U16"
        case f16 = "F16"
        case bf16 = "BF16"
        case i32 = "I32"
        case u32 = "U32"
        case f32 = "F32"
        case c64 = "C64"
        case f64 = "F64"
        case i64 = "I64"
        case u64 = "U64"

        /// Bits per element (F4 and the F6 types pack below a byte).
        public var bitWidth: Int {
            switch self {
            case .f4: return 4
            case .f6E2M3, .f6E3M2: return 6
            case .bool, .u8, .i8, .f8E5M2, .f8E4M3, .f8E8M0: return 8
            case .i16, .u16, .f16, .bf16: return 16
            case .i32, .u32, .f32: return 32
            case .c64, .f64, .i64, .u64: return 64
            }
        }

        /// Whether `SafeTensorsFile.tensor(named:)` converts it to Float32 and `SafeTensors.write` produces it.
        public var isSupported: Bool { self == .f32 || self == .f16 || self == .bf16 }

        /// The bit count of `shape` in this dtype; nil when it overflows.
        func bitCount(shape: [Int]) -> Int? {
            var bits = bitWidth
            for extent in shape {
                let (product, overflow) = bits.multipliedReportingOverflow(by: extent)
                if overflow { return nil }
                bits = product
            }
            return bits
        }
    }

    /// One tensor's header entry.
    public struct TensorInfo: Equatable, Sendable {
        public var name: String
        public var dtype: Dtype
        public var shape: [Int]
        /// Byte range within the data buffer (which starts right after the header).
        public var dataOffsets: Range<Int>

        public var elementCount: Int { shape.reduce(1, *) }
        public var byteCount: Int { dataOffsets.count }
    }
}

/// A safetensors file, memory-mapped read-only and private, with its whole header validated on
/// opening.
///
/// Opening rejects, with a `SafeTensorsError` naming the file and tensor: a file shorter than
/// 8 bytes; a header length over 100 MB (before reading it) or past the end of the file; a header
/// that is not UTF-8, not JSON, or not an object; duplicate names or fields; an entry that is not
/// an object or lacks or mistypes `dtype`, `shape` or `data_offsets` (other fields are ignored);
/// an unknown dtype; a negative dimension; offsets that begin after they end, end beyond the data
/// buffer, or span a byte count other than the shape and dtype need; and a data buffer the tensors
/// do not cover exactly. Like the official library (and its spec: no holes, so no polyglot files),
/// the tensors sorted by offset must tile the data buffer contiguously: overlaps (an empty tensor
/// inside another's bytes included), gaps and trailing bytes are all rejected.
///
/// Tensors of any known dtype may be listed and described; `tensor(named:)` reads F32 (without a
/// copy when aligned), F16 and BF16.
public final class SafeTensorsFile: Sendable {
    /// The path as given.
    public let path: String
    /// Tensor names in the order the header lists them (the official writer's order: by dtype, then name).
    public let names: [String]
    /// The `__metadata__` strings; empty when the header has none.
    public let metadata: [String: String]
    /// Header bytes after the 8-byte length (JSON and padding).
    public let headerByteCount: Int
    /// Bytes of the data buffer.
    public let dataByteCount: Int

    private let infos: [String: SafeTensors.TensorInfo]
    private let mapping: SafeTensorsMapping
    private var dataStart: Int { 8 + headerByteCount }

    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        mapping = try SafeTensorsMapping(path: path, minimumByteCount: 8)
        let file = mapping.bytes

        let declared = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(SafeTensors.maximumHeaderByteCount) else {
            throw SafeTensorsError(path: path, reason: .headerTooLarge(byteCount: declared))
        }
        guard declared <= UInt64(file.count - 8) else {
            throw SafeTensorsError(
                path: path, reason: .headerPastEndOfFile(headerByteCount: declared, fileByteCount: file.count))
        }
        headerByteCount = Int(declared)
        dataByteCount = file.count - 8 - headerByteCount

        let header = UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerByteCount)])
        let parsed = try Self.parseHeader(header, path: path, dataByteCount: dataByteCount)
        names = parsed.names
        metadata = parsed.metadata
        infos = parsed.infos
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { infos[name] != nil }

    /// The dtype, shape and offsets of the tensor called `name`.
    public func info(_ name: String) throws(SafeTensorsError) -> SafeTensors.TensorInfo {
        guard let info = infos[name] else { throw SafeTensorsError(path: path, tensor: name, reason: .tensorNotFound) }
        return info
    }

    /// The tensor called `name` as Float32. F32 data aligned to 4 bytes is borrowed from the map,
    /// read-only (writing to the tensor copies it first; the file never changes); misaligned F32
    /// is copied; F16 and BF16 are converted into a new tensor. Other dtypes throw `unsupportedDtype`.
    /// The tensor keeps the mapping alive, so it may outlive this object.
    public func tensor(named name: String) throws(SafeTensorsError) -> Tensor {
        let info = try info(name)
        let count = info.elementCount
        let source = mapping.base + dataStart + info.dataOffsets.lowerBound
        switch info.dtype {
        case .f32:
            if count == 0 { return Tensor(zeros: info.shape) }
            if Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0 {
                let floats = UnsafeMutableRawPointer(mutating: source).bindMemory(to: Float.self, capacity: count)
                return Tensor(borrowing: floats, shape: info.shape, owner: mapping)
            }
            return Tensor(shape: info.shape) { out in
                UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: source, byteCount: info.byteCount)
            }
        case .f16, .bf16:
            let convert = info.dtype == .f16 ? tk_f16_to_f32 : tk_bf16_to_f32
            return Tensor(shape: info.shape) { out in
                guard count > 0 else { return }
                if Int(bitPattern: source) % MemoryLayout<UInt16>.alignment == 0 {
                    let halves = UnsafeMutableRawPointer(mutating: source).bindMemory(to: UInt16.self, capacity: count)
                    convert(halves, out.baseAddress!, count)
                } else {
                    let aligned = [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
                        UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: info.byteCount)
                        initialized = count
                    }
                    aligned.withUnsafeBufferPointer { convert($0.baseAddress!, out.baseAddress!, count) }
                }
            }
        default:
            throw SafeTensorsError(path: path, tensor: name, reason: .unsupportedDtype(info.dtype))
        }
    }

    // MARK: Header validation

    private struct ParsedHeader {
        var names: [String] = []
        var metadata: [String: String] = [:]
        var infos: [String: SafeTensors.TensorInfo] = [:]
    }

    private static func parseHeader(
        _ header: UnsafeRawBufferPointer, path: String, dataByteCount: Int
    ) throws(SafeTensorsError) -> ParsedHeader {
        func fail(_ reason: SafeTensorsError.Reason) -> SafeTensorsError {
            SafeTensorsError(path: path, reason: reason)
        }
        func fail(tensor: String, _ reason: SafeTensorsError.Reason) -> SafeTensorsError {
            SafeTensorsError(path: path, tensor: tensor, reason: reason)
        }
        if let offset = SafeTensorsJSON.firstInvalidUTF8Offset(header) { throw fail(.headerNotUTF8(byteOffset: offset)) }
        let json: SafeTensorsJSON.Value
        do throws(SafeTensorsJSON.ParseError) {
            json = try SafeTensorsJSON.parse(header)
        } catch {
            throw fail(.invalidJSON(byteOffset: error.byteOffset, message: error.message))
        }
        guard case .object(let members) = json else { throw fail(.headerNotObject(found: json.kind)) }

        var parsed = ParsedHeader()
        var sawMetadata = false
        for (key, value) in members {
            if key == "__metadata__" {
                guard !sawMetadata else { throw fail(.invalidMetadata("appears more than once")) }
                sawMetadata = true
                parsed.metadata = try parseMetadata(value, fail: { fail($0) })
                continue
            }
            guard parsed.infos[key] == nil else { throw fail(tensor: key, .duplicateTensor) }
            let info = try parseEntry(key, value, dataByteCount: dataByteCount, fail: { fail(tensor: key, $0) })
            parsed.infos[key] = info
            parsed.names.append(key)
        }

        // The tensors, by offset, must tile the data buffer: no overlap, no hole, nothing after.
        let byOffset = parsed.infos.values.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound)
        }
        var previous: SafeTensors.TensorInfo?
        for info in byOffset {
            let covered = previous?.dataOffsets.upperBound ?? 0
            if let previous, info.dataOffsets.lowerBound < covered {
                throw fail(tensor: info.name, .overlap(
                    begin: info.dataOffsets.lowerBound, end: info.dataOffsets.upperBound, other: previous.name,
                    otherBegin: previous.dataOffsets.lowerBound, otherEnd: previous.dataOffsets.upperBound))
            }
            if info.dataOffsets.lowerBound > covered {
                throw fail(tensor: info.name, .uncoveredBytes(begin: covered, end: info.dataOffsets.lowerBound))
            }
            previous = info
        }
        let covered = previous?.dataOffsets.upperBound ?? 0
        if covered < dataByteCount { throw fail(.uncoveredBytes(begin: covered, end: dataByteCount)) }
        return parsed
    }

    private static func parseMetadata(
        _ value: SafeTensorsJSON.Value, fail: (SafeTensorsError.Reason) -> SafeTensorsError
    ) throws(SafeTensorsError) -> [String: String] {
        switch value {
        case .null:
            return [:]  // serde reads a null Option as no metadata
        case .object(let members):
            var metadata: [String: String] = [:]
            for (key, value) in members {
                guard case .string(let text) = value else {
                    throw fail(.invalidMetadata("value of \"\(key)\" is \(value.kind), expected a string"))
                }
                guard metadata.updateValue(text, forKey: key) == nil else {
                    throw fail(.invalidMetadata("key \"\(key)\" appears more than once"))
                }
            }
            return metadata
        default:
            throw fail(.invalidMetadata("is \(value.kind), expected an object of strings"))
        }
    }

    private static func parseEntry(
        _ name: String, _ value: SafeTensorsJSON.Value, dataByteCount: Int,
        fail: (SafeTensorsError.Reason) -> SafeTensorsError
    ) throws(SafeTensorsError) -> SafeTensors.TensorInfo {
        guard case .object(let members) = value else { throw fail(.entryNotObject(found: value.kind)) }
        var fields: [String: SafeTensorsJSON.Value] = [:]
        for (key, value) in members where ["dtype", "shape", "data_offsets"].contains(key) {
            guard fields.updateValue(value, forKey: key) == nil else { throw fail(.duplicateField(key)) }
        }

        guard let dtypeValue = fields["dtype"] else { throw fail(.missingField("dtype")) }
        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(.mistypedField("dtype", expected: "a string, got \(dtypeValue.kind)"))
        }
        guard let dtype = SafeTensors.Dtype(rawValue: dtypeName) else { throw fail(.unknownDtype(dtypeName)) }

        guard let shapeValue = fields["shape"] else { throw fail(.missingField("shape")) }
        guard case .array(let extents) = shapeValue else {
            throw fail(.mistypedField("shape", expected: "an array of integers, got \(shapeValue.kind)"))
        }
        var shape: [Int] = []
        for (index, extent) in extents.enumerated() {
            guard let integer = extent.integer else {
                let found: String
                if case .number(let text) = extent { found = text } else { found = extent.kind }
                throw fail(.mistypedField("shape", expected: "an array of integers, got \(found) at index \(index)"))
            }
            shape.append(integer)
        }
        if shape.contains(where: { $0 < 0 }) { throw fail(.negativeDimension(shape: shape)) }

        guard let offsetsValue = fields["data_offsets"] else { throw fail(.missingField("data_offsets")) }
        let expectedOffsets = "an array of two non-negative integers [begin, end]"
        guard case .array(let bounds) = offsetsValue, bounds.count == 2,
              let begin = bounds[0].integer, let end = bounds[1].integer, begin >= 0, end >= 0
        else { throw fail(.mistypedField("data_offsets", expected: expectedOffsets)) }
        guard begin <= end else { throw fail(.beginAfterEnd(begin: begin, end: end)) }
        guard end <= dataByteCount else {
            throw fail(.endBeyondData(begin: begin, end: end, dataByteCount: dataByteCount))
        }
        guard let bitCount = dtype.bitCount(shape: shape) else { throw fail(.sizeOverflow(shape: shape)) }
        guard bitCount % 8 == 0 else { throw fail(.partialByte(dtype: dtype, shape: shape)) }
        let byteCount = bitCount / 8
        guard byteCount == end - begin else {
            throw fail(.byteCountMismatch(dtype: dtype, shape: shape, expected: byteCount, actual: end - begin))
        }
        return SafeTensors.TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }
}
