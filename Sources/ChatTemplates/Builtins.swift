import Foundation

// The operators, functions, methods, filters and tests of jinja2 (and Python's str and dict methods) that chat
// templates use; any other raises an error naming it.

extension Value {
    /// Writes Python's `str()` (or `repr()`) of the value; false once `limit` bytes are passed.
    func write(into text: inout String, representation: Bool, limit: Int, depth: Int = 0) -> Bool {
        // A namespace may hold itself: printing stops at a depth no built value reaches.
        guard depth <= 1000 else { return false }
        switch self {
        case .string(let value) where !representation: text += value
        case .undefined where !representation: break
        case .list(let items), .tuple(let items):
            var isTuple = false
            if case .tuple = self { isTuple = true }
            text += isTuple ? "(" : "["
            for (index, item) in items.enumerated() {
                if index > 0 { text += ", " }
                guard item.write(into: &text, representation: true, limit: limit, depth: depth + 1) else { return false }
            }
            text += isTuple ? (items.count == 1 ? ",)" : ")") : "]"
        case .dictionary(let dictionary):
            text += "{"
            for (index, entry) in dictionary.entries.enumerated() {
                if index > 0 { text += ", " }
                guard entry.key.write(into: &text, representation: true, limit: limit, depth: depth + 1) else { return false }
                text += ": "
                guard entry.value.write(into: &text, representation: true, limit: limit, depth: depth + 1) else { return false }
            }
            text += "}"
        case .namespace(let namespace):
            text += "<Namespace "
            guard Value.dictionary(namespace.attributes).write(into: &text, representation: true, limit: limit, depth: depth + 1) else {
                return false
            }
            text += ">"
        default: text += self.representation
        }
        return text.utf8.count <= limit
    }

    /// How deeply containers nest in the value, counted no further than `limit + 1`; `visits` counts the values
    /// looked at (the caller charges them).
    func nestingDepth(limit: Int, visits: inout Int) -> Int {
        visits += 1
        // A value shared many times over (or holding itself) unfolds exponentially: past a million looks, refuse it.
        guard limit >= 0, visits <= 1_000_000 else { return limit + 2 }
        var children: [Value] = []
        switch self {
        case .list(let items), .tuple(let items): children = items
        case .dictionary(let dictionary): children = dictionary.entries.map(\.value)
        case .namespace(let namespace): children = namespace.attributes.entries.map(\.value)
        case .loop(let state): children = [state.previous, state.next].compactMap { $0 }
        case .method(let receiver, _): children = [receiver.value]
        default: return 0
        }
        var deepest = 0
        for child in children {
            switch child {
            case .list, .tuple, .dictionary, .namespace, .loop, .method:
                deepest = max(deepest, child.nestingDepth(limit: limit - 1, visits: &visits))
                if deepest > limit { return deepest + 1 }
            default: visits += 1
            }
        }
        return deepest + 1
    }
}

/// Python's `json.dumps`, as transformers' `tojson` filter calls it.
struct JSONWriter {
    var indent: String? = nil
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false
    var ensureASCII = false
    let limit: Int
    var text = ""

    enum Failure: Error { case notSerializable(String), tooLong }

