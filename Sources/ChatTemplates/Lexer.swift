/// Where a construct starts in the template: 1-based line and column (in characters, after jinja2's newline
/// normalization).
public struct SourcePosition: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var description: String { "line \(line), column \(column)" }

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

/// A token of the template, as jinja2's lexer makes them with `trim_blocks` and `lstrip_blocks` on.
enum TokenKind: Equatable, Sendable {
    case text(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case symbol(String)
    case end
}

struct Token: Sendable {
    var kind: TokenKind
    var offset: Int
}

/// Python's `str.isspace` set, which jinja2's `rstrip` and `\s` strip.
func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: true
    default: false
    }
}

/// jinja2's source preparation: `splitlines()` joined by "\n", which normalizes every line break and drops one
/// trailing newline (`keep_trailing_newline=False`).
func normalizedSource(_ text: String) -> [Unicode.Scalar] {
    var lines: [[Unicode.Scalar]] = [[]]
    let scalars = Array(text.unicodeScalars)
    var index = 0
    while index < scalars.count {
        let scalar = scalars[index]
        switch scalar.value {
        case 0x0D:
            if index + 1 < scalars.count, scalars[index + 1] == "\n" { index += 1 }
            lines.append([])
        case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
            lines.append([])
        default:
            lines[lines.count - 1].append(scalar)
        }
        index += 1
    }
    // splitlines gives no empty last line after a final break.
    if lines.count > 1, lines.last!.isEmpty { lines.removeLast() }
    var result: [Unicode.Scalar] = []
    for (number, line) in lines.enumerated() {
        if number > 0 { result.append("\n") }
        result += line
    }
    return result
}

struct Lexer: Sendable {
    let source: [Unicode.Scalar]
    var tokens: [Token] = []
    private var position = 0
    /// jinja2's `line_starting`: the last match ended with a newline (or nothing was matched yet).
    private var lineStarting = true

    init(source: [Unicode.Scalar]) { self.source = source }

    func position(of offset: Int) -> SourcePosition {
        var line = 1
        var column = 1
        for scalar in source[0..<min(offset, source.count)] {
            if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return SourcePosition(line: line, column: column)
    }

    func fail(_ message: String, at offset: Int) -> ChatTemplateError {
        .syntax(message, position(of: offset))
    }

    private func starts(_ text: String, at offset: Int) -> Bool {
        var index = offset
        for scalar in text.unicodeScalars {
            guard index < source.count, source[index] == scalar else { return false }
            index += 1
        }
        return true
    }

    mutating func tokenize() throws(ChatTemplateError) -> [Token] {
        while position < source.count {
            // The next tag start.
            var tagStart = position
            var tag: Character? = nil
            while tagStart + 1 < source.count {
                if source[tagStart] == "{", ["{", "%", "#"].contains(source[tagStart + 1]) {
                    tag = Character(source[tagStart + 1])
                    break
                }
                tagStart += 1
            }
            guard let tag else {
                appendText(Array(source[position...]), offset: position)
                lineStarting = source.last == "\n"
                position = source.count
                break
            }
            var text = Array(source[position..<tagStart])
            let sign: Unicode.Scalar? =
                tagStart + 2 < source.count && (source[tagStart + 2] == "-" || source[tagStart + 2] == "+") ? source[tagStart + 2] : nil
            if sign == "-" {
                while let last = text.last, isPythonWhitespace(last) { text.removeLast() }
            } else if sign != "+" && tag != "{" {
                // lstrip_blocks: whitespace alone between the line's start and a block or comment tag goes.
                let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if lineStart > 0 || lineStarting, lineStart < text.count, text[lineStart...].allSatisfy(isPythonWhitespace) {
                    text.removeSubrange(lineStart...)
                }
            }
            appendText(text, offset: position)
            position = tagStart + 2 + (sign == nil ? 0 : 1)
            switch tag {
            case "#": try skipComment(from: tagStart)
            case "{":
                tokens.append(Token(kind: .variableBegin, offset: tagStart))
                try lexExpression(closing: "}", begin: tagStart)
            default:
                if isRawBlock() { throw ChatTemplateError.unsupported("the raw block", position(of: tagStart)) }
                tokens.append(Token(kind: .blockBegin, offset: tagStart))
                try lexExpression(closing: "%", begin: tagStart)
            }
        }
        tokens.append(Token(kind: .end, offset: source.count))
        return tokens
    }

    private func isRawBlock() -> Bool {
        var index = position
        while index < source.count, isPythonWhitespace(source[index]) { index += 1 }
        return starts("raw", at: index) && (index + 3 >= source.count || !isNameScalar(source[index + 3]))
    }

    private mutating func appendText(_ text: [Unicode.Scalar], offset: Int) {
        guard !text.isEmpty else { return }
        var string = ""
        string.unicodeScalars.append(contentsOf: text)
        tokens.append(Token(kind: .text(string), offset: offset))
    }

    /// After an end tag: "-" strips all whitespace after it; otherwise (block and comment tags, trim_blocks)
    /// one newline goes; "+" keeps it.
    private mutating func afterEndTag(stripAll: Bool, trimNewline: Bool) {
        if stripAll {
            while position < source.count, isPythonWhitespace(source[position]) { position += 1 }
        } else if trimNewline, position < source.count, source[position] == "\n" {
            position += 1
        }
        lineStarting = position > 0 && source[position - 1] == "\n"
    }

    private mutating func skipComment(from begin: Int) throws(ChatTemplateError) {
        while position + 1 < source.count {
            if source[position] == "#", source[position + 1] == "}" {
                let sign = position > 0 ? source[position - 1] : " "
                position += 2
                afterEndTag(stripAll: sign == "-", trimNewline: sign != "+")
                return
            }
            position += 1
        }
        throw fail("the comment is never closed with #}", at: begin)
    }

    private func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
    }

