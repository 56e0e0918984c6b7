import Foundation

/// A `tokenizer.json` that this implementation cannot load, naming the field at fault.
public struct TokenizerLoadError: Error, Equatable, CustomStringConvertible {
    /// The file, when read from one.
    public var path: String?
    /// The JSON path of the field, e.g. `pre_tokenizer.pretokenizers[0].pattern`.
    public var field: String
    public var message: String

    public init(path: String? = nil, field: String, _ message: String) {
        self.path = path
        self.field = field
        self.message = message
    }

    public var description: String {
        (path.map { "\($0): " } ?? "") + (field.isEmpty ? message : "field \"\(field)\": \(message)")
    }
}

/// A token of `tokenizer.json`'s `added_tokens`: matched in the text before pre-tokenization.
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    /// Special tokens are left out of decoded text when asked to skip them.
    public var special: Bool
    /// Matched only between non-word characters.
    public var singleWord: Bool
    /// Takes the whitespace on its left / right into the match.
    public var leftStrip: Bool
    public var rightStrip: Bool
    /// Matched on the normalized text (a second pass) rather than the raw text.
    public var normalized: Bool
}

/// A Hugging Face `tokenizer.json` byte-level BPE tokenizer (GPT-2, Llama 3, SmolLM style), giving
/// the ids and text that the `tokenizers` library gives.
///
/// Supported: `model.type` "BPE" (merges as "a b" strings or [a, b] pairs, `ignore_merges`,
/// `unk_token`/`fuse_unk`); `normalizer` null; `pre_tokenizer` ByteLevel or a Sequence of
/// Split (the GPT-2, Llama 3 or Qwen2 regex, Isolated) and Digits steps ending in ByteLevel;
/// `post_processor` null, ByteLevel, TemplateProcessing or a Sequence of these; `decoder`
/// ByteLevel. Anything else is refused by a `TokenizerLoadError` naming the field.
public struct BPETokenizer: Sendable {
    /// One more than the largest id of the vocabulary and the added tokens.
    public let vocabularySize: Int
    public let addedTokens: [AddedToken]
    public let preTokenizer: [PreTokenizerStep]
    /// The ids the post-processor's single-sequence template puts around the text.
    public let prefixTokens: [Int]
    public let suffixTokens: [Int]

    struct Merge: Sendable {
        var rank: Int32
        var result: Int32
    }

    let merges: [UInt64: Merge]
    /// The id of each byte's single-character token, or -1.
    let byteTokens: [Int]
    /// The whole vocabulary by the bytes each token stands for, for `ignore_merges`.
    let tokensByBytes: [[UInt8]: Int]
    let ignoreMerges: Bool
    let unknownToken: Int?
    let fuseUnknown: Bool
    /// Per id: the token's text (nil for ids that name no token) and the bytes it decodes to.
    let tokenStrings: [String?]
    let tokenBytes: [[UInt8]]
    let specialIDs: Set<Int>
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher

