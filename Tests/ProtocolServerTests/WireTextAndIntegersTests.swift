import TensorCore
import Testing
import WireProtocol

@testable import ProtocolServer

/// The checked conversions of wire integers and the escaping of client text in logs.
@Suite struct WireTextAndIntegersTests {
    @Test func aU64AtOrAboveTwoToTheSixtyThreeIsAnInvalidArgumentNamingTheField() throws {
        #expect(try Int64(wire: UInt64(Int64.max), field: "job") == Int64.max)
        for value in [UInt64(1) << 63, UInt64.max] {
            do {
                _ = try Int64(wire: value, field: "job")
                Issue.record("\(value) converted")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.hasPrefix("job \(value) is out of range"))
            }
        }
    }

    @Test func seededRandomIntegersConvertExactlyOrThrow() throws {
        var random = SeededRandom(seed: 15)
        for _ in 0..<10_000 {
            let value = random.next()
            let converted = try? Int64(wire: value, field: "id")
            #expect(converted == (value < 1 << 63 ? Int64(value) : nil))
            let signed = Int64(bitPattern: value)
            #expect((try? UInt32(wire: signed, field: "n")) == ((0...Int64(UInt32.max)).contains(signed) ? UInt32(signed) : nil))
        }
    }

    @Test func controlCharactersInClientTextAreEscapedForLogs() {
        #expect("alice\n2026-12-07 INFO connected client=root".escapedForLog == "alice\\n2026-12-07 INFO connected client=root")
        #expect("a\r\tb\\c\u{1B}[2J\u{0}\u{7F}\u{2028}\u{202E}".escapedForLog == "a\\r\\tb\\\\c\\u{1b}[2J\\u{0}\\u{7f}\\u{2028}\\u{202e}")
        #expect("plain ascii, émoji 🌊 and 日本".escapedForLog == "plain ascii, émoji 🌊 and 日本")
    }

    @Test func escapedTextNeverHoldsALineBreakOrControlCharacter() {
        var random = SeededRandom(seed: 16)
        for _ in 0..<2000 {
            let scalars = (0..<24).compactMap { _ in Unicode.Scalar(UInt32(random.next() % 0x3000)) }
            let escaped = String(String.UnicodeScalarView(scalars)).escapedForLog
            #expect(!escaped.unicodeScalars.contains { $0.properties.generalCategory == .control || $0 == "\u{2028}" })
        }
    }
}
