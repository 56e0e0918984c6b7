import ChatTemplates
import Foundation

/// JSON into template values, objects keeping their key order (tojson and items() print in that order, and
/// Foundation's JSONSerialization forgets it).
struct OrderedJSON {
    let bytes: [UInt8]
    var index = 0

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ data: Data) throws -> TemplateValue {
        var parser = OrderedJSON(bytes: Array(data))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw Failure(description: "trailing bytes at \(parser.index)") }
        return value
    }

    mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
    }

    mutating func value() throws -> TemplateValue {
        skipSpace()
        guard index < bytes.count else { throw Failure(description: "unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var members: [TemplateValue.Member] = []
            skipSpace()
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object([])
            }
            while true {
                skipSpace()
                let key = try string()
                skipSpace()
                guard bytes[index] == UInt8(ascii: ":") else { throw Failure(description: "expected : at \(index)") }
                index += 1
                members.append(.init(key, try value()))
                skipSpace()
                let separator = bytes[index]
                index += 1
                if separator == UInt8(ascii: "}") { return .object(members) }
                guard separator == UInt8(ascii: ",") else { throw Failure(description: "expected , at \(index)") }
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [TemplateValue] = []
            skipSpace()
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .list([])
            }
            while true {
                items.append(try value())
                skipSpace()
                let separator = bytes[index]
                index += 1
                if separator == UInt8(ascii: "]") { return .list(items) }
                guard separator == UInt8(ascii: ",") else { throw Failure(description: "expected , at \(index)") }
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        default:
            let start = index
            while index < bytes.count, !",]} \n\r\t".utf8.contains(bytes[index]) { index += 1 }
            let token = String(decoding: bytes[start..<index], as: UTF8.self)
            switch token {
            case "null": return .none
            case "true": return .bool(true)
            case "false": return .bool(false)
            default:
                if let integer = Int(token) { return .int(integer) }
                if let double = Double(token) { return .double(double) }
                throw Failure(description: "bad token \(token)")
            }
        }
    }

    mutating func string() throws -> String {
        // Let Foundation unescape the one string literal.
        let start = index
        index += 1
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
            if bytes[index] == UInt8(ascii: "\\") { index += 1 }
            index += 1
        }
        index += 1
        let literal = Data(bytes[start..<index])
        return try JSONDecoder().decode(String.self, from: literal)
    }
}

extension TemplateValue {
    subscript(key: String) -> TemplateValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
}