    /// Reads a `tokenizer.json` file.
    public init(contentsOf path: String) throws(TokenizerLoadError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw TokenizerLoadError(path: path, field: "", "cannot read tokenizer: \(error.localizedDescription)")
        }
        guard let json = object as? [String: Any] else { throw TokenizerLoadError(path: path, field: "", "not a JSON object") }
        try self.init(json: json, path: path)
    }

    /// Builds the tokenizer from a parsed `tokenizer.json` object.
    public init(json: [String: Any], path: String? = nil) throws(TokenizerLoadError) {
        func fail(_ field: String, _ message: String) -> TokenizerLoadError {
            TokenizerLoadError(path: path, field: field, message)
        }
        func isNull(_ value: Any?) -> Bool { value == nil || value is NSNull }
        func kindOf(_ value: Any?) -> String? { (value as? [String: Any])?["type"] as? String }

        // Model.
        guard let model = json["model"] as? [String: Any] else { throw fail("model", "missing") }
        guard model["type"] as? String == "BPE" else {
            throw fail("model.type", "\(model["type"].map { "\"\($0)\"" } ?? "missing") is not supported (only \"BPE\")")
        }
        if let dropout = model["dropout"], !isNull(dropout), (dropout as? NSNumber)?.doubleValue != 0 {
            throw fail("model.dropout", "BPE dropout \(dropout) is not supported")
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[field], !isNull(value), value as? String != "" {
                throw fail("model.\(field)", "\"\(value)\" is not supported (byte-level BPE has none)")
            }
        }
        if model["byte_fallback"] as? Bool == true { throw fail("model.byte_fallback", "byte fallback is not supported (a byte-level BPE needs none)") }
        guard let vocabulary = model["vocab"] as? [String: Any] else { throw fail("model.vocab", "expected an object of token: id") }
        var ids: [String: Int] = [:]
        ids.reserveCapacity(vocabulary.count)
        for (token, value) in vocabulary {
            guard let id = (value as? NSNumber)?.intValue, id >= 0 else { throw fail("model.vocab", "token \"\(token)\" has id \(value)") }
            ids[token] = id
        }

        // Added tokens.
        var added: [AddedToken] = []
        for (index, entry) in ((json["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let entry = entry as? [String: Any], let id = (entry["id"] as? NSNumber)?.intValue, id >= 0,
                  let content = entry["content"] as? String, !content.isEmpty
            else { throw fail("added_tokens[\(index)]", "expected an object with an id and a non-empty content") }
            added.append(AddedToken(
                id: id, content: content, special: entry["special"] as? Bool ?? false,
                singleWord: entry["single_word"] as? Bool ?? false, leftStrip: entry["lstrip"] as? Bool ?? false,
                rightStrip: entry["rstrip"] as? Bool ?? false, normalized: entry["normalized"] as? Bool ?? !(entry["special"] as? Bool ?? false)))
        }
        addedTokens = added

        // Ids to strings and bytes: added tokens take precedence, as in `tokenizers`.
        let size = max(ids.values.max() ?? -1, added.map(\.id).max() ?? -1) + 1
        vocabularySize = size
        var strings = [String?](repeating: nil, count: size)
        for (token, id) in ids { strings[id] = token }
        for token in added { strings[token.id] = token.content }
        tokenStrings = strings
        tokenBytes = strings.map { $0.map(ByteLevelMapping.decode) ?? [] }
        let specialContents = Set(added.filter(\.special).map(\.content))
        specialIDs = Set(strings.indices.filter { strings[$0].map(specialContents.contains) ?? false })
        rawMatcher = AddedTokenMatcher(added.filter { !$0.normalized })
        normalizedMatcher = AddedTokenMatcher(added.filter(\.normalized))

        byteTokens = ByteLevelMapping.characters.map { ids[String($0)] ?? -1 }
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
        var byBytes: [[UInt8]: Int] = [:]
        if ignoreMerges {
            for (token, id) in ids where token.unicodeScalars.allSatisfy({ ByteLevelMapping.bytes[$0] != nil }) {
                byBytes[ByteLevelMapping.decode(token)] = id
            }
        }
        tokensByBytes = byBytes
        if let unknown = model["unk_token"], !isNull(unknown) {
            guard let name = unknown as? String, let id = ids[name] else {
                throw fail("model.unk_token", "\(unknown) is not in the vocabulary")
            }
            unknownToken = id
        } else {
            unknownToken = nil
        }
        fuseUnknown = model["fuse_unk"] as? Bool ?? false

        // Merges, by rank: a later duplicate replaces an earlier one, as in `tokenizers`.
        guard let mergeList = model["merges"] as? [Any] else { throw fail("model.merges", "expected a list") }
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(mergeList.count)
        for (rank, entry) in mergeList.enumerated() {
            let pair: (String, String)
            if let line = entry as? String, let space = line.firstIndex(of: " ") {
                pair = (String(line[..<space]), String(line[line.index(after: space)...]))
            } else if let parts = entry as? [String], parts.count == 2 {
                pair = (parts[0], parts[1])
            } else {
                throw fail("model.merges[\(rank)]", "expected \"a b\" or [\"a\", \"b\"], got \(entry)")
            }
            guard let left = ids[pair.0], let right = ids[pair.1], let result = ids[pair.0 + pair.1] else {
                throw fail("model.merges[\(rank)]", "\"\(pair.0) \(pair.1)\" merges tokens that are not in the vocabulary")
            }
            table[Self.key(left, right)] = Merge(rank: Int32(rank), result: Int32(result))
        }
        merges = table

        // Normalizer.
        if let normalizer = json["normalizer"], !isNull(normalizer) {
            let empty = kindOf(normalizer) == "Sequence" && ((normalizer as? [String: Any])?["normalizers"] as? [Any])?.isEmpty == true
            if !empty {
                throw fail("normalizer", "\(kindOf(normalizer).map { "\"\($0)\"" } ?? "this normalizer") is not supported (only null)")
            }
        }

        // Pre-tokenizer: its steps, flattened, ByteLevel last.
        var steps: [PreTokenizerStep] = []
        func parse(_ value: Any?, at field: String) throws(TokenizerLoadError) {
            guard let object = value as? [String: Any], let kind = object["type"] as? String else {
                throw fail(field, "missing (a byte-level BPE needs a ByteLevel pre-tokenizer)")
            }
            switch kind {
            case "Sequence":
                guard let list = object["pretokenizers"] as? [Any] else { throw fail(field + ".pretokenizers", "expected a list") }
                for (index, item) in list.enumerated() { try parse(item, at: "\(field).pretokenizers[\(index)]") }
            case "ByteLevel":
                steps.append(.byteLevel(
                    addPrefixSpace: object["add_prefix_space"] as? Bool ?? true, useRegex: object["use_regex"] as? Bool ?? true))
            case "Digits":
                steps.append(.digits(individualDigits: object["individual_digits"] as? Bool ?? false))
            case "Split":
                guard let pattern = object["pattern"] as? [String: Any], let regex = pattern["Regex"] as? String else {
                    throw fail(field + ".pattern", "only a {\"Regex\": ...} pattern is supported, got \(object["pattern"] ?? "nothing")")
                }
                guard let known = SplitPattern(regex: regex) else {
                    throw fail(field + ".pattern.Regex", "the pattern \(regex) is not supported (only the GPT-2, Llama 3 and Qwen2 patterns)")
                }
                guard object["behavior"] as? String == "Isolated" else {
                    throw fail(field + ".behavior", "\(object["behavior"] ?? "nothing") is not supported (only \"Isolated\")")
                }
                if object["invert"] as? Bool == true { throw fail(field + ".invert", "an inverted split is not supported") }
                steps.append(.split(known))
            default:
                throw fail(field + ".type", "\"\(kind)\" is not supported (only ByteLevel, Split, Digits, Sequence)")
            }
        }
        try parse(json["pre_tokenizer"], at: "pre_tokenizer")
        let byteLevelSteps = steps.indices.filter { if case .byteLevel = steps[$0] { true } else { false } }
        guard byteLevelSteps == [steps.count - 1] else {
            throw fail("pre_tokenizer", "a byte-level BPE needs exactly one ByteLevel step, the last")
        }
        preTokenizer = steps

        // Post-processor: the single-sequence template.
        var prefix: [Int] = [], suffix: [Int] = []
        func parseProcessor(_ value: Any?, at field: String) throws(TokenizerLoadError) {
            guard let value, !isNull(value) else { return }
            guard let object = value as? [String: Any], let kind = object["type"] as? String else { throw fail(field, "expected an object with a type") }
            switch kind {
            case "ByteLevel": return  // offsets only
            case "Sequence":
                guard let list = object["processors"] as? [Any] else { throw fail(field + ".processors", "expected a list") }
                for (index, item) in list.enumerated() { try parseProcessor(item, at: "\(field).processors[\(index)]") }
            case "TemplateProcessing":
                guard let single = object["single"] as? [Any] else { throw fail(field + ".single", "expected a list") }
                let specials = object["special_tokens"] as? [String: Any] ?? [:]
                var seenSequence = false
                for (index, piece) in single.enumerated() {
                    let piece = piece as? [String: Any]
                    if let sequence = piece?["Sequence"] as? [String: Any] {
                        guard sequence["id"] as? String == "A", !seenSequence else {
                            throw fail("\(field).single[\(index)]", "only one sequence $A is supported")
                        }
                        seenSequence = true
                    } else if let special = piece?["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                        guard let entry = specials[name] as? [String: Any], let tokenIDs = entry["ids"] as? [NSNumber] else {
                            throw fail("\(field).special_tokens", "\"\(name)\" has no ids")
                        }
                        if seenSequence { suffix += tokenIDs.map(\.intValue) } else { prefix += tokenIDs.map(\.intValue) }
                    } else {
                        throw fail("\(field).single[\(index)]", "expected a Sequence or a SpecialToken")
                    }
                }
            default:
                throw fail(field + ".type", "\"\(kind)\" is not supported (only ByteLevel, TemplateProcessing, Sequence)")
            }
        }
        try parseProcessor(json["post_processor"], at: "post_processor")
        prefixTokens = prefix
        suffixTokens = suffix

        // Decoder: ByteLevel, perhaps alone in a Sequence.
        var decoder = json["decoder"]
        if kindOf(decoder) == "Sequence", let list = (decoder as? [String: Any])?["decoders"] as? [Any], list.count == 1 {
            decoder = list[0]
        }
        guard kindOf(decoder) == "ByteLevel" else {
            throw fail("decoder", "\(kindOf(decoder).map { "\"\($0)\"" } ?? "none") is not supported (only ByteLevel)")
        }
    }

    // MARK: Encoding

    /// The ids of `text`: added tokens matched first, the rest pre-tokenized and merged; with the
    /// post-processor's template (e.g. a beginning-of-text token) when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = addSpecialTokens ? prefixTokens : []
        let bytes = Array(text.utf8)
        for (token, range) in rawMatcher.split(bytes, within: 0..<bytes.count) {
            if let token {
                ids.append(token)
                continue
            }
            for (token, range) in normalizedMatcher.split(bytes, within: range) {
                if let token { ids.append(token) } else { encodeOrdinary(bytes[range], into: &ids) }
            }
        }
        if addSpecialTokens { ids += suffixTokens }
        return ids
    }

    /// Pre-tokenizes and merges text that holds no added token.
    func encodeOrdinary(_ bytes: ArraySlice<UInt8>, into ids: inout [Int]) {
        for piece in pieces(of: bytes) { merge(piece, into: &ids) }
    }

    /// The UTF-8 of each piece the pre-tokenizer makes of `bytes`.
    func pieces(of bytes: ArraySlice<UInt8>) -> [[UInt8]] {
        guard !bytes.isEmpty else { return [] }
        var pieces = [Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)]
        for step in preTokenizer {
            pieces = pieces.flatMap { $0.isEmpty ? [] : step.apply($0) }
        }
        return pieces.compactMap { piece in
            guard !piece.isEmpty else { return nil }
            var utf8: [UInt8] = []
            utf8.reserveCapacity(piece.count)
            for scalar in piece { utf8 += UTF8.encode(scalar)! }
            return utf8
        }
    }

    /// The pre-tokenizer's pieces of `text` in byte-level characters, as `tokenizers`'
    /// `pre_tokenizer.pre_tokenize_str` gives them (added tokens are not looked for).
    public func preTokenize(_ text: String) -> [String] {
        pieces(of: Array(text.utf8)[...]).map(ByteLevelMapping.encode)
    }

    static func key(_ left: Int, _ right: Int) -> UInt64 { UInt64(UInt32(left)) << 32 | UInt64(UInt32(right)) }

    /// BPE on one piece: its byte tokens merged lowest rank first (leftmost among equals), as
    /// `tokenizers`' priority queue does.
    func merge(_ bytes: [UInt8], into ids: inout [Int]) {
        if ignoreMerges, let whole = tokensByBytes[bytes] {
            ids.append(whole)
            return
        }
        // Symbols: one per byte, or the unknown token for bytes the vocabulary lacks.
        var symbols: [Int] = []
        symbols.reserveCapacity(bytes.count)
        var pendingUnknown = false
        for byte in bytes {
            let id = byteTokens[Int(byte)]
            if id >= 0 {
                if pendingUnknown, let unknownToken { symbols.append(unknownToken) }
                pendingUnknown = false
                symbols.append(id)
            } else if let unknownToken {
                if pendingUnknown && !fuseUnknown { symbols.append(unknownToken) }
                pendingUnknown = true
            }
        }
        if pendingUnknown, let unknownToken { symbols.append(unknownToken) }
        if symbols.count < 2 {
            ids += symbols
            return
        }

        var next = Array(1...symbols.count)
        next[symbols.count - 1] = -1
        var previous = Array(-1..<(symbols.count - 1))
        var alive = [Bool](repeating: true, count: symbols.count)
        var queue = MergeQueue()
        for position in 0..<(symbols.count - 1) {
            if let merge = merges[Self.key(symbols[position], symbols[position + 1])] {
                queue.push(.init(rank: merge.rank, position: Int32(position), result: merge.result))
            }
        }
        while let top = queue.pop() {
            let position = Int(top.position)
            let right = next[position]
            guard alive[position], right >= 0,
                  let merge = merges[Self.key(symbols[position], symbols[right])], merge.result == top.result
            else { continue }
            symbols[position] = Int(top.result)
            alive[right] = false
            next[position] = next[right]
            if next[right] >= 0 { previous[next[right]] = position }
            if previous[position] >= 0, let merge = merges[Self.key(symbols[previous[position]], symbols[position])] {
                queue.push(.init(rank: merge.rank, position: Int32(previous[position]), result: merge.result))
            }
            if next[position] >= 0, let merge = merges[Self.key(symbols[position], symbols[next[position]])] {
                queue.push(.init(rank: merge.rank, position: top.position, result: merge.result))
            }
        }
        for (position, symbol) in symbols.enumerated() where alive[position] { ids.append(symbol) }
    }

    // MARK: Decoding

    /// The text of `ids` by the ByteLevel decoder (invalid UTF-8 repaired with U+FFFD); special
    /// tokens are left out when `skipSpecialTokens`, ids that name no token always.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes += self.bytes(ofToken: id, skipSpecialTokens: skipSpecialTokens) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes token `id` contributes to decoded text: none for a skipped special token or an
    /// id that names no token.
    public func bytes(ofToken id: Int, skipSpecialTokens: Bool = true) -> [UInt8] {
        guard id >= 0 && id < vocabularySize else { return [] }
        if skipSpecialTokens && specialIDs.contains(id) { return [] }
        return tokenBytes[id]
    }

    /// The token text of `id` as `tokenizer.json` writes it (byte-level characters).
    public func token(for id: Int) -> String? { id >= 0 && id < vocabularySize ? tokenStrings[id] : nil }

    /// Whether `id` is a special added token.
    public func isSpecial(_ id: Int) -> Bool { specialIDs.contains(id) }
}