    mutating func write(_ value: Value, level: Int = 0) throws(Failure) {
        if text.utf8.count > limit { throw .tooLong }
        switch value {
        case .none: text += "null"
        case .bool(let value): text += value ? "true" : "false"
        case .int(let value): text += String(value)
        case .double(let value):
            text += value.isNaN ? "NaN" : value.isInfinite ? (value < 0 ? "-Infinity" : "Infinity") : Value.pythonFloat(value)
        case .string(let value): writeString(value)
        case .list(let items), .tuple(let items):
            guard !items.isEmpty else {
                text += "[]"
                return
            }
            text += "["
            for (index, item) in items.enumerated() {
                if index > 0 { text += itemSeparator }
                newline(level + 1)
                try write(item, level: level + 1)
            }
            newline(level)
            text += "]"
        case .dictionary(let dictionary):
            guard !dictionary.entries.isEmpty else {
                text += "{}"
                return
            }
            var entries: [(key: String, value: Value)] = []
            for entry in dictionary.entries {
                switch entry.key {
                case .string(let key): entries.append((key, entry.value))
                case .int(let key): entries.append((String(key), entry.value))
                case .double(let key): entries.append((Value.pythonFloat(key), entry.value))
                case .bool(let key): entries.append((key ? "true" : "false", entry.value))
                case .none: entries.append(("null", entry.value))
                default: throw .notSerializable("keys must be str, int, float, bool or None, not \(entry.key.typeName)")
                }
            }
            if sortKeys { entries.sort { $0.key.unicodeScalars.lexicographicallyPrecedes($1.key.unicodeScalars) } }
            text += "{"
            for (index, entry) in entries.enumerated() {
                if index > 0 { text += itemSeparator }
                newline(level + 1)
                writeString(entry.key)
                text += keySeparator
                try write(entry.value, level: level + 1)
            }
            newline(level)
            text += "}"
        default:
            throw .notSerializable("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private mutating func newline(_ level: Int) {
        guard let indent else { return }
        text += "\n" + String(repeating: indent, count: level)
    }

    private mutating func writeString(_ value: String) {
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\u{08}": out.append(contentsOf: "\\b".unicodeScalars)
            case "\u{0C}": out.append(contentsOf: "\\f".unicodeScalars)
            default:
                if scalar.value < 0x20 || (ensureASCII && scalar.value > 0x7E) {
                    if scalar.value > 0xFFFF {
                        let value = scalar.value - 0x10000
                        out.append(contentsOf: String(format: "\\u%04x\\u%04x", 0xD800 + (value >> 10), 0xDC00 + (value & 0x3FF)).unicodeScalars)
                    } else {
                        out.append(contentsOf: String(format: "\\u%04x", scalar.value).unicodeScalars)
                    }
                } else {
                    out.append(scalar)
                }
            }
        }
        out.append("\"")
        text.unicodeScalars.append(contentsOf: out)
    }
}

/// Byte-level search in UTF-8 (which compares code points, as Python does).
func firstRange(of needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Range<Int>? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty ? start..<start : nil }
    var index = start
    while index + needle.count <= haystack.count {
        if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) {
            return index..<index + needle.count
        }
        index += 1
    }
    return nil
}

func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

extension Renderer {
    // MARK: Operators

    mutating func binary(_ op: String, _ left: Value, _ right: Value, at offset: Int) throws(ChatTemplateError) -> Value {
        if op == "~" { return try made(try text(of: left, at: offset) + text(of: right, at: offset), at: offset) }
        if left.isUndefined { throw undefinedError(left, at: offset) }
        if right.isUndefined { throw undefinedError(right, at: offset) }
        switch (op, left, right) {
        case ("+", .string(let a), .string(let b)): return try made(a + b, at: offset)
        case ("+", .list(let a), .list(let b)): return try made(list: a + b, at: offset)
        case ("+", .tuple(let a), .tuple(let b)): return try made(list: a + b, tuple: true, at: offset)
        case ("*", .string(let a), _), ("*", _, .string(let a)):
            guard case .int(let count)? = (left.numeric != nil ? left : right).numeric else { break }
            guard count <= 0 || a.utf8.count * count <= limits.maxOutputBytes else {
                throw ChatTemplateError.limit("a string of more than \(limits.maxOutputBytes) bytes (at \(lexer.position(of: offset)))")
            }
            return try made(String(repeating: a, count: max(0, count)), at: offset)
        case ("*", .list(let a), _), ("*", _, .list(let a)):
            guard case .int(let count)? = (left.numeric != nil ? left : right).numeric else { break }
            guard count <= 0 || a.count * count <= limits.maxListItems else {
                throw ChatTemplateError.limit("a list of more than \(limits.maxListItems) items (at \(lexer.position(of: offset)))")
            }
            return try made(list: Array([[Value]](repeating: a, count: max(0, count)).joined()), at: offset)
        case ("%", .string, _):
            throw ChatTemplateError.unsupported("printf-style string formatting with %", lexer.position(of: offset))
        default: break
        }
        guard let a = left.numeric, let b = right.numeric else {
            throw fail("unsupported operand type(s) for \(op): '\(left.typeName)' and '\(right.typeName)'", at: offset)
        }
        if case .int(let x) = a, case .int(let y) = b, op != "/" {
            let result: (Int, Bool)
            switch op {
            case "+": result = x.addingReportingOverflow(y)
            case "-": result = x.subtractingReportingOverflow(y)
            case "*": result = x.multipliedReportingOverflow(by: y)
            case "//", "%":
                guard y != 0 else { throw fail("integer division or modulo by zero", at: offset) }
                guard !(x == .min && y == -1) else { throw fail("integer overflow", at: offset) }
                var quotient = x / y
                var remainder = x % y
                if remainder != 0 && ((remainder < 0) != (y < 0)) {
                    quotient -= 1
                    remainder += y
                }
                return .int(op == "//" ? quotient : remainder)
            case "**":
                guard y >= 0 else { return .double(pow(Double(x), Double(y))) }
                var power = 1
                for _ in 0..<min(y, 64) {
                    let (next, overflow) = power.multipliedReportingOverflow(by: x)
                    if overflow { throw fail("integer overflow", at: offset) }
                    power = next
                }
                if y > 64 && abs(x) > 1 { throw fail("integer overflow", at: offset) }
                return .int(y > 64 && x == -1 ? (y % 2 == 0 ? 1 : -1) : power)
            default: throw fail("unsupported operator \(op)", at: offset)
            }
            if result.1 { throw fail("integer overflow", at: offset) }
            return .int(result.0)
        }
        let (x, y) = (a.doubleValue, b.doubleValue)
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/":
            guard y != 0 else { throw fail("division by zero", at: offset) }
            return .double(x / y)
        case "//":
            guard y != 0 else { throw fail("float floor division by zero", at: offset) }
            return .double((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw fail("float modulo", at: offset) }
            let remainder = x.truncatingRemainder(dividingBy: y)
            return .double(remainder != 0 && (remainder < 0) != (y < 0) ? remainder + y : remainder)
        case "**": return .double(pow(x, y))
        default: throw fail("unsupported operator \(op)", at: offset)
        }
    }

