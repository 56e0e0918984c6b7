/// The strict JSON of safetensors headers: a parser that keeps object keys in file order (so
/// duplicate keys can be rejected and names listed as the file lists them), integers as exact
/// text, and reports the byte offset of what is wrong; and the writer's string escaping, which
/// matches serde_json's (the official library's) byte for byte.
enum SafeTensorsJSON {
    indirect enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        /// The number's text as written, validated against the JSON grammar.
        case number(String)
        case bool(Bool)
        case null

        /// "an array", "a string", ...: for error messages.
        var kind: String {
            switch self {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case .number: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            }
        }

        /// The value as an exact integer: a number written without fraction or exponent that fits `Int`.
        var integer: Int? {
            guard case .number(let text) = self, !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
            else { return nil }
            return Int(text)
        }
    }

    struct ParseError: Error {
        var byteOffset: Int
        var message: String
    }

    /// Parses one JSON value filling `bytes` but for surrounding whitespace. `bytes` must be valid UTF-8.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(ParseError) -> Value {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        if parser.position < bytes.count {
            throw parser.error("unexpected \(parser.describeCurrent()) after the top-level value")
        }
        return value
    }

    /// The first byte offset at which `bytes` stop being UTF-8, or nil when they are UTF-8.
    static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// `string` as a JSON string literal, escaped as serde_json escapes it: `"` `\` and control
    /// characters only (`\b \t \n \f \r`, others `\u00xx` in lower-case hex); everything else raw UTF-8.
    static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0..<0x20: out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var position = 0
        var depth = 0
        /// Nesting deeper than this is refused rather than risking the stack (serde_json's limit too).
        static let maximumDepth = 128

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        func error(_ message: String, at offset: Int? = nil) -> ParseError {
            ParseError(byteOffset: offset ?? position, message: message)
        }

        func describeCurrent() -> String {
            guard position < bytes.count else { return "end of header" }
            let byte = bytes[position]
            if byte >= 0x21 && byte < 0x7F { return "character '\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws(ParseError) {
            guard position < bytes.count, bytes[position] == byte else {
                throw error("expected \(what), found \(describeCurrent())")
            }
            position += 1
        }

        mutating func parseValue() throws(ParseError) -> Value {
            guard position < bytes.count else { throw error("expected a value, found end of header") }
            switch bytes[position] {
            case UInt8(ascii: "{"): return try parseObject()
            case UInt8(ascii: "["): return try parseArray()
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try parseLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw error("expected a value, found \(describeCurrent())")
            }
        }

        mutating func enter() throws(ParseError) {
            depth += 1
            if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        }

        mutating func parseObject() throws(ParseError) -> Value {
            try enter()
            defer { depth -= 1 }
            position += 1  // {
            var members: [(key: String, value: Value)] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                position += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                    throw error("expected a string key, found \(describeCurrent())")
                }
                let key = try parseString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':' after an object key")
                skipWhitespace()
                members.append((key, try parseValue()))
                skipWhitespace()
                guard position < bytes.count else { throw error("unterminated object, found end of header") }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                } else if bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    return .object(members)
                } else {
                    throw error("expected ',' or '}' in an object, found \(describeCurrent())")
                }
            }
        }

        mutating func parseArray() throws(ParseError) -> Value {
            try enter()
            defer { depth -= 1 }
            position += 1  // [
            var elements: [Value] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                position += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue())
                skipWhitespace()
                guard position < bytes.count else { throw error("unterminated array, found end of header") }
                if bytes[position] == UInt8(ascii: ",") {
                    position += 1
                } else if bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(elements)
                } else {
                    throw error("expected ',' or ']' in an array, found \(describeCurrent())")
                }
            }
        }

        mutating func parseLiteral(_ literal: StaticString) throws(ParseError) {
            let start = position
            let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
            guard bytes.count - position >= expected.count,
                  bytes[position..<(position + expected.count)].elementsEqual(expected)
            else { throw error("expected a value, found \(describeCurrent())", at: start) }
            position += expected.count
        }

        mutating func parseNumber() throws(ParseError) -> Value {
            let start = position
            func digits(_ parser: inout Parser) -> Int {
                let first = parser.position
                while parser.position < parser.bytes.count,
                      (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.position]) {
                    parser.position += 1
                }
                return parser.position - first
            }
            if bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) else {
                throw error("expected a digit in a number, found \(describeCurrent())")
            }
            if bytes[position] == UInt8(ascii: "0") {
                position += 1
                if position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                    throw error("leading zero in a number")
                }
            } else {
                _ = digits(&self)
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard digits(&self) > 0 else { throw error("expected a digit after '.', found \(describeCurrent())") }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                    position += 1
                }
                guard digits(&self) > 0 else { throw error("expected a digit in an exponent, found \(describeCurrent())") }
            }
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self))
        }

        mutating func parseHex4() throws(ParseError) -> UInt16 {
            guard bytes.count - position >= 4 else { throw error("truncated \\u escape") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("expected a hex digit in a \\u escape, found \(describeCurrent())")
                }
                value = value << 4 | UInt16(digit)
                position += 1
            }
            return value
        }

        mutating func parseString() throws(ParseError) -> String {
            let start = position
            position += 1  // opening quote
            var runStart = position
            var utf8: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("unterminated string", at: start) }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    if utf8.isEmpty {
                        // No escapes: the common case, one copy.
                        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[runStart..<position]), as: UTF8.self)
                        position += 1
                        return text
                    }
                    utf8 += bytes[runStart..<position]
                    position += 1
                    return String(decoding: utf8, as: UTF8.self)
                }
                if byte < 0x20 { throw error("unescaped control character 0x\(String(byte, radix: 16, uppercase: true)) in a string") }
                if byte != UInt8(ascii: "\\") {
                    position += 1
                    continue
                }
                utf8 += bytes[runStart..<position]
                let escapeStart = position
                position += 1
                guard position < bytes.count else { throw error("unterminated string", at: start) }
                let escaped = bytes[position]
                position += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    let unit = try parseHex4()
                    var scalarValue = UInt32(unit)
                    if (0xD800..<0xDC00).contains(unit) {
                        guard bytes.count - position >= 2, bytes[position] == UInt8(ascii: "\\"),
                              bytes[position + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate in a \\u escape", at: escapeStart) }
                        position += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw error("unpaired surrogate in a \\u escape", at: escapeStart)
                        }
                        scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10 | (UInt32(low) - 0xDC00))
                    } else if (0xDC00..<0xE000).contains(unit) {
                        throw error("unpaired surrogate in a \\u escape", at: escapeStart)
                    }
                    utf8 += UTF8.encode(Unicode.Scalar(scalarValue)!)!
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(escaped)))' in a string", at: escapeStart)
                }
                runStart = position
            }
        }
    }
}