    private mutating func lexExpression(closing: Unicode.Scalar, begin: Int) throws(ChatTemplateError) {
        var depth = 0
        while true {
            while position < source.count, isPythonWhitespace(source[position]) { position += 1 }
            guard position < source.count else {
                throw fail(closing == "}" ? "the expression is never closed with }}" : "the block is never closed with %}", at: begin)
            }
            let start = position
            let scalar = source[position]
            // The end tag, when brackets balance.
            if depth == 0 {
                let strip = scalar == "-" || (closing == "%" && scalar == "+")
                let tagAt = strip ? position + 1 : position
                if tagAt + 1 < source.count, source[tagAt] == closing, source[tagAt + 1] == "}" {
                    position = tagAt + 2
                    tokens.append(Token(kind: closing == "}" ? .variableEnd : .blockEnd, offset: start))
                    afterEndTag(stripAll: scalar == "-", trimNewline: closing == "%" && scalar != "+")
                    return
                }
            }
            if scalar == "_" || scalar.properties.isAlphabetic {
                while position < source.count, isNameScalar(source[position]) { position += 1 }
                var name = ""
                name.unicodeScalars.append(contentsOf: source[start..<position])
                tokens.append(Token(kind: .name(name), offset: start))
            } else if ("0"..."9").contains(scalar) {
                try lexNumber()
            } else if scalar == "'" || scalar == "\"" {
                try lexString(quote: scalar)
            } else {
                let symbols = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}"]
                guard let symbol = symbols.first(where: { starts($0, at: position) }) else {
                    throw fail("unexpected character \"\(scalar)\"", at: position)
                }
                if "([{".contains(symbol) { depth += 1 }
                if ")]}".contains(symbol) { depth = max(0, depth - 1) }
                position += symbol.unicodeScalars.count
                tokens.append(Token(kind: .symbol(symbol), offset: start))
            }
        }
    }

    private mutating func lexNumber() throws(ChatTemplateError) {
        let start = position
        func digits() {
            while position < source.count, ("0"..."9").contains(source[position]) || source[position] == "_" { position += 1 }
        }
        digits()
        var isFloat = false
        if position + 1 < source.count, source[position] == ".", ("0"..."9").contains(source[position + 1]) {
            isFloat = true
            position += 1
            digits()
        }
        if position < source.count, source[position] == "e" || source[position] == "E" {
            var look = position + 1
            if look < source.count, source[look] == "+" || source[look] == "-" { look += 1 }
            if look < source.count, ("0"..."9").contains(source[look]) {
                isFloat = true
                position = look
                digits()
            }
        }
        var text = ""
        text.unicodeScalars.append(contentsOf: source[start..<position].filter { $0 != "_" })
        if isFloat {
            guard let value = Double(text) else { throw fail("\(text) is not a number", at: start) }
            tokens.append(Token(kind: .float(value), offset: start))
        } else {
            guard let value = Int(text) else { throw fail("the integer \(text) is too large", at: start) }
            tokens.append(Token(kind: .integer(value), offset: start))
        }
    }

    /// A string literal, unescaped as jinja2 does (Python's unicode-escape; unknown escapes stay as written).
    private mutating func lexString(quote: Unicode.Scalar) throws(ChatTemplateError) {
        let start = position
        position += 1
        var value = String.UnicodeScalarView()
        while true {
            guard position < source.count else { throw fail("the string is never closed", at: start) }
            let scalar = source[position]
            position += 1
            if scalar == quote { break }
            guard scalar == "\\" else {
                value.append(scalar)
                continue
            }
            guard position < source.count else { throw fail("the string is never closed", at: start) }
            let escaped = source[position]
            position += 1
            switch escaped {
            case "n": value.append("\n")
            case "t": value.append("\t")
            case "r": value.append("\r")
            case "\\": value.append("\\")
            case "'": value.append("'")
            case "\"": value.append("\"")
            case "a": value.append("\u{07}")
            case "b": value.append("\u{08}")
            case "f": value.append("\u{0C}")
            case "v": value.append("\u{0B}")
            case "\n": break
            case "x", "u", "U":
                let width = escaped == "x" ? 2 : escaped == "u" ? 4 : 8
                let hex = position + width <= source.count ? source[position..<position + width] : []
                var text = ""
                text.unicodeScalars.append(contentsOf: hex)
                guard hex.count == width, let code = UInt32(text, radix: 16), let decoded = Unicode.Scalar(code) else {
                    throw fail("a malformed \\\(escaped) escape in a string", at: position - 2)
                }
                value.append(decoded)
                position += width
            case "0"..."7":
                var code = escaped.value - 48
                var count = 1
                while count < 3, position < source.count, ("0"..."7").contains(source[position]) {
                    code = code * 8 + source[position].value - 48
                    position += 1
                    count += 1
                }
                value.append(Unicode.Scalar(code)!)
            default:
                value.append("\\")
                value.append(escaped)
            }
        }
        var text = ""
        text.unicodeScalars = value
        // Adjacent literals concatenate, as in Python.
        if case .string(let previous)? = tokens.last?.kind, tokens.last!.offset < start {
            tokens[tokens.count - 1].kind = .string(previous + text)
        } else {
            tokens.append(Token(kind: .string(text), offset: start))
        }
    }
}
