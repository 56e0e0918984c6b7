import Foundation
import Testing
@testable import TensorCore

// MARK: Fixtures

/// A fresh directory under the system temporary directory, removed after `body`.
private func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
}

private func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

private func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

private func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

/// A safetensors file built by hand: the length prefix, `header` plus `padding` spaces, then `data`.
private func handFile(_ header: String, padding: Int = 0, data: [UInt8]) -> [UInt8] {
    let json = Array(header.utf8) + [UInt8](repeating: 0x20, count: padding)
    return littleEndian(UInt64(json.count)) + json + data
}

/// `header` padded with spaces so the data buffer starts `misalignment` bytes past a multiple of 8.
private func handFile(_ header: String, misalignment: Int, data: [UInt8]) -> [UInt8] {
    let length = header.utf8.count
    return handFile(header, padding: ((misalignment - length) % 8 + 8) % 8, data: data)
}

private func bytes(ofHalves halves: [UInt16]) -> [UInt8] { halves.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
private func bytes(ofFloats floats: [Float]) -> [UInt8] {
    floats.flatMap { value in (0..<4).map { UInt8(truncatingIfNeeded: value.bitPattern >> ($0 * 8)) } }
}

private func entry(_ name: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
    "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
}

/// Bit-exact equality that treats any NaN as equal to any NaN.
private func sameFloat(_ a: Float, _ b: Float) -> Bool { a.isNaN ? b.isNaN : a.bitPattern == b.bitPattern }

private func expectSafeTensorsError(
    path: String, tensor: String?, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void, matches: (SafeTensorsError.Reason) -> Bool
) {
    do {
        try body()
        Issue.record("expected a SafeTensorsError", sourceLocation: sourceLocation)
    } catch let error as SafeTensorsError {
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(error.tensor == tensor, "\(error)", sourceLocation: sourceLocation)
        #expect(matches(error.reason), "unexpected reason: \(error)", sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix(path + ": "), "\(error)", sourceLocation: sourceLocation)
        if let tensor {
            #expect(error.description.contains("tensor \"\(tensor)\""), "\(error)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected a SafeTensorsError, got \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: Corrupt-file corpus

/// One malformed file: its bytes, the tensor its error must name (nil: the file as a whole), the
/// reason it must give, and a fragment its message must contain.
struct CorruptSafeTensors: Sendable, CustomTestStringConvertible {
    var label: String
    var bytes: [UInt8]
    var tensor: String?
    var fragment: String
    var matches: @Sendable (SafeTensorsError.Reason) -> Bool
    var testDescription: String { label }

    static let corpus: [CorruptSafeTensors] = {
        let w16 = [UInt8](repeating: 0, count: 16)
        return [
            .init(label: "empty file", bytes: [], fragment: "file is 0 bytes") {
                $0 == .fileTooSmall(byteCount: 0)
            },
            .init(label: "5-byte file", bytes: [1, 2, 3, 4, 5], fragment: "file is 5 bytes") {
                $0 == .fileTooSmall(byteCount: 5)
            },
            .init(label: "header length 200 MB", bytes: littleEndian(200_000_000) + Array("{}".utf8),
                  fragment: "exceeds the 100000000-byte limit") {
                $0 == .headerTooLarge(byteCount: 200_000_000)
            },
            .init(label: "header length 2^64-1", bytes: littleEndian(.max) + Array("{}".utf8),
                  fragment: "exceeds") {
                $0 == .headerTooLarge(byteCount: .max)
            },
            .init(label: "header length past EOF", bytes: littleEndian(1000) + Array("{\"a\":{}}".utf8),
                  fragment: "extends past the end of the 16-byte file") {
                $0 == .headerPastEndOfFile(headerByteCount: 1000, fileByteCount: 16)
            },
            .init(label: "truncated data",
                  bytes: handFile("{\(entry("w", "F32", [4, 4], 0, 64))}", data: [UInt8](repeating: 0, count: 40)),
                  tensor: "w", fragment: "data_offsets [0, 64] end beyond the 40-byte data buffer") {
                $0 == .endBeyondData(begin: 0, end: 64, dataByteCount: 40)
            },
            .init(label: "invalid JSON", bytes: handFile("{\"w\":{\"dtype\":\"F32\",", data: []),
                  fragment: "not valid JSON at header offset 20") {
                if case .invalidJSON(20, _) = $0 { return true } else { return false }
            },
            .init(label: "non-object JSON", bytes: handFile("[1, 2, 3]", data: []), fragment: "is an array, expected an object") {
                $0 == .headerNotObject(found: "an array")
            },
            .init(label: "missing dtype", bytes: handFile("{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", data: w16),
                  tensor: "w", fragment: "missing field \"dtype\"") {
                $0 == .missingField("dtype")
            },
            .init(label: "missing data_offsets", bytes: handFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", data: w16),
                  tensor: "w", fragment: "missing field \"data_offsets\"") {
                $0 == .missingField("data_offsets")
            },
            .init(label: "unknown dtype F33", bytes: handFile("{\(entry("w", "F33", [4], 0, 16))}", data: w16),
                  tensor: "w", fragment: "unknown dtype \"F33\"") {
                $0 == .unknownDtype("F33")
            },
            .init(label: "negative dimension", bytes: handFile("{\(entry("w", "F32", [2, -3], 0, 16))}", data: w16),
                  tensor: "w", fragment: "shape [2, -3] has a negative dimension") {
                $0 == .negativeDimension(shape: [2, -3])
            },
            .init(label: "shape/bytes mismatch", bytes: handFile("{\(entry("w", "F32", [3], 0, 16))}", data: w16),
                  tensor: "w", fragment: "span 16 bytes but dtype F32 and shape [3] need 12") {
                $0 == .byteCountMismatch(dtype: .f32, shape: [3], expected: 12, actual: 16)
            },
            .init(label: "begin > end", bytes: handFile("{\(entry("w", "F32", [4], 16, 0))}", data: w16),
                  tensor: "w", fragment: "data_offsets [16, 0] begin after they end") {
                $0 == .beginAfterEnd(begin: 16, end: 0)
            },
            .init(label: "offsets beyond buffer",
                  bytes: handFile("{\(entry("a", "F32", [4], 0, 16)),\(entry("lm_head.weight", "F32", [1024], 16, 4112))}", data: w16),
                  tensor: "lm_head.weight", fragment: "data_offsets [16, 4112] end beyond the 16-byte data buffer") {
                $0 == .endBeyondData(begin: 16, end: 4112, dataByteCount: 16)
            },
            .init(label: "overlapping tensors",
                  bytes: handFile("{\(entry("a", "F32", [4], 0, 16)),\(entry("b", "F32", [4], 8, 24))}",
                                  data: [UInt8](repeating: 0, count: 24)),
                  tensor: "b", fragment: "data_offsets [8, 24] overlap tensor \"a\" at [0, 16]") {
                $0 == .overlap(begin: 8, end: 24, other: "a", otherBegin: 0, otherEnd: 16)
            },
            .init(label: "empty tensor inside another",
                  bytes: handFile("{\(entry("a", "F32", [4], 0, 16)),\(entry("e", "F32", [0], 8, 8))}", data: w16),
                  tensor: "e", fragment: "overlap tensor \"a\"") {
                if case .overlap(8, 8, "a", 0, 16) = $0 { return true } else { return false }
            },
            .init(label: "hole between tensors",
                  bytes: handFile("{\(entry("a", "F32", [4], 0, 16)),\(entry("b", "F32", [4], 24, 40))}",
                                  data: [UInt8](repeating: 0, count: 40)),
                  tensor: "b", fragment: "data bytes [16, 24) belong to no tensor") {
                $0 == .uncoveredBytes(begin: 16, end: 24)
            },
            .init(label: "trailing bytes", bytes: handFile("{\(entry("a", "F32", [4], 0, 16))}", data: w16 + [9, 9, 9]),
                  fragment: "data bytes [16, 19) belong to no tensor") {
                $0 == .uncoveredBytes(begin: 16, end: 19)
            },
            .init(label: "non-UTF-8 header",
                  bytes: littleEndian(12) + Array("{\"w".utf8) + [0xFF] + Array("\":{}}   ".utf8),
                  fragment: "not valid UTF-8 (bad byte at header offset 3)") {
                $0 == .headerNotUTF8(byteOffset: 3)
            },
            .init(label: "overlong UTF-8 encoding",
                  bytes: littleEndian(8) + Array("{\"".utf8) + [0xC0, 0xAF] + Array("\":1}".utf8),
                  fragment: "not valid UTF-8 (bad byte at header offset 2)") {
                $0 == .headerNotUTF8(byteOffset: 2)
            },
            .init(label: "duplicate tensor name",
                  bytes: handFile("{\(entry("a", "F32", [2], 0, 8)),\(entry("a", "F32", [2], 8, 16))}", data: w16),
                  tensor: "a", fragment: "appears more than once") {
                $0 == .duplicateTensor
            },
            .init(label: "duplicate field",
                  bytes: handFile("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", data: w16),
                  tensor: "w", fragment: "field \"dtype\" appears more than once") {
                $0 == .duplicateField("dtype")
            },
            .init(label: "entry not an object", bytes: handFile("{\"w\":[0,16]}", data: w16),
                  tensor: "w", fragment: "entry is an array") {
                $0 == .entryNotObject(found: "an array")
            },
            .init(label: "dtype not a string", bytes: handFile("{\"w\":{\"dtype\":32,\"shape\":[4],\"data_offsets\":[0,16]}}", data: w16),
                  tensor: "w", fragment: "field \"dtype\" must be a string") {
                if case .mistypedField("dtype", _) = $0 { return true } else { return false }
            },
            .init(label: "shape not an array", bytes: handFile("{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,16]}}", data: w16),
                  tensor: "w", fragment: "field \"shape\" must be an array of integers") {
                if case .mistypedField("shape", _) = $0 { return true } else { return false }
            },
            .init(label: "fractional dimension", bytes: handFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[0,16]}}", data: w16),
                  tensor: "w", fragment: "field \"shape\"") {
                if case .mistypedField("shape", _) = $0 { return true } else { return false }
            },
            .init(label: "boolean dimension", bytes: handFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", data: w16),
                  tensor: "w", fragment: "field \"shape\"") {
                if case .mistypedField("shape", _) = $0 { return true } else { return false }
            },
            .init(label: "dimension overflowing Int", bytes: handFile("{\(entry("w", "F32", [4], 0, 16))}".replacingOccurrences(of: "[4]", with: "[99999999999999999999]"), data: w16),
                  tensor: "w", fragment: "field \"shape\"") {
                if case .mistypedField("shape", _) = $0 { return true } else { return false }
            },
            .init(label: "element count overflow", bytes: handFile("{\(entry("w", "F32", [1 << 40, 1 << 40], 0, 16))}", data: w16),
                  tensor: "w", fragment: "too large") {
                $0 == .sizeOverflow(shape: [1 << 40, 1 << 40])
            },
            .init(label: "data_offsets of three", bytes: handFile("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8,16]}}", data: w16),
                  tensor: "w", fragment: "field \"data_offsets\" must be an array of two non-negative integers") {
                if case .mistypedField("data_offsets", _) = $0 { return true } else { return false }
            },
            .init(label: "negative offset", bytes: handFile("{\(entry("w", "F32", [4], -16, 0))}", data: w16),
                  tensor: "w", fragment: "field \"data_offsets\"") {
                if case .mistypedField("data_offsets", _) = $0 { return true } else { return false }
            },
            .init(label: "F4 not filling whole bytes", bytes: handFile("{\(entry("w", "F4", [3], 0, 1))}", data: [0]),
                  tensor: "w", fragment: "does not fill whole bytes") {
                $0 == .partialByte(dtype: .f4, shape: [3])
            },
            .init(label: "metadata value not a string", bytes: handFile("{\"__metadata__\":{\"epoch\":3}}", data: []),
                  fragment: "__metadata__ value of \"epoch\" is a number") {
                if case .invalidMetadata = $0 { return true } else { return false }
            },
            .init(label: "metadata not an object", bytes: handFile("{\"__metadata__\":[\"pt\"]}", data: []),
                  fragment: "__metadata__ is an array") {
                if case .invalidMetadata = $0 { return true } else { return false }
            },
            .init(label: "garbage after the object", bytes: handFile("{} x", data: []),
                  fragment: "unexpected character 'x' after the top-level value") {
                if case .invalidJSON(3, _) = $0 { return true } else { return false }
            },
            .init(label: "header padded with NUL", bytes: littleEndian(8) + Array("{}".utf8) + [0, 0, 0, 0, 0, 0],
                  fragment: "byte 0x0") {
                if case .invalidJSON(2, _) = $0 { return true } else { return false }
            },
            .init(label: "empty header", bytes: littleEndian(0), fragment: "expected a value, found end of header") {
                if case .invalidJSON(0, _) = $0 { return true } else { return false }
            },
            .init(label: "unpaired surrogate", bytes: handFile("{\"\\ud800x\":{}}", data: []), fragment: "unpaired surrogate") {
                if case .invalidJSON = $0 { return true } else { return false }
            },
            .init(label: "raw control character in a name", bytes: handFile("{\"a\tb\":{}}", data: []),
                  fragment: "unescaped control character") {
                if case .invalidJSON = $0 { return true } else { return false }
            },
            .init(label: "nesting 200 deep", bytes: handFile("{\"a\":" + String(repeating: "[", count: 200) + "}", data: []),
                  fragment: "nesting deeper than 128") {
                if case .invalidJSON = $0 { return true } else { return false }
            },
        ]
    }()

    init(label: String, bytes: [UInt8], tensor: String? = nil, fragment: String,
         matches: @escaping @Sendable (SafeTensorsError.Reason) -> Bool) {
        self.label = label
        self.bytes = bytes
        self.tensor = tensor
        self.fragment = fragment
        self.matches = matches
    }
}

@Suite struct SafeTensorsTests {
    // MARK: Corrupt files

    @Test(arguments: CorruptSafeTensors.corpus)
    func corruptFileIsRejected(_ corrupt: CorruptSafeTensors) throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/model.safetensors"
            try writeBytes(corrupt.bytes, to: path)
            expectSafeTensorsError(path: path, tensor: corrupt.tensor, { _ = try SafeTensorsFile(path: path) },
                                   matches: corrupt.matches)
            do {
                _ = try SafeTensorsFile(path: path)
            } catch let error as SafeTensorsError {
                #expect(error.description.contains(corrupt.fragment), "\(error)")
            }
        }
    }

    @Test func corpusMessagesNameFileAndTensor() throws {
        // One spelled out in full, as a reader sees it.
        try withTemporaryDirectory { directory in
            let path = directory + "/model.safetensors"
            let header = "{\(entry("lm_head.weight", "F32", [1024], 0, 4096))}"
            try writeBytes(handFile(header, data: [UInt8](repeating: 0, count: 1024)), to: path)
            do {
                _ = try SafeTensorsFile(path: path)
                Issue.record("opened a truncated file")
            } catch let error as SafeTensorsError {
                #expect(error.description == "\(path): tensor \"lm_head.weight\": data_offsets [0, 4096] end beyond the 1024-byte data buffer")
            }
        }
    }

    @Test func missingFileAndDirectoryAreRejected() throws {
        try withTemporaryDirectory { directory in
            let missing = directory + "/absent.safetensors"
            expectSafeTensorsError(path: missing, tensor: nil, { _ = try SafeTensorsFile(path: missing) }) {
                $0 == .systemCall("open", errno: ENOENT)
            }
            expectSafeTensorsError(path: directory, tensor: nil, { _ = try SafeTensorsFile(path: directory) }) {
                $0 == .notARegularFile
            }
        }
    }

    // MARK: Round trips

    @Test func float32RoundTripsThroughManyShapes() throws {
        var random = SeededRandom(seed: 0x5AFE)
        let base = random.normalTensor(shape: [5, 3])
        let cube = random.normalTensor(shape: [2, 3, 4])
        let tensors: [(name: String, tensor: Tensor)] = [
            ("scalar", random.normalTensor(shape: [])),
            ("vector", random.normalTensor(shape: [7])),
            ("one", random.normalTensor(shape: [1])),
            ("matrix", random.normalTensor(shape: [4, 5])),
            ("cube", cube),
            ("empty", Tensor(zeros: [0])),
            ("empty.middle", Tensor(zeros: [3, 0, 2])),
            ("transposed", base.transposed()),
            ("sliced", cube.slice(1, 1..<3).transposed(0, 2)),
            ("broadcast", Tensor(shape: [4], scalars: [1, 2, 3, 4]).viewing(shape: [3, 4], strides: [0, 1])),
            ("specials", Tensor(shape: [6], scalars: [.infinity, -.infinity, .nan, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude])),
        ]
        #expect(!tensors[7].tensor.isContiguous)
        try withTemporaryDirectory { directory in
            let path = directory + "/round.safetensors"
            try SafeTensors.write(tensors, to: path)
            let file = try SafeTensorsFile(path: path)
            #expect(file.names == tensors.map(\.name).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
            #expect(file.metadata.isEmpty)
            for (name, original) in tensors {
                let info = try file.info(name)
                #expect(info.dtype == .f32)
                #expect(info.shape == original.shape)
                let read = try file.tensor(named: name)
                #expect(read.shape == original.shape, "\(name)")
                #expect(read.isContiguous)
                #expect(zip(read.scalars, original.scalars).allSatisfy(sameFloat), "\(name)")
                #expect(read.scalars.count == original.count)
            }
            #expect(try file.tensor(named: "transposed")[2, 4] == base[4, 2])
        }
    }

    @Test func dictionaryWriterMatchesArrayWriter() throws {
        var random = SeededRandom(seed: 7)
        let tensors = ["b": random.normalTensor(shape: [3]), "a": random.normalTensor(shape: [2, 2])]
        try withTemporaryDirectory { directory in
            try SafeTensors.write(tensors, metadata: ["k": "v"], to: directory + "/dict.safetensors")
            try SafeTensors.write([("a", tensors["a"]!), ("b", tensors["b"]!)], metadata: ["k": "v"], to: directory + "/array.safetensors")
            #expect(try readBytes(directory + "/dict.safetensors") == readBytes(directory + "/array.safetensors"))
        }
    }

    @Test func metadataRoundTrips() throws {
        let metadata = [
            "format": "pt",
            "quote\"back\\slash": "new\nline\ttab\u{01}\u{1F}\u{7F}",
            "unicode": "é漢字🙂",
            "": "",
            "json": "{\"lora_rank\": 8}",
        ]
        try withTemporaryDirectory { directory in
            let path = directory + "/meta.safetensors"
            try SafeTensors.write([(name: "w", tensor: Tensor(shape: [2], scalars: [1, 2]))], metadata: metadata, to: path)
            let file = try SafeTensorsFile(path: path)
            #expect(file.metadata == metadata)
            #expect(file.names == ["w"])
            let header = String(decoding: try readBytes(path)[8..<(8 + file.headerByteCount)], as: UTF8.self)
            #expect(header.contains(#""quote\"back\\slash":"new\nline\ttab\u0001\u001f\#u{7F}""#))
            #expect(header.contains("\"unicode\":\"é漢字🙂\""))

            try SafeTensors.write([(name: "w", tensor: Tensor(zeros: [1]))], metadata: [:], to: path)
            #expect(try SafeTensorsFile(path: path).metadata == [:])
            #expect(String(decoding: try readBytes(path), as: UTF8.self).contains("{\"__metadata__\":{},\"w\":"))
        }
    }

    @Test func namesAreSortedByUTF8Bytes() throws {
        let names = ["b", "a", "B", "é", "a.10", "a.9", "layers.0.attn"]
        try withTemporaryDirectory { directory in
            let path = directory + "/names.safetensors"
            try SafeTensors.write(names.map { (name: $0, tensor: Tensor(shape: [1], repeating: 1)) }, to: path)
            #expect(try SafeTensorsFile(path: path).names == ["B", "a", "a.10", "a.9", "b", "layers.0.attn", "é"])
        }
    }

    // MARK: Byte layout

    @Test func writerMatchesTheOfficialLibraryByteForByte() throws {
        // The official library's own serialization test vectors.
        try withTemporaryDirectory { directory in
            let path = directory + "/official.safetensors"
            let six = Tensor(shape: [1, 2, 3], scalars: [0, 1, 2, 3, 4, 5])

            try SafeTensors.write([(name: "attn.0", tensor: six)], to: path)
            let json = #"{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"#
            #expect(json.utf8.count == 64)
            #expect(try readBytes(path) == littleEndian(64) + Array(json.utf8) + bytes(ofFloats: [0, 1, 2, 3, 4, 5]))

            try SafeTensors.write([(name: "attn0", tensor: six.reshaped([1, 1, 2, 3]))], to: path)
            let padded = #"{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}"# + String(repeating: " ", count: 7)
            #expect(try readBytes(path) == littleEndian(72) + Array(padded.utf8) + bytes(ofFloats: [0, 1, 2, 3, 4, 5]))

            try SafeTensors.write([(name: String, tensor: Tensor)](), to: path)
            #expect(try readBytes(path) == littleEndian(8) + Array("{}      ".utf8))

            try SafeTensors.write([(name: String, tensor: Tensor)](), metadata: ["framework": "pt"], to: path)
            #expect(try readBytes(path) == littleEndian(40) + Array(#"{"__metadata__":{"framework":"pt"}}     "#.utf8))
            #expect(try SafeTensorsFile(path: path).metadata == ["framework": "pt"])
        }
    }

    @Test func writerOutputParsesIndependently() throws {
        var random = SeededRandom(seed: 42)
        var tensors: [(name: String, tensor: Tensor)] = []
        for index in 0..<9 {
            let shape = (0..<Int(random.next() % 4)).map { _ in Int(random.next() % 5) }
            tensors.append(("model.layers.\(index).weight", random.normalTensor(shape: shape)))
        }
        try withTemporaryDirectory { directory in
            let path = directory + "/independent.safetensors"
            try SafeTensors.write(tensors, metadata: ["format": "pt", "seed": "42"], to: path)
            let file = try readBytes(path)

            // u64 length, a multiple of 8; JSON then spaces only.
            let length = file[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << ($1.offset * 8) }
            #expect(length % 8 == 0)
            let header = Array(file[8..<(8 + length)])
            let jsonEnd = header.lastIndex(of: UInt8(ascii: "}"))! + 1
            #expect(length - jsonEnd < 8)
            #expect(header[jsonEnd...].allSatisfy { $0 == 0x20 })
            #expect(header.first == UInt8(ascii: "{"))

            // Foundation's parser, not ours.
            let object = try #require(try JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
            #expect(object["__metadata__"] as? [String: String] == ["format": "pt", "seed": "42"])
            let data = Array(file[(8 + length)...])
            var expectedBegin = 0
            for (name, tensor) in tensors.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
                let info = try #require(object[name] as? [String: Any])
                #expect(info["dtype"] as? String == "F32")
                #expect(info["shape"] as? [Int] == tensor.shape)
                let offsets = try #require(info["data_offsets"] as? [Int])
                #expect(offsets == [expectedBegin, expectedBegin + 4 * tensor.count], "\(name)")
                #expect(Array(data[offsets[0]..<offsets[1]]) == bytes(ofFloats: tensor.scalars))
                expectedBegin = offsets[1]
            }
            #expect(expectedBegin == data.count)
            #expect(object.count == tensors.count + 1)
        }
    }

    // MARK: Half precision

    static let f16Cases: [(bits: UInt16, value: Float)] = [
        (0x0000, 0), (0x8000, -0.0), (0x3C00, 1), (0xC000, -2), (0x3555, 0.333251953125),
        (0x7BFF, 65504), (0x0400, 0x1p-14), (0x0001, 0x1p-24), (0x03FF, 1023 * 0x1p-24), (0x8001, -0x1p-24),
        (0x7C00, .infinity), (0xFC00, -.infinity), (0x7E00, .nan), (0x7C01, .nan), (0xFE00, .nan),
    ]
    static let bf16Cases: [(bits: UInt16, value: Float)] = [
        (0x0000, 0), (0x8000, -0.0), (0x3F80, 1), (0xC040, -3), (0x4049, 3.140625),
        (0x7F7F, Float(bitPattern: 0x7F7F_0000)), (0x0080, .leastNormalMagnitude), (0x0001, 0x1p-133),
        (0x8001, -0x1p-133), (0x7F80, .infinity), (0xFF80, -.infinity), (0x7FC0, .nan), (0xFFC1, .nan),
    ]

    /// A hand-built file holding F32, BF16 and F16 tensors, its data buffer `misalignment` bytes off 8-byte alignment.
    @Test(arguments: [0, 1, 2, 3, 4])
    func halfPrecisionReadsMatchHandEncodedBits(misalignment: Int) throws {
        let f16 = Self.f16Cases, bf16 = Self.bf16Cases
        let floats: [Float] = [1.5, -2.25, .pi, 0x1p-140]
        let header = "{"
            + entry("f32", "F32", [2, 2], 0, 16) + ","
            + entry("bf16", "BF16", [bf16.count], 16, 16 + 2 * bf16.count) + ","
            + entry("f16", "F16", [3, 5], 16 + 2 * bf16.count, 16 + 2 * bf16.count + 2 * f16.count) + "}"
        let data = bytes(ofFloats: floats) + bytes(ofHalves: bf16.map(\.bits)) + bytes(ofHalves: f16.map(\.bits))
        try withTemporaryDirectory { directory in
            let path = directory + "/half.safetensors"
            try writeBytes(handFile(header, misalignment: misalignment, data: data), to: path)
            let file = try SafeTensorsFile(path: path)
            #expect(file.names == ["f32", "bf16", "f16"])
            #expect((8 + file.headerByteCount) % 8 == misalignment % 8)

            let h = try file.tensor(named: "f16")
            #expect(h.shape == [3, 5])
            for (index, (bits, value)) in f16.enumerated() {
                #expect(sameFloat(h.scalars[index], value), "F16 0x\(String(bits, radix: 16)) read as \(h.scalars[index])")
            }
            let b = try file.tensor(named: "bf16")
            #expect(b.shape == [bf16.count])
            for (index, (bits, value)) in bf16.enumerated() {
                #expect(sameFloat(b.scalars[index], value), "BF16 0x\(String(bits, radix: 16)) read as \(b.scalars[index])")
            }
            let f = try file.tensor(named: "f32")
            #expect(zip(f.scalars, floats).allSatisfy(sameFloat))
            // Zero-copy exactly when the data is 4-byte aligned; a converted tensor owns its storage.
            #expect(f.storage.isWritable == (misalignment % 4 != 0))
            #expect(h.storage.isWritable && b.storage.isWritable)
        }
    }

    @Test func halfPrecisionWritesRoundToNearestEven() throws {
        let inputs: [Float] = [
            1, 65504, 65519, 65520, 0x1p-24, 0x1p-25, 3 * 0x1p-25, 1 + 0x1p-11, 1 + 3 * 0x1p-11, -0.0,
            .infinity, .nan, Float(bitPattern: 0x7F80_0001), .greatestFiniteMagnitude,
        ]
        let f16Bits: [UInt16] = [
            0x3C00, 0x7BFF, 0x7BFF, 0x7C00, 0x0001, 0x0000, 0x0002, 0x3C00, 0x3C02, 0x8000,
            0x7C00, 0x7E00, 0x7E00, 0x7C00,
        ]
        let bf16Inputs: [Float] = [
            1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -3, .greatestFiniteMagnitude, -.infinity,
            .nan, Float(bitPattern: 0x7F80_0001), 0x1p-133, -0.0,
        ]
        let bf16Bits: [UInt16] = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC040, 0x7F80, 0xFF80, 0x7FC0, 0x7FC0, 0x0001, 0x8000]
        try withTemporaryDirectory { directory in
            let path = directory + "/half-out.safetensors"
            try SafeTensors.write([(name: "h", tensor: Tensor(shape: [inputs.count], scalars: inputs))], to: path, dtype: .f16)
            var file = try SafeTensorsFile(path: path)
            #expect(try file.info("h").dtype == .f16)
            var data = Array(try readBytes(path)[(8 + file.headerByteCount)...])
            let halves = stride(from: 0, to: data.count, by: 2).map { UInt16(data[$0]) | UInt16(data[$0 + 1]) << 8 }
            for (index, bits) in halves.enumerated() where !inputs[index].isNaN {
                #expect(bits == f16Bits[index], "F16 of \(inputs[index]): 0x\(String(bits, radix: 16))")
            }
            #expect(halves[11] & 0x7C00 == 0x7C00 && halves[11] & 0x03FF != 0)
            #expect(halves[12] & 0x7C00 == 0x7C00 && halves[12] & 0x03FF != 0)
            let readBack = try file.tensor(named: "h").scalars
            #expect(zip(readBack, inputs).allSatisfy { sameFloat($0, Float(Float16($1))) })

            try SafeTensors.write(["b": Tensor(shape: [bf16Inputs.count], scalars: bf16Inputs)], to: path, dtype: .bf16)
            file = try SafeTensorsFile(path: path)
            #expect(try file.info("b").dtype == .bf16)
            data = Array(try readBytes(path)[(8 + file.headerByteCount)...])
            let brains = stride(from: 0, to: data.count, by: 2).map { UInt16(data[$0]) | UInt16(data[$0 + 1]) << 8 }
            #expect(brains == bf16Bits)
            #expect(zip(try file.tensor(named: "b").scalars, bf16Bits).allSatisfy {
                sameFloat($0, Float(bitPattern: UInt32($1) << 16))
            })
        }
    }

    @Test func halfPrecisionRoundTripOfLargeTensor() throws {
        // More than one conversion chunk, and a transposed view.
        var random = SeededRandom(seed: 99)
        let original = random.normalTensor(shape: [300, 400]).transposed()
        try withTemporaryDirectory { directory in
            let path = directory + "/large.safetensors"
            for dtype in [SafeTensors.Dtype.f16, .bf16] {
                try SafeTensors.write([(name: "w", tensor: original)], to: path, dtype: dtype)
                let read = try SafeTensorsFile(path: path).tensor(named: "w")
                #expect(read.shape == [400, 300])
                let expected = original.scalars.map {
                    dtype == .f16 ? Float(Float16($0)) : Float(bitPattern: UInt32(SafeTensors.bfloat16Bits($0)) << 16)
                }
                #expect(read.scalars == expected)
            }
        }
    }

    // MARK: Reading API

    @Test func unsupportedAndMissingTensorsAreNamed() throws {
        let header = "{\"__metadata__\":null,\(entry("ids", "I64", [2], 0, 16)),\(entry("w", "F32", [2], 16, 24))}"
        try withTemporaryDirectory { directory in
            let path = directory + "/mixed.safetensors"
            try writeBytes(handFile(header, data: [UInt8](repeating: 0, count: 16) + bytes(ofFloats: [3, 4])), to: path)
            let file = try SafeTensorsFile(path: path)
            #expect(file.names == ["ids", "w"])
            #expect(file.metadata.isEmpty)
            #expect(try file.info("ids") == SafeTensors.TensorInfo(name: "ids", dtype: .i64, shape: [2], dataOffsets: 0..<16))
            #expect(try file.tensor(named: "w").scalars == [3, 4])
            expectSafeTensorsError(path: path, tensor: "ids", { _ = try file.tensor(named: "ids") }) {
                $0 == .unsupportedDtype(.i64)
            }
            expectSafeTensorsError(path: path, tensor: "nope", { _ = try file.tensor(named: "nope") }) {
                $0 == .tensorNotFound
            }
            expectSafeTensorsError(path: path, tensor: "nope", { _ = try file.info("nope") }) { $0 == .tensorNotFound }
            #expect(file.contains("w") && !file.contains("nope"))
        }
    }

    @Test func lenientButValidHeadersOpen() throws {
        // Leading and inner whitespace, escapes, an unknown field, every known dtype, empty tensors at shared offsets.
        var header = " {\n \"w\\u00e9\\ud83d\\ude00\" : { \"extra\" : [1, {\"x\": null}], \"data_offsets\" : [0, 8], \"shape\" : [ 2 ], \"dtype\" : \"F32\" }"
        var offset = 8
        for dtype in SafeTensors.Dtype.allCases {
            let bytes = dtype.bitWidth * 8 / 8
            header += ",\(entry("t.\(dtype.rawValue)", dtype.rawValue, [8], offset, offset + bytes))"
            header += ",\(entry("empty.\(dtype.rawValue)", dtype.rawValue, [0, 3], offset + bytes, offset + bytes))"
            offset += bytes
        }
        header += ", \"__metadata__\": {\"a\": \"\\/\\b\\f\"} }\t\r\n"
        try withTemporaryDirectory { directory in
            let path = directory + "/lenient.safetensors"
            try writeBytes(handFile(header, padding: 5, data: bytes(ofFloats: [5, 6]) + [UInt8](repeating: 0, count: offset - 8)), to: path)
            let file = try SafeTensorsFile(path: path)
            #expect(file.names.first == "wé😀")
            #expect(file.names.count == 1 + 2 * SafeTensors.Dtype.allCases.count)
            #expect(try file.tensor(named: "wé😀").scalars == [5, 6])
            #expect(file.metadata == ["a": "/\u{08}\u{0C}"])
            #expect(try file.info("t.F4").dataOffsets.count == 4)
            #expect(try file.tensor(named: "empty.F16").shape == [0, 3])
            #expect(try file.tensor(named: "empty.F32").count == 0)
        }
    }

    @Test func zeroCopyTensorIsCopiedOnWriteAndFileNeverChanges() throws {
        var random = SeededRandom(seed: 2024)
        let original = random.normalTensor(shape: [8, 16])
        try withTemporaryDirectory { directory in
            let path = directory + "/cow.safetensors"
            try SafeTensors.write([(name: "w", tensor: original), (name: "v", tensor: random.normalTensor(shape: [3]))], to: path)
            let before = try readBytes(path)
            let file = try SafeTensorsFile(path: path)
            var tensor = try file.tensor(named: "w")
            #expect(!tensor.storage.isWritable, "aligned F32 should be borrowed from the map")
            let alias = tensor
            tensor[0, 0] = 42
            tensor.withUnsafeMutableBufferPointer { $0.update(repeating: -1) }
            #expect(tensor.storage.isWritable)
            #expect(tensor[3, 3] == -1)
            #expect(alias == original)
            #expect(try file.tensor(named: "w") == original)
            #expect(try readBytes(path) == before)
            #expect(try SafeTensorsFile(path: path).tensor(named: "w") == original)
        }
    }

    @Test func tensorsOutliveTheFileObject() throws {
        var random = SeededRandom(seed: 3)
        let original = random.normalTensor(shape: [64, 64])
        try withTemporaryDirectory { directory in
            let path = directory + "/alive.safetensors"
            try SafeTensors.write([(name: "w", tensor: original)], to: path)
            var tensor: Tensor? = nil
            do {
                let file = try SafeTensorsFile(path: path)
                tensor = try file.tensor(named: "w")
            }
            // The map is still alive through the tensor's storage, even after the file is deleted.
            try FileManager.default.removeItem(atPath: path)
            #expect(tensor == original)
        }
    }

    // MARK: Writer

    @Test func writerRejectsBadInput() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/bad.safetensors"
            let t = Tensor(zeros: [2])
            expectSafeTensorsError(path: path, tensor: "a", { try SafeTensors.write([("a", t), ("b", t), ("a", t)], to: path) }) {
                $0 == .duplicateTensor
            }
            expectSafeTensorsError(path: path, tensor: "__metadata__", { try SafeTensors.write([("__metadata__", t)], to: path) }) {
                $0 == .reservedName
            }
            expectSafeTensorsError(path: path, tensor: nil, { try SafeTensors.write([("a", t)], to: path, dtype: .i64) }) {
                $0 == .unsupportedDtype(.i64)
            }
            expectSafeTensorsError(path: directory + "/", tensor: nil, { try SafeTensors.write([("a", t)], to: directory + "/") }) {
                $0 == .invalidPath
            }
            let nowhere = directory + "/missing/x.safetensors"
            expectSafeTensorsError(path: nowhere, tensor: nil, { try SafeTensors.write([("a", t)], to: nowhere) }) {
                $0 == .systemCall("open", errno: ENOENT)
            }
            #expect(!FileManager.default.fileExists(atPath: path))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory)
            #expect(leftovers.isEmpty)
        }
    }

    @Test func writerReplacesAtomicallyAndCleansUp() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/model.safetensors"
            try SafeTensors.write([(name: "w", tensor: Tensor(shape: [2], scalars: [1, 2]))], to: path)
            let firstMap = try SafeTensorsFile(path: path)
            let firstTensor = try firstMap.tensor(named: "w")
            try SafeTensors.write([(name: "w", tensor: Tensor(shape: [3], scalars: [7, 8, 9]))], to: path)
            // The replacement is a new inode: the earlier map still sees the earlier file.
            #expect(firstTensor.scalars == [1, 2])
            #expect(try SafeTensorsFile(path: path).tensor(named: "w").scalars == [7, 8, 9])
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])

            // A failure after the data is written (rename over a directory) leaves no temporary file.
            let blocked = directory + "/blocked"
            try FileManager.default.createDirectory(atPath: blocked + "/inside", withIntermediateDirectories: true)
            expectSafeTensorsError(path: blocked, tensor: nil, { try SafeTensors.write([("w", Tensor(zeros: [1]))], to: blocked) }) {
                if case .systemCall("rename", _) = $0 { return true } else { return false }
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["blocked", "model.safetensors"])
        }
    }
}