    mutating func compare(_ op: String, _ left: Value, _ right: Value, at offset: Int) throws(ChatTemplateError) -> Bool {
        switch op {
        case "==": return left.isEqual(to: right)
        case "!=": return !left.isEqual(to: right)
        case "in": return try contains(right, left, at: offset)
        case "not in": return !(try contains(right, left, at: offset))
        default:
            let order = try ordering(left, right, op: op, at: offset)
            switch op {
            case "<": return order < 0
            case "<=": return order <= 0
            case ">": return order > 0
            default: return order >= 0
            }
        }
    }

    private mutating func ordering(_ left: Value, _ right: Value, op: String, at offset: Int) throws(ChatTemplateError) -> Int {
        if left.isUndefined { throw undefinedError(left, at: offset) }
        if right.isUndefined { throw undefinedError(right, at: offset) }
        switch (left, right) {
        case (.string(let a), .string(let b)):
            try charge(min(a.utf8.count, b.utf8.count) / 16, at: offset)
            return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : a.utf8.elementsEqual(b.utf8) ? 0 : 1
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)):
            for (x, y) in zip(a, b) where !x.isEqual(to: y) { return try ordering(x, y, op: op, at: offset) }
            return a.count < b.count ? -1 : a.count == b.count ? 0 : 1
        default:
            guard let a = left.numeric, let b = right.numeric else {
                throw fail("'\(op)' not supported between instances of '\(left.typeName)' and '\(right.typeName)'", at: offset)
            }
            if case .int(let x) = a, case .int(let y) = b { return x < y ? -1 : x == y ? 0 : 1 }
            let (x, y) = (a.doubleValue, b.doubleValue)
            return x < y ? -1 : x == y ? 0 : 1
        }
    }

    /// Python's `element in container`.
    mutating func contains(_ container: Value, _ element: Value, at offset: Int) throws(ChatTemplateError) -> Bool {
        switch container {
        case .undefined: return false
        case .string(let text):
            guard case .string(let needle) = element else {
                throw fail("'in <string>' requires string as left operand, not \(element.typeName)", at: offset)
            }
            try charge(text.utf8.count / 16, at: offset)
            return firstRange(of: Array(needle.utf8), in: Array(text.utf8)) != nil
        case .list(let items), .tuple(let items):
            try charge(items.count, at: offset)
            return items.contains { $0.isEqual(to: element) }
        case .dictionary(let dictionary):
            try charge(dictionary.entries.count, at: offset)
            return dictionary.index(of: element) != nil
        default:
            throw fail("argument of type '\(container.typeName)' is not iterable", at: offset)
        }
    }

    // MARK: Calls

    mutating func call(_ callee: Value, _ call: Call, at offset: Int) throws(ChatTemplateError) -> Value {
        switch callee {
        case .undefined: throw undefinedError(callee, at: offset)
        case .function(let name):
            switch name {
            case "raise_exception":
                throw ChatTemplateError.raised(try text(of: call.argument(0, "message") ?? .none, at: offset))
            case "strftime_now":
                guard case .string(let format)? = call.argument(0, "format") else { throw fail("strftime_now takes a format string", at: offset) }
                return try made(strftime(format, now), at: offset)
            case "namespace", "dict":
                let namespace = Value.Namespace()
                if let first = call.positional.first {
                    guard case .dictionary(let dictionary) = first, call.positional.count == 1 else {
                        throw fail("\(name)() takes at most one mapping argument", at: offset)
                    }
                    namespace.attributes = dictionary
                }
                for (key, value) in call.named { namespace.attributes.set(.string(key), value) }
                if name == "dict" { return try checkNesting(.dictionary(namespace.attributes), at: offset) }
                _ = try checkNesting(.namespace(namespace), at: offset)
                for entry in namespace.attributes.entries {
                    if case .string(let key) = entry.key, key.hasPrefix("_") {
                        throw fail("a namespace attribute cannot start with an underscore: \(key)", at: offset)
                    }
                }
                return .namespace(namespace)
            case "range":
                var bounds: [Int] = []
                for argument in call.positional {
                    guard case .int(let value)? = argument.numeric else { throw fail("range() takes integers", at: offset) }
                    bounds.append(value)
                }
                guard (1...3).contains(bounds.count), call.named.isEmpty else { throw fail("range() takes 1 to 3 integers", at: offset) }
                let (start, stop) = bounds.count == 1 ? (0, bounds[0]) : (bounds[0], bounds[1])
                let step = bounds.count == 3 ? bounds[2] : 1
                guard step != 0 else { throw fail("range() arg 3 must not be zero", at: offset) }
                let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
                guard count <= limits.maxListItems else {
                    throw ChatTemplateError.limit("a range of more than \(limits.maxListItems) items (at \(lexer.position(of: offset)))")
                }
                return try made(list: stride(from: start, to: stop, by: step).map { .int($0) }, at: offset)
            default:
                throw ChatTemplateError.unsupported("the function \(name)()", lexer.position(of: offset))
            }
        case .method(let receiver, let name):
            return try method(name, of: receiver.value, call, at: offset)
        default:
            throw fail("'\(callee.typeName)' object is not callable", at: offset)
        }
    }

    func strftime(_ format: String, _ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        let (year, month, day) = (parts.year ?? 1970, parts.month ?? 1, parts.day ?? 1)
        let (hour, minute, second, weekday) = (parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0, (parts.weekday ?? 1) - 1)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var result = ""
        var characters = format.makeIterator()
        while let character = characters.next() {
            guard character == "%", let directive = characters.next() else {
                result.append(character)
                continue
            }
            switch directive {
            case "Y": result += String(year)
            case "y": result += two(year % 100)
            case "m": result += two(month)
            case "d": result += two(day)
            case "e": result += day < 10 ? " \(day)" : "\(day)"
            case "H": result += two(hour)
            case "I": result += two(hour % 12 == 0 ? 12 : hour % 12)
            case "p": result += hour < 12 ? "AM" : "PM"
            case "M": result += two(minute)
            case "S": result += two(second)
            case "b", "h": result += String(months[month - 1].prefix(3))
            case "B": result += months[month - 1]
            case "a": result += String(days[weekday].prefix(3))
            case "A": result += days[weekday]
            case "j":
                let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
                result += dayOfYear < 10 ? "00\(dayOfYear)" : dayOfYear < 100 ? "0\(dayOfYear)" : "\(dayOfYear)"
            case "%": result += "%"
            default: result += "%" + String(directive)
            }
        }
        return result
    }

    private func stripSet(_ value: Value?, at offset: Int) throws(ChatTemplateError) -> ((Unicode.Scalar) -> Bool) {
        switch value {
        case nil, .none?: return isPythonWhitespace
        case .string(let characters)?:
            let set = Set(characters.unicodeScalars)
            return { set.contains($0) }
        case let other?: throw fail("strip arg must be None or str, not \(other.typeName)", at: offset)
        }
    }

    mutating func strip(_ text: String, _ characters: Value?, leading: Bool, trailing: Bool, at offset: Int) throws(ChatTemplateError) -> Value {
        let isStripped = try stripSet(characters, at: offset)
        var scalars = Substring(text).unicodeScalars[...]
        if leading { while let first = scalars.first, isStripped(first) { scalars.removeFirst() } }
        if trailing { while let last = scalars.last, isStripped(last) { scalars.removeLast() } }
        return try made(String(String.UnicodeScalarView(scalars)), at: offset)
    }

    /// Python's `str.split` (and `rsplit`).
    mutating func split(_ text: String, _ separator: Value?, maxSplit: Int, fromEnd: Bool, at offset: Int) throws(ChatTemplateError) -> Value {
        try charge(text.utf8.count / 16, at: offset)
        var parts: [String] = []
        switch separator {
        case nil, .none?:
            let words = text.unicodeScalars.split(whereSeparator: isPythonWhitespace).map { String(String.UnicodeScalarView($0)) }
            if maxSplit < 0 || words.count <= maxSplit + 1 {
                parts = words
            } else if !fromEnd {
                // The rest after the last split keeps its inner whitespace, with leading whitespace removed.
                var scalars = Substring(text).unicodeScalars[...]
                for _ in 0..<maxSplit {
                    while let first = scalars.first, isPythonWhitespace(first) { scalars.removeFirst() }
                    let word = scalars.prefix { !isPythonWhitespace($0) }
                    parts.append(String(String.UnicodeScalarView(word)))
                    scalars = scalars.dropFirst(word.count)
                }
                while let first = scalars.first, isPythonWhitespace(first) { scalars.removeFirst() }
                parts.append(String(String.UnicodeScalarView(scalars)))
            } else {
                throw ChatTemplateError.unsupported("rsplit() on whitespace with a maxsplit", lexer.position(of: offset))
            }
        case .string(let separator)?:
            guard !separator.isEmpty else { throw fail("empty separator", at: offset) }
            let bytes = Array(text.utf8)
            let needle = Array(separator.utf8)
            var ranges: [Range<Int>] = []
            var start = 0
            while let range = firstRange(of: needle, in: bytes, from: start) {
                ranges.append(range)
                start = range.upperBound
            }
            if maxSplit >= 0 && ranges.count > maxSplit {
                ranges = fromEnd ? Array(ranges.suffix(maxSplit)) : Array(ranges.prefix(maxSplit))
            }
            var from = 0
            for range in ranges {
                parts.append(string(bytes[from..<range.lowerBound]))
                from = range.upperBound
            }
            parts.append(string(bytes[from...]))
        case let other?:
            throw fail("must be str or None, not \(other.typeName)", at: offset)
        }
        return try made(list: parts.map { .string($0) }, at: offset)
    }

    mutating func replace(_ text: String, _ old: Value?, _ new: Value?, count: Value?, at offset: Int) throws(ChatTemplateError) -> Value {
        guard case .string(let old)? = old, case .string(let new)? = new else { throw fail("replace() takes two strings", at: offset) }
        var limit = Int.max
        if let count, case .int(let value)? = count.numeric, value >= 0 { limit = value }
        let bytes = Array(text.utf8)
        let needle = Array(old.utf8)
        var result: [UInt8] = []
        var from = 0
        var replaced = 0
        if needle.isEmpty {
            // Python puts the new text before every character and at the end.
            var pieces: [String] = []
            let scalars = text.unicodeScalars.map { String($0) }
            for index in 0...scalars.count {
                if replaced < limit {
                    pieces.append(new)
                    replaced += 1
                }
                if index < scalars.count { pieces.append(scalars[index]) }
            }
            return try made(pieces.joined(), at: offset)
        }
        while replaced < limit, let range = firstRange(of: needle, in: bytes, from: from) {
            result += bytes[from..<range.lowerBound]
            result += Array(new.utf8)
            from = range.upperBound
            replaced += 1
            if result.count > limits.maxOutputBytes { break }
        }
        result += bytes[from...]
        return try made(string(result[...]), at: offset)
    }

    mutating func method(_ name: String, of receiver: Value, _ call: Call, at offset: Int) throws(ChatTemplateError) -> Value {
        switch receiver {
        case .string(let text):
            switch name {
            case "strip": return try strip(text, call.argument(0, "chars"), leading: true, trailing: true, at: offset)
            case "lstrip": return try strip(text, call.argument(0, "chars"), leading: true, trailing: false, at: offset)
            case "rstrip": return try strip(text, call.argument(0, "chars"), leading: false, trailing: true, at: offset)
            case "startswith", "endswith":
                let candidates: [Value]
                switch call.argument(0, "prefix") {
                case .string?: candidates = [call.argument(0, "prefix")!]
                case .tuple(let items)?: candidates = items
                default: throw fail("\(name) first arg must be str or a tuple of str", at: offset)
                }
                guard call.positional.count <= 1 else {
                    throw ChatTemplateError.unsupported("\(name)() with start and end positions", lexer.position(of: offset))
                }
                for candidate in candidates {
                    guard case .string(let affix) = candidate else { throw fail("\(name) takes strings", at: offset) }
                    let found = name == "startswith" ? text.utf8.starts(with: affix.utf8) : text.utf8.reversed().starts(with: affix.utf8.reversed())
                    if found { return .bool(true) }
                }
                return .bool(false)
            case "split", "rsplit":
                var maxSplit = -1
                if let value = call.argument(1, "maxsplit") {
                    guard case .int(let count)? = value.numeric else { throw fail("maxsplit must be an integer", at: offset) }
                    maxSplit = count
                }
                return try split(text, call.argument(0, "sep"), maxSplit: maxSplit, fromEnd: name == "rsplit", at: offset)
            case "upper": return try made(text.uppercased(), at: offset)
            case "lower": return try made(text.lowercased(), at: offset)
            case "title": return try made(titleCased(text), at: offset)
            case "capitalize": return try made(capitalized(text), at: offset)
            case "replace": return try replace(text, call.argument(0, "old"), call.argument(1, "new"), count: call.argument(2, "count"), at: offset)
            case "join":
                var pieces: [String] = []
                for item in try iterate(call.argument(0, "iterable") ?? .none, at: offset) {
                    guard case .string(let piece) = item else { throw fail("sequence item: expected str instance, \(item.typeName) found", at: offset) }
                    pieces.append(piece)
                }
                return try made(pieces.joined(separator: text), at: offset)
            default: break
            }
        case .dictionary(let dictionary):
            switch name {
            case "items":
                try charge(dictionary.entries.count, at: offset)
                return try made(list: dictionary.entries.map { .tuple([$0.key, $0.value]) }, at: offset)
            case "keys": return try made(list: dictionary.entries.map(\.key), at: offset)
            case "values": return try made(list: dictionary.entries.map(\.value), at: offset)
            case "get":
                guard let key = call.argument(0, "key") else { throw fail("get expected at least 1 argument", at: offset) }
                try charge(dictionary.entries.count, at: offset)
                return dictionary[key] ?? call.argument(1, "default") ?? .none
            default:
                throw fail("the dict method \(name)() would modify the value or is not allowed in a sandboxed template", at: offset)
            }
        case .loop(let state):
            guard !call.positional.isEmpty else { throw fail("no items for cycling given", at: offset) }
            return call.positional[state.index0 % call.positional.count]
        case .list, .tuple:
            throw ChatTemplateError.unsupported("the list method \(name)()", lexer.position(of: offset))
        default: break
        }
        throw ChatTemplateError.unsupported("the \(receiver.typeName) method \(name)()", lexer.position(of: offset))
    }

    func capitalized(_ text: String) -> String {
        guard let first = text.first else { return "" }
        return String(first).uppercased() + text.dropFirst().lowercased()
    }

    /// Python's `str.title`: a letter after a non-letter is upper-cased, other letters lower-cased.
    func titleCased(_ text: String) -> String {
        var result = ""
        var previousIsCased = false
        for character in text {
            let isCased = character.isLetter
            result += isCased ? (previousIsCased ? character.lowercased() : character.uppercased()) : String(character)
            previousIsCased = isCased
        }
        return result
    }

    // MARK: Filters

    mutating func filter(_ name: String, _ value: Value, _ call: Call, at offset: Int) throws(ChatTemplateError) -> Value {
        switch name {
        case "trim": return try strip(try text(of: value, at: offset), call.argument(0, "chars"), leading: true, trailing: true, at: offset)
        case "length", "count":
            switch value {
            case .undefined: return .int(0)
            case .string(let text): return .int(text.unicodeScalars.count)
            case .list(let items), .tuple(let items): return .int(items.count)
            case .dictionary(let dictionary): return .int(dictionary.entries.count)
            default: throw fail("object of type '\(value.typeName)' has no len()", at: offset)
            }
        case "upper": return try made(try text(of: value, at: offset).uppercased(), at: offset)
        case "lower": return try made(try text(of: value, at: offset).lowercased(), at: offset)
        case "capitalize": return try made(capitalized(try text(of: value, at: offset)), at: offset)
        case "title": return try made(titleCased(try text(of: value, at: offset)), at: offset)
        case "string": return try made(try text(of: value, at: offset), at: offset)
        case "safe": return value
        case "default", "d":
            let boolean = call.argument(1, "boolean")?.isTruthy ?? false
            if value.isUndefined || (boolean && !value.isTruthy) { return call.argument(0, "default_value") ?? .string("") }
            return value
        case "join":
            var items = try iterate(value, at: offset)
            if let attribute = call.argument(1, "attribute") { items = try items.map { item throws(ChatTemplateError) in try path(attribute, of: item, at: offset) } }
            let separator = try text(of: call.argument(0, "d") ?? .string(""), at: offset)
            var pieces: [String] = []
            var bytes = 0
            for item in items {
                let piece = try text(of: item, at: offset)
                bytes += piece.utf8.count + separator.utf8.count
                if bytes > limits.maxOutputBytes { throw ChatTemplateError.limit("a joined string of more than \(limits.maxOutputBytes) bytes") }
                pieces.append(piece)
            }
            return try made(pieces.joined(separator: separator), at: offset)
        case "first":
            return try iterate(value, at: offset).first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            return try iterate(value, at: offset).last ?? .undefined(hint: "No last item, sequence was empty.")
        case "list": return try made(list: try iterate(value, at: offset), at: offset)
        case "reverse":
            if case .string(let text) = value { return try made(String(String.UnicodeScalarView(text.unicodeScalars.reversed())), at: offset) }
            return try made(list: try iterate(value, at: offset).reversed(), at: offset)
        case "replace":
            return try replace(try text(of: value, at: offset), call.argument(0, "old"), call.argument(1, "new"), count: call.argument(2, "count"), at: offset)
        case "items":
            switch value {
            case .undefined: return .list([])
            case .dictionary(let dictionary): return try made(list: dictionary.entries.map { .tuple([$0.key, $0.value]) }, at: offset)
            default: throw fail("can only get item pairs from a mapping", at: offset)
            }
        case "tojson":
            var writer = JSONWriter(limit: limits.maxOutputBytes)
            switch call.argument(1, "indent") {
            case nil, .none?: break
            case .int(let width)?:
                guard width <= 64 else { throw fail("tojson indent above 64", at: offset) }
                writer.indent = String(repeating: " ", count: max(0, width))
                writer.itemSeparator = ","
            case .string(let indent)?:
                writer.indent = indent
                writer.itemSeparator = ","
            case let other?: throw fail("tojson indent must be an integer or a string, not \(other.typeName)", at: offset)
            }
            writer.ensureASCII = call.argument(0, "ensure_ascii")?.isTruthy ?? false
            if let separators = call.argument(2, "separators"), !(separators.isEqual(to: .none)) {
                guard case let items = try iterate(separators, at: offset), items.count == 2,
                    case .string(let item) = items[0], case .string(let key) = items[1]
                else { throw fail("tojson separators must be two strings", at: offset) }
                (writer.itemSeparator, writer.keySeparator) = (item, key)
            }
            writer.sortKeys = call.argument(3, "sort_keys")?.isTruthy ?? false
            do {
                try writer.write(value)
            } catch .notSerializable(let message) {
                throw fail(message, at: offset)
            } catch {
                throw ChatTemplateError.limit("JSON of more than \(limits.maxOutputBytes) bytes (at \(lexer.position(of: offset)))")
            }
            return try made(writer.text, at: offset)
        case "abs":
            switch value.numeric {
            case .int(let number)?:
                guard number != .min else { throw fail("integer overflow", at: offset) }
                return .int(abs(number))
            case .double(let number)?: return .double(abs(number))
            default: throw fail("bad operand type for abs(): '\(value.typeName)'", at: offset)
            }
        case "int":
            let fallback = call.argument(0, "default") ?? .int(0)
            switch value {
            case .int, .bool: return value.numeric!
            case .double(let number): return number.isFinite && abs(number) < 9e18 ? .int(Int(number)) : fallback
            case .string(let text):
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                if let number = Int(trimmed) { return .int(number) }
                if let number = Double(trimmed), number.isFinite, abs(number) < 9e18 { return .int(Int(number)) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = call.argument(0, "default") ?? .double(0)
            switch value {
            case .int, .bool, .double: return .double(value.doubleValue)
            case .string(let text): return Double(text.trimmingCharacters(in: .whitespaces)).map { .double($0) } ?? fallback
            default: return fallback
            }
        case "selectattr", "rejectattr", "select", "reject":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var arguments = call.positional
            var attribute: Value? = nil
            if byAttribute {
                guard !arguments.isEmpty else { throw fail("\(name) needs an attribute name", at: offset) }
                attribute = arguments.removeFirst()
            }
            var testName: String? = nil
            if !arguments.isEmpty {
                guard case .string(let named) = arguments.removeFirst() else { throw fail("\(name) needs a test name", at: offset) }
                testName = named
            }
            var result: [Value] = []
            for item in try iterate(value, at: offset) {
                try charge(at: offset)
                let subject = try attribute.map { name throws(ChatTemplateError) in try path(name, of: item, at: offset) } ?? item
                let passes = try testName.map { test throws(ChatTemplateError) in
                    try self.test(test, subject, Call(positional: arguments, named: []), at: offset)
                } ?? subject.isTruthy
                if passes == keep { result.append(item) }
            }
            return try made(list: result, at: offset)
        case "map":
            var result: [Value] = []
            let items = try iterate(value, at: offset)
            if let attribute = call.named.first(where: { $0.name == "attribute" })?.value {
                let fallback = call.named.first(where: { $0.name == "default" })?.value
                for item in items {
                    try charge(at: offset)
                    let mapped = try path(attribute, of: item, at: offset)
                    result.append(mapped.isUndefined ? (fallback ?? mapped) : mapped)
                }
            } else {
                guard case .string(let filterName)? = call.positional.first else { throw fail("map needs a filter name or attribute=", at: offset) }
                let rest = Call(positional: Array(call.positional.dropFirst()), named: call.named)
                for item in items {
                    try charge(at: offset)
                    result.append(try filter(filterName, item, rest, at: offset))
                }
            }
            return try made(list: result, at: offset)
        default:
            throw ChatTemplateError.unsupported("the filter \"\(name)\"", lexer.position(of: offset))
        }
    }

    /// An attribute path as filters name one ("function.name", or an integer index).
    mutating func path(_ attribute: Value, of item: Value, at offset: Int) throws(ChatTemplateError) -> Value {
        if case .int = attribute { return try self.item(attribute, of: item, at: offset) }
        guard case .string(let path) = attribute else { throw fail("an attribute name must be a string", at: offset) }
        var value = item
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            if value.isUndefined { return value }
            value = try self.item(Int(part).map { .int($0) } ?? .string(String(part)), of: value, at: offset)
        }
        return value
    }

    // MARK: Tests

    mutating func test(_ name: String, _ value: Value, _ call: Call, at offset: Int) throws(ChatTemplateError) -> Bool {
        func other() throws(ChatTemplateError) -> Value {
            guard let argument = call.positional.first ?? call.named.first?.value else { throw fail("the test \"\(name)\" needs an argument", at: offset) }
            return argument
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "number": return value.numeric != nil
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .dictionary = value { return true } else { return false }
        case "iterable":
            switch value {
            case .undefined, .string, .list, .tuple, .dictionary, .loop: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .string, .list, .tuple, .dictionary: return true
            default: return false
            }
        case "callable":
            switch value {
            case .function, .method: return true
            default: return false
            }
        case "equalto", "eq", "==": return value.isEqual(to: try other())
        case "ne", "!=": return !value.isEqual(to: try other())
        case "lt", "<", "lessthan": return try compare("<", value, try other(), at: offset)
        case "le", "<=": return try compare("<=", value, try other(), at: offset)
        case "gt", ">", "greaterthan": return try compare(">", value, try other(), at: offset)
        case "ge", ">=": return try compare(">=", value, try other(), at: offset)
        case "in": return try contains(try other(), value, at: offset)
        case "sameas":
            let argument = try other()
            switch (value, argument) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            // CPython caches small ints and interns short strings: they are the same object.
            case (.int(let a), .int(let b)): return a == b && (-5...256).contains(a)
            case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "odd", "even":
            guard case .int(let number)? = value.numeric else { throw fail("the test \"\(name)\" needs an integer", at: offset) }
            return (number % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard case .int(let number)? = value.numeric, case .int(let divisor)? = try other().numeric, divisor != 0 else {
                throw fail("divisibleby needs a non-zero integer", at: offset)
            }
            return number % divisor == 0
        case "lower": if case .string(let text) = value { return text == text.lowercased() } else { return false }
        case "upper": if case .string(let text) = value { return text == text.uppercased() } else { return false }
        default:
            throw ChatTemplateError.unsupported("the test \"\(name)\"", lexer.position(of: offset))
        }
    }
}
