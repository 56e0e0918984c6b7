import NIOCore
import TensorCore
import Testing

@testable import WireProtocol

@Suite("Message codec")
struct CodecTests {
    @Test("every message type round-trips with seeded random field values", arguments: MessageType.allCases)
    func roundTrip(type: MessageType) throws {
        var rng = SeededRandom(seed: UInt64(type.rawValue))
        for i in 0..<50 {
            let envelope = Envelope(
                requestID: UInt64.random(using: &rng), flags: i % 2 == 0 ? [] : .final,
                message: .random(type, using: &rng))
            let bytes = envelope.frameBytes
            #expect(bytes.getInteger(at: 0, as: UInt32.self) == UInt32(bytes.readableBytes - FrameLimits.headerSize))
            #expect(bytes.getInteger(at: 5, as: UInt8.self) == type.rawValue)
            #expect(try decodeFrame(bytes) == envelope)
        }
    }

    @Test("every cut of a payload is refused with a typed error, never a crash", arguments: MessageType.allCases)
    func truncatedPayloads(type: MessageType) throws {
        var rng = SeededRandom(seed: 1000 + UInt64(type.rawValue))
        for _ in 0..<5 {
            let envelope = Envelope(requestID: 1, message: .random(type, using: &rng))
            var frame = envelope.frame
            let payload = frame.payload
            for length in 0..<payload.readableBytes {
                frame.payload = payload.getSlice(at: payload.readerIndex, length: length)!
                #expect(throws: WireError.self) { try Envelope(decoding: frame) }
            }
        }
    }

    @Test func trailingBytesAreRefused() throws {
        var frame = Envelope(requestID: 1, message: .ping(.init(opaque: 7))).frame
        frame.payload.writeInteger(UInt8(0))
        #expect(throws: WireError.trailingBytes(message: "ping", count: 1)) { try Envelope(decoding: frame) }
    }

    @Test func tensorsAreRawLittleEndianFloats() {
        var buffer = ByteBuffer()
        FloatTensor(shape: [1, 2], values: [1, -2]).write(to: &buffer)
        #expect(buffer.hex == "02" + "00000001" + "00000002" + "0000803f" + "000000c0")
    }

    @Test func aTensorsEncodedSizeIsWhatItWrites() {
        var rng = SeededRandom(seed: 77)
        for _ in 0..<100 {
            let tensor = FloatTensor.random(using: &rng)
            var buffer = ByteBuffer()
            tensor.write(to: &buffer)
            #expect(tensor.encodedSize == buffer.readableBytes)
        }
    }

    @Test func stringsMustBeUTF8() {
        var buffer = ByteBuffer(bytes: [0, 0, 0, 2, 0xC3, 0x28])
        #expect(throws: WireError.invalidUTF8(field: "text")) { try String(from: &buffer, field: "text") }
    }

    @Test func retryClassesFollowTheCodeRanges() {
        #expect(ErrorCode.frameTooLarge.retryClass == .notRetryable)
        #expect(ErrorCode.notFound.retryClass == .notRetryable)
        #expect(ErrorCode.unavailable.retryClass == .retryable)
        #expect(ErrorCode.overloaded.retryClass == .overloaded)
        #expect(ErrorCode.retryClass(of: 499) == .overloaded)
        #expect(ErrorCode.retryClass(of: 999) == .notRetryable)
        #expect(Set(ErrorCode.allCases.map(\.rawValue)).count == ErrorCode.allCases.count)
    }

    @Test("the generated Swift is what protocol/tools/generate_swift.py writes today", .enabled(if: python3 != nil),
          arguments: [("codec", "Sources/WireProtocol/Catalogue.swift"), ("random", "Tests/WireProtocolTests/RandomValues.swift")])
    func generatedCodeIsUpToDate(which: String, path: String) throws {
        let (status, output) = try runPython(["protocol/tools/generate_swift.py", "--stdout", which])
        #expect(status == 0, "\(output)")
        let committed = try String(contentsOf: repositoryRoot.appendingPathComponent(path), encoding: .utf8)
        #expect(output == committed, "run python3 protocol/tools/generate_swift.py")
    }
}