/// A min-heap of candidate merges by (rank, position).
struct MergeQueue {
    struct Entry {
        var rank: Int32
        var position: Int32
        var result: Int32
        func precedes(_ other: Entry) -> Bool { (rank, position) < (other.rank, other.position) }
    }

    private var heap: [Entry] = []

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var first = parent
            if left < heap.count && heap[left].precedes(heap[first]) { first = left }
            if right < heap.count && heap[right].precedes(heap[first]) { first = right }
            if first == parent { break }
            heap.swapAt(parent, first)
            parent = first
        }
        return top
    }
}

/// Finds added tokens in UTF-8 text, leftmost-longest, with their `single_word`, `lstrip` and
/// `rstrip` rules, as `tokenizers`' added vocabulary does.
struct AddedTokenMatcher: Sendable {
    let tokens: [AddedToken]
    let contents: [[UInt8]]
    /// Token indices by first byte, longest first.
    let byFirstByte: [UInt8: [Int]]

    init(_ tokens: [AddedToken]) {
        let contents = tokens.map { Array($0.content.utf8) }
        var table: [UInt8: [Int]] = [:]
        for index in tokens.indices { table[contents[index][0], default: []].append(index) }
        for key in table.keys { table[key]!.sort { contents[$0].count > contents[$1].count } }
        self.tokens = tokens
        self.contents = contents
        byFirstByte = table
    }

