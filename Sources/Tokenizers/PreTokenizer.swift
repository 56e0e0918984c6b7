/// The byte-level pre-tokenization of Hugging Face `tokenizers`: splitting text into the pieces that
/// BPE merges within, by the GPT-2 and cl100k (Llama 3) patterns, digits, and the ByteLevel step.
///
/// The split patterns are matched by hand-written scanners rather than a regex engine: they follow
/// Oniguruma's leftmost, first-alternative-wins backtracking for exactly these patterns, with its
/// Unicode classes (`\p{L}`: general category L*, `\p{N}`: N*, `\s`: the White_Space property), and
/// run in one pass over the scalars. Swift Regex on Linux supports the syntax but is several times
/// slower, and its `\s` and case folding are not spelled out to match Oniguruma's.

/// The split patterns that the scanners implement, by the exact text `tokenizer.json` stores.
public enum SplitPattern: Sendable, Equatable {
    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
    /// also the one the ByteLevel pre-tokenizer applies with `use_regex`.
    case gpt2
    /// cl100k's (Llama 3) `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`; `maxDigits` 1 is Qwen2's variant (`\p{N}`).
    case cl100k(maxDigits: Int)

    public static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    public static let llama3Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    public static let qwen2Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The scanner for a regex as `tokenizer.json` writes it, or nil for a pattern it does not know.
    public init?(regex: String) {
        switch regex {
        case Self.gpt2Source: self = .gpt2
        case Self.llama3Source: self = .cl100k(maxDigits: 3)
        case Self.qwen2Source: self = .cl100k(maxDigits: 1)
        default: return nil
        }
    }

