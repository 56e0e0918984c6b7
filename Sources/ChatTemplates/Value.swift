import Foundation

/// A value a template works on: Python's types as jinja2 sees them.
enum Value {
    /// A missing variable, key or attribute; `hint` says what was missing, for error messages.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dictionary(Dictionary)
    case namespace(Namespace)
    indirect case loop(LoopState)
    case function(String)
    case method(receiver: Box, name: String)

    /// A dict keeping its insertion order, as Python's.
    struct Dictionary {
        var entries: [(key: Value, value: Value)] = []

        func index(of key: Value) -> Int? { entries.firstIndex { $0.key.isEqual(to: key) } }
        subscript(key: Value) -> Value? { index(of: key).map { entries[$0].value } }
        mutating func set(_ key: Value, _ value: Value) {
            if let index = index(of: key) { entries[index].value = value } else { entries.append((key, value)) }
        }
    }

    /// `namespace()`: the one mutable object of a template, shared by reference.
    final class Namespace {
        var attributes = Dictionary()
    }

    /// A method's receiver (an indirect enum case cannot hold itself).
    final class Box {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    struct LoopState {
        var index0: Int
        var length: Int
        var previous: Value?
        var next: Value?
    }

    static func string(of text: Substring) -> Value { .string(String(text)) }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Python's truth value.
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let value): value
        case .int(let value): value != 0
        case .double(let value): value != 0
        case .string(let value): !value.isEmpty
        case .list(let items), .tuple(let items): !items.isEmpty
        case .dictionary(let dictionary): !dictionary.entries.isEmpty
        case .namespace, .loop, .function, .method: true
        }
    }

    /// The Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dictionary: "dict"
        case .namespace: "Namespace"
        case .loop: "LoopContext"
        case .function: "function"
        case .method: "method"
        }
    }

    /// Python's `==`.
    func isEqual(to other: Value) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.isEqual(to: $1) }
        case (.dictionary(let a), .dictionary(let b)):
            return a.entries.count == b.entries.count && a.entries.allSatisfy { entry in b[entry.key].map { $0.isEqual(to: entry.value) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a == b
        default:
            if let a = numeric, let b = other.numeric {
                if case .int(let x) = a, case .int(let y) = b { return x == y }
                return a.doubleValue == b.doubleValue
            }
            return false
        }
    }

    /// Booleans are Python ints.
    var numeric: Value? {
        switch self {
        case .bool(let value): .int(value ? 1 : 0)
        case .int, .double: self
        default: nil
        }
    }

    var doubleValue: Double {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        case .bool(let value): value ? 1 : 0
        default: .nan
        }
    }

    /// Python's `str()` (jinja2 prints an undefined value as nothing).
    var text: String {
        switch self {
        case .undefined: ""
        case .string(let value): value
        default: representation
        }
    }

    /// Python's `repr()`.
    var representation: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let value): value ? "True" : "False"
        case .int(let value): String(value)
        case .double(let value): Self.pythonFloat(value)
        case .string(let value): Self.pythonStringLiteral(value)
        case .list(let items): "[" + items.map(\.representation).joined(separator: ", ") + "]"
        case .tuple(let items):
            items.count == 1 ? "(" + items[0].representation + ",)" : "(" + items.map(\.representation).joined(separator: ", ") + ")"
        case .dictionary(let dictionary):
            "{" + dictionary.entries.map { $0.key.representation + ": " + $0.value.representation }.joined(separator: ", ") + "}"
        case .namespace: "<Namespace>"
        case .loop: "<LoopContext>"
        case .function(let name): "<function \(name)>"
        case .method(_, let name): "<built-in method \(name)>"
        }
    }

    /// Python's float repr: the shortest round-trip digits, positional from 1e-4 up to 1e16, else with an exponent.
    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        let sign = value.sign == .minus ? "-" : ""
        let swift = "\(abs(value))"
        var mantissa = Substring(swift)
        var exponent = 0
        if let e = swift.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = swift[..<e]
            exponent = Int(swift[swift.index(after: e)...]) ?? 0
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        var digits = Array(parts[0] + (parts.count > 1 ? parts[1] : ""))
        var point = parts[0].count + exponent
        while digits.count > 1, digits.first == "0" {
            digits.removeFirst()
            point -= 1
        }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        if digits == ["0"] { return sign + "0.0" }
        let scientific = point - 1
        if scientific >= -4 && scientific < 16 {
            if point <= 0 { return sign + "0." + String(repeating: "0", count: -point) + String(digits) }
            if point >= digits.count { return sign + String(digits) + String(repeating: "0", count: point - digits.count) + ".0" }
            return sign + String(digits[..<point]) + "." + String(digits[point...])
        }
        let head = String(digits[0]) + (digits.count > 1 ? "." + String(digits[1...]) : "")
        let magnitude = abs(scientific)
        return sign + head + "e" + (scientific < 0 ? "-" : "+") + (magnitude < 10 ? "0\(magnitude)" : "\(magnitude)")
    }

    /// Python's repr of a str: single quotes unless the text has one and no double quote.
    static func pythonStringLiteral(_ text: String) -> String {
        let quote: Unicode.Scalar = text.unicodeScalars.contains("'") && !text.unicodeScalars.contains("\"") ? "\"" : "'"
        var result = String.UnicodeScalarView()
        result.append(quote)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": result.append(contentsOf: "\\n".unicodeScalars)
            case "\r": result.append(contentsOf: "\\r".unicodeScalars)
            case "\t": result.append(contentsOf: "\\t".unicodeScalars)
            case quote: result.append("\\"); result.append(quote)
            default:
                if scalar.value < 0x20 || (0x7F...0xA0).contains(scalar.value) || scalar.value == 0xAD {
                    result.append(contentsOf: String(format: "\\x%02x", scalar.value).unicodeScalars)
                } else {
                    result.append(scalar)
                }
            }
        }
        result.append(quote)
        var string = ""
        string.unicodeScalars = result
        return string
    }
}
