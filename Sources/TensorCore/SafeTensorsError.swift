#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a safetensors file could not be read or written: the file, the tensor where one is
/// concerned, and what is wrong. Its description reads like
/// `model.safetensors: tensor "lm_head.weight": data_offsets [0, 4096] end beyond the 1024-byte data buffer`.
public struct SafeTensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file's path as the caller gave it.
    public var path: String
    /// The tensor concerned, where there is one.
    public var tensor: String?
    public var reason: Reason

    public init(path: String, tensor: String? = nil, reason: Reason) {
        self.path = path
        self.tensor = tensor
        self.reason = reason
    }

    public enum Reason: Equatable, Sendable, CustomStringConvertible {
        /// A system call (`open`, `fstat`, `mmap`, `write`, `fsync`, `rename`, ...) failed with `errno`.
        case systemCall(String, errno: Int32)
        /// The path names a directory, device or other non-regular file.
        case notARegularFile
        /// The path is empty or ends in a slash, so it cannot name a file to write.
        case invalidPath
        /// The file is shorter than the 8-byte header length.
        case fileTooSmall(byteCount: Int)
        /// The header length exceeds `SafeTensors.maximumHeaderByteCount`; rejected before reading the header.
        case headerTooLarge(byteCount: UInt64)
        /// The header length reaches past the end of the file.
        case headerPastEndOfFile(headerByteCount: UInt64, fileByteCount: Int)
        /// The header bytes are not UTF-8; `byteOffset` is within the header.
        case headerNotUTF8(byteOffset: Int)
        /// The header is not JSON; `byteOffset` is within the header.
        case invalidJSON(byteOffset: Int, message: String)
        /// The header JSON is valid but not an object; `found` says what it is.
        case headerNotObject(found: String)
        /// A tensor name appears twice in the header, or was given twice to the writer.
        case duplicateTensor
        /// `__metadata__` may not name a tensor.
        case reservedName
        /// A tensor's entry is not a JSON object; `found` says what it is.
        case entryNotObject(found: String)
        case missingField(String)
        case duplicateField(String)
        /// A field holds the wrong kind of JSON value.
        case mistypedField(String, expected: String)
        /// `__metadata__` is not an object of strings (or null).
        case invalidMetadata(String)
        /// A dtype string outside the safetensors list.
        case unknownDtype(String)
        case negativeDimension(shape: [Int])
        /// The shape's element or byte count overflows `Int`.
        case sizeOverflow(shape: [Int])
        /// A sub-byte dtype (F4, F6) whose shape does not fill whole bytes.
        case partialByte(dtype: SafeTensors.Dtype, shape: [Int])
        case beginAfterEnd(begin: Int, end: Int)
        case endBeyondData(begin: Int, end: Int, dataByteCount: Int)
        /// `data_offsets` span `actual` bytes where dtype and shape need `expected`.
        case byteCountMismatch(dtype: SafeTensors.Dtype, shape: [Int], expected: Int, actual: Int)
        /// The tensor's bytes overlap another tensor's (an empty tensor inside another's bytes counts).
        case overlap(begin: Int, end: Int, other: String, otherBegin: Int, otherEnd: Int)
        /// Bytes `[begin, end)` of the data buffer belong to no tensor.
        case uncoveredBytes(begin: Int, end: Int)
        case tensorNotFound
        /// A known dtype that TensorCore does not convert to or from Float32.
        case unsupportedDtype(SafeTensors.Dtype)

        public var description: String {
            switch self {
            case .systemCall(let call, let code):
                return "\(call) failed: \(String(cString: strerror(code))) (errno \(code))"
            case .notARegularFile:
                return "not a regular file"
            case .invalidPath:
                return "not a file path"
            case .fileTooSmall(let count):
                return "file is \(count) bytes, too short for the 8-byte header length"
            case .headerTooLarge(let count):
                return "header length \(count) bytes exceeds the \(SafeTensors.maximumHeaderByteCount)-byte limit"
            case .headerPastEndOfFile(let header, let file):
                return "header of \(header) bytes extends past the end of the \(file)-byte file (truncated?)"
            case .headerNotUTF8(let offset):
                return "header is not valid UTF-8 (bad byte at header offset \(offset))"
            case .invalidJSON(let offset, let message):
                return "header is not valid JSON at header offset \(offset): \(message)"
            case .headerNotObject(let found):
                return "header JSON is \(found), expected an object"
            case .duplicateTensor:
                return "name appears more than once"
            case .reservedName:
                return "\"__metadata__\" is reserved for the header metadata and cannot name a tensor"
            case .entryNotObject(let found):
                return "entry is \(found), expected an object with dtype, shape and data_offsets"
            case .missingField(let field):
                return "missing field \"\(field)\""
            case .duplicateField(let field):
                return "field \"\(field)\" appears more than once"
            case .mistypedField(let field, let expected):
                return "field \"\(field)\" must be \(expected)"
            case .invalidMetadata(let problem):
                return "__metadata__ \(problem)"
            case .unknownDtype(let dtype):
                return "unknown dtype \"\(dtype)\""
            case .negativeDimension(let shape):
                return "shape \(shape) has a negative dimension"
            case .sizeOverflow(let shape):
                return "shape \(shape) is too large: its byte count overflows"
            case .partialByte(let dtype, let shape):
                return "shape \(shape) of \(dtype.rawValue) does not fill whole bytes"
            case .beginAfterEnd(let begin, let end):
                return "data_offsets [\(begin), \(end)] begin after they end"
            case .endBeyondData(let begin, let end, let count):
                return "data_offsets [\(begin), \(end)] end beyond the \(count)-byte data buffer"
            case .byteCountMismatch(let dtype, let shape, let expected, let actual):
                return "data_offsets span \(actual) bytes but dtype \(dtype.rawValue) and shape \(shape) need \(expected)"
            case .overlap(let begin, let end, let other, let otherBegin, let otherEnd):
                return "data_offsets [\(begin), \(end)] overlap tensor \"\(other)\" at [\(otherBegin), \(otherEnd)]"
            case .uncoveredBytes(let begin, let end):
                return "data bytes [\(begin), \(end)) belong to no tensor (the tensors must cover the data buffer contiguously)"
            case .tensorNotFound:
                return "no such tensor"
            case .unsupportedDtype(let dtype):
                return "dtype \(dtype.rawValue) is not supported (TensorCore reads and writes F32, F16 and BF16)"
            }
        }
    }

    public var description: String {
        if let tensor { return "\(path): tensor \"\(tensor)\": \(reason)" }
        return "\(path): \(reason)"
    }
}