    /// The consecutive ranges of `text` that the pattern's matches and the gaps between them make
    /// (the `Isolated` behaviour). The patterns match every character, so there are no gaps.
    func split(_ text: [Unicode.Scalar]) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        split(text, text.map { CharacterClass($0) }, within: text.indices, into: &pieces)
        return pieces
    }

    /// The pieces of `text[range]` (with `classes` the class of each scalar of `text`), appended.
    func split(_ text: [Unicode.Scalar], _ classes: [CharacterClass], within range: Range<Int>, into pieces: inout [Range<Int>]) {
        var start = range.lowerBound
        let n = range.upperBound
        while start < n {
            let end: Int
            switch self {
            case .gpt2: end = Self.gpt2Match(text, classes, at: start, end: n)
            case .cl100k(let maxDigits): end = Self.cl100kMatch(text, classes, at: start, end: n, maxDigits: maxDigits)
            }
            pieces.append(start..<end)
            start = end
        }
    }

    // MARK: Scanners. Each returns the end of the match at `i`; i + 1 if no alternative matches
    // (not reachable for these patterns, whose alternatives cover every scalar).

    private static func gpt2Match(_ s: [Unicode.Scalar], _ c: [CharacterClass], at i: Int, end n: Int) -> Int {
        // 's|'t|'re|'ve|'m|'ll|'d, case-sensitive.
        if s[i] == "'", i + 1 < n {
            switch s[i + 1] {
            case "s", "t", "m", "d": return i + 2
            case "r", "v": if i + 2 < n && s[i + 2] == "e" { return i + 3 }
            case "l": if i + 2 < n && s[i + 2] == "l" { return i + 3 }
            default: break
            }
        }
        // ` ?X+` for X in letters, numbers, others: the space is taken only if X follows it.
        let space = s[i] == " " ? 1 : 0
        for kind in [CharacterClass.letter, .number, .other] {
            if i + space < n, c[i + space] == kind { return run(c, from: i + space, to: n, of: kind) }
        }
        return whitespaceMatch(c, at: i, end: n) ?? i + 1
    }

    private static func cl100kMatch(_ s: [Unicode.Scalar], _ c: [CharacterClass], at i: Int, end n: Int, maxDigits: Int) -> Int {
        // (?i:'s|'t|'re|'ve|'m|'ll|'d): Oniguruma's case folding also takes ſ (U+017F) for s.
        if s[i] == "'", i + 1 < n {
            func letter(_ k: Int, _ lower: Unicode.Scalar) -> Bool {
                guard k < n else { return false }
                let v = s[k].value
                return v == lower.value || v == lower.value - 32 || (lower == "s" && v == 0x17F)
            }
            if letter(i + 1, "s") || letter(i + 1, "t") || letter(i + 1, "m") || letter(i + 1, "d") { return i + 2 }
            if (letter(i + 1, "r") || letter(i + 1, "v")) && letter(i + 2, "e") { return i + 3 }
            if letter(i + 1, "l") && letter(i + 2, "l") { return i + 3 }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c[i] != .letter && c[i] != .number && !isLineBreak(s[i]), i + 1 < n, c[i + 1] == .letter {
            return run(c, from: i + 1, to: n, of: .letter)
        }
        if c[i] == .letter { return run(c, from: i, to: n, of: .letter) }
        // \p{N}{1,maxDigits}
        if c[i] == .number { return min(run(c, from: i, to: n, of: .number), i + maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let space = s[i] == " " ? 1 : 0
        if i + space < n, c[i + space] == .other {
            var end = run(c, from: i + space, to: n, of: .other)
            while end < n && isLineBreak(s[end]) { end += 1 }
            return end
        }
        // \s*[\r\n]+: the whitespace run up to and including its last line break.
        if c[i] == .whitespace {
            let end = run(c, from: i, to: n, of: .whitespace)
            if let last = (i..<end).last(where: { isLineBreak(s[$0]) }) { return last + 1 }
        }
        return whitespaceMatch(c, at: i, end: n) ?? i + 1
    }

    /// `\s+(?!\S)|\s+`: a whitespace run, less its last scalar when a non-space follows it and it
    /// is longer than one.
    private static func whitespaceMatch(_ c: [CharacterClass], at i: Int, end n: Int) -> Int? {
        guard c[i] == .whitespace else { return nil }
        let end = run(c, from: i, to: n, of: .whitespace)
        if end == n || end - i == 1 { return end }
        return end - 1
    }

    private static func run(_ c: [CharacterClass], from start: Int, to limit: Int, of kind: CharacterClass) -> Int {
        var end = start
        while end < limit && c[end] == kind { end += 1 }
        return end
    }

    private static func isLineBreak(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }
}

/// The classes the split patterns tell apart: `\p{L}`, `\p{N}`, `\s`, and everything else.
enum CharacterClass: UInt8, Sendable {
    case letter, number, whitespace, other

    init(_ scalar: Unicode.Scalar) {
        let v = scalar.value
        if v < 0x10000 {
            self = CharacterClass(rawValue: Self.basicPlane[Int(v)])!
        } else {
            self.init(computing: scalar)
        }
    }

    /// The class of every scalar of the Basic Multilingual Plane, looked up once: Unicode's property
    /// tables cost far more per scalar than an array read.
    static let basicPlane: [UInt8] = (0..<0x10000).map { value in
        Unicode.Scalar(UInt32(value)).map { CharacterClass(computing: $0).rawValue } ?? CharacterClass.other.rawValue
    }

    init(computing scalar: Unicode.Scalar) {
        let v = scalar.value
        if v < 0x80 {
            switch v {
            case 0x41...0x5A, 0x61...0x7A: self = .letter
            case 0x30...0x39: self = .number
            case 0x09...0x0D, 0x20: self = .whitespace
            default: self = .other
            }
            return
        }
        if scalar.properties.isWhitespace {
            self = .whitespace
            return
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other
        }
    }
}

/// One step of a pre-tokenizer sequence, applied to every piece the steps before it made.
public enum PreTokenizerStep: Sendable, Equatable {
    /// `Split` with a known regex, behaviour `Isolated`, not inverted.
    case split(SplitPattern)
    /// `Digits`: each numeric scalar a piece of its own (`individualDigits`), or runs of them.
    case digits(individualDigits: Bool)
    /// `ByteLevel`: a space before each piece that lacks one (`addPrefixSpace`), then the GPT-2
    /// split (`useRegex`). Its mapping of bytes to printable characters is what BPE sees.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Metaspace`: spaces become `replacement`, which is put before the piece (unless it starts
    /// with one) always, never, or only for the text's first piece; with `split`, each replacement
    /// character then starts a new piece.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)

    /// When `Metaspace` puts its replacement character before a piece.
    public enum PrependScheme: String, Sendable, Equatable {
        case always, never, first
    }

    /// Whether the step only cuts its piece (keeps every scalar, adds none), so pieces can stay ranges.
    var onlySplits: Bool {
        switch self {
        case .split, .digits: true
        case .byteLevel(let addPrefixSpace, _): !addPrefixSpace
        case .metaspace: false
        }
    }

    /// The pieces of `text[range]` as ranges, appended, for a step that `onlySplits` (`classes`: the
    /// class of each scalar of `text`).
    func split(_ text: [Unicode.Scalar], _ classes: [CharacterClass], within range: Range<Int>, into pieces: inout [Range<Int>]) {
        switch self {
        case .split(let pattern):
            pattern.split(text, classes, within: range, into: &pieces)
        case .byteLevel(_, let useRegex):
            if useRegex { SplitPattern.gpt2.split(text, classes, within: range, into: &pieces) } else { pieces.append(range) }
        case .digits(let individual):
            // `\p{N}` is exactly Rust's `is_numeric` (no White_Space scalar is a number).
            var start = range.lowerBound
            var previousIsDigit = false
            for index in range {
                let digit = classes[index] == .number
                if index > start && (digit != previousIsDigit || (digit && individual)) {
                    pieces.append(start..<index)
                    start = index
                }
                previousIsDigit = digit
            }
            if start < range.upperBound { pieces.append(start..<range.upperBound) }
        case .metaspace:
            pieces.append(range)  // not reached: Metaspace changes its piece
        }
    }

    /// The pieces of `piece`; `isFirst` says it begins the text (offset 0), for `Metaspace`'s "first".
    func apply(_ piece: [Unicode.Scalar], isFirst: Bool = false) -> [[Unicode.Scalar]] {
        switch self {
        case .metaspace(let replacement, let scheme, let split):
            var replaced = piece.map { $0 == " " ? replacement : $0 }
            let prepend = scheme == .always || (scheme == .first && isFirst)
            if prepend && replaced.first != replacement { replaced.insert(replacement, at: 0) }
            guard split else { return [replaced] }
            var pieces: [[Unicode.Scalar]] = []
            var current: [Unicode.Scalar] = []
            for scalar in replaced {
                if scalar == replacement && !current.isEmpty {
                    pieces.append(current)
                    current = []
                }
                current.append(scalar)
            }
            if !current.isEmpty { pieces.append(current) }
            return pieces
        case .split(let pattern):
            return pattern.split(piece).map { Array(piece[$0]) }
        case .digits(let individual):
            var pieces: [[Unicode.Scalar]] = []
            var current: [Unicode.Scalar] = []
            var currentIsDigit = false
            for scalar in piece {
                let digit = Self.isNumeric(scalar)
                if !current.isEmpty && (digit != currentIsDigit || (digit && individual)) {
                    pieces.append(current)
                    current = []
                }
                current.append(scalar)
                currentIsDigit = digit
            }
            if !current.isEmpty { pieces.append(current) }
            return pieces
        case .byteLevel(let addPrefixSpace, let useRegex):
            var piece = piece
            if addPrefixSpace && !piece.isEmpty && piece.first != " " { piece.insert(" ", at: 0) }
            return useRegex ? SplitPattern.gpt2.split(piece).map { Array(piece[$0]) } : [piece]
        }
    }

    /// Rust's `char::is_numeric` (general categories Nd, Nl, No), which `Digits` uses.
    static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x80 { return scalar.value >= 0x30 && scalar.value <= 0x39 }
        // No White_Space scalar is a number, so the class table answers for the plane it holds.
        if scalar.value < 0x10000 { return CharacterClass(scalar) == .number }
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
}

/// GPT-2's reversible mapping of the 256 byte values to printable characters: bytes that are
/// printable Latin-1 map to themselves, the others to U+0100 onwards in byte order.
public enum ByteLevelMapping {
    /// The character of each byte value.
    public static let characters: [Unicode.Scalar] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        let printableSet = Set(printable)
        var mapped = [Unicode.Scalar](repeating: " ", count: 256)
        for byte in printable { mapped[byte] = Unicode.Scalar(UInt32(byte))! }
        var next: UInt32 = 256
        for byte in 0..<256 where !printableSet.contains(byte) {
            mapped[byte] = Unicode.Scalar(next)!
            next += 1
        }
        return mapped
    }()

    /// The byte of each mapped character.
    public static let bytes: [Unicode.Scalar: UInt8] = {
        var table: [Unicode.Scalar: UInt8] = [:]
        for (byte, character) in characters.enumerated() { table[character] = UInt8(byte) }
        return table
    }()

    /// The bytes a token's characters stand for, as the ByteLevel decoder reads them: the mapped
    /// bytes when every character is a mapped one, else the token's own UTF-8.
    public static func decode(_ token: String) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard let byte = bytes[scalar] else { return Array(token.utf8) }
            result.append(byte)
        }
        return result
    }

    /// The mapped characters of `bytes`, as the ByteLevel pre-tokenizer writes a piece.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var scalars = String.UnicodeScalarView()
        for byte in bytes { scalars.append(characters[Int(byte)]) }
        return String(scalars)
    }
}