    /// `range` of `text` as consecutive pieces, each an added token's id or ordinary text (nil).
    func split(_ text: [UInt8], within range: Range<Int>) -> [(Int?, Range<Int>)] {
        guard !tokens.isEmpty else { return [(nil, range)] }
        var pieces: [(Int?, Range<Int>)] = []
        var pieceStart = range.lowerBound
        var position = range.lowerBound
        while position < range.upperBound {
            guard let candidates = byFirstByte[text[position]],
                  let index = candidates.first(where: { matches(contents[$0], in: text, at: position, end: range.upperBound) })
            else {
                position += 1
                continue
            }
            let token = tokens[index]
            var start = position, stop = position + contents[index].count
            position = stop
            if token.singleWord {
                let before = start == range.lowerBound ? nil : Self.lastScalar(text[range.lowerBound..<start])
                let after = stop == range.upperBound ? nil : Self.firstScalar(text[stop..<range.upperBound])
                if let before, Self.isWordCharacter(before) { continue }
                if let after, Self.isWordCharacter(after) { continue }
            }
            if token.leftStrip {
                while start > pieceStart, let scalar = Self.lastScalar(text[pieceStart..<start]), scalar.properties.isWhitespace {
                    start -= UTF8.width(scalar)
                }
            }
            if token.rightStrip {
                while stop < range.upperBound, let scalar = Self.firstScalar(text[stop..<range.upperBound]), scalar.properties.isWhitespace {
                    stop += UTF8.width(scalar)
                }
                position = stop
            }
            if pieceStart < start { pieces.append((nil, pieceStart..<start)) }
            pieces.append((token.id, start..<stop))
            pieceStart = stop
        }
        if pieceStart < range.upperBound { pieces.append((nil, pieceStart..<range.upperBound)) }
        return pieces
    }

    private func matches(_ content: [UInt8], in text: [UInt8], at position: Int, end: Int) -> Bool {
        guard position + content.count <= end else { return false }
        for offset in content.indices where text[position + offset] != content[offset] { return false }
        return true
    }

    /// A regex `\w` scalar (Unicode's word characters: Alphabetic, marks, decimal digits,
    /// connector punctuation, joiners), which is what `tokenizers` tests `single_word` against.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    static func firstScalar(_ bytes: ArraySlice<UInt8>) -> Unicode.Scalar? {
        String(decoding: bytes.prefix(4), as: UTF8.self).unicodeScalars.first
    }

    static func lastScalar(_ bytes: ArraySlice<UInt8>) -> Unicode.Scalar? {
        var start = bytes.endIndex - 1
        while start > bytes.startIndex && bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return String(decoding: bytes[start...], as: UTF8.self).unicodeScalars.first
    }
}
