import Foundation
import Synchronization

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

/// A Hugging Face `tokenizer.json` BPE tokenizer, giving the ids and text that the `tokenizers`
/// library gives: byte-level (GPT-2, Llama 3, SmolLM, Qwen2/2.5/3) or sentencepiece-style with
/// byte fallback (Llama 2, Mistral).
///
/// Supported: `model.type` "BPE" (merges as "a b" strings or [a, b] pairs, `ignore_merges`,
/// `unk_token`/`fuse_unk`, `byte_fallback` without ByteLevel); `normalizer` null, NFC, Prepend,
/// Replace (string pattern) or a Sequence of these; `pre_tokenizer` a Sequence of Split (the
/// GPT-2, Llama 3 or Qwen2 regex, Isolated) and Digits steps ending in ByteLevel, or none / Metaspace
/// without ByteLevel; `post_processor` null, ByteLevel, TemplateProcessing or a Sequence of these;
/// `decoder` ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace or a Sequence of these.
/// Anything else is refused by a `TokenizerLoadError` naming the field.
public struct BPETokenizer: Sendable {
    /// One more than the largest id of the vocabulary and the added tokens.
    public let vocabularySize: Int
    public let addedTokens: [AddedToken]
    public let normalizer: [NormalizerStep]
    public let preTokenizer: [PreTokenizerStep]
    /// Whether every step only cuts (no prefix space, no Metaspace), so pieces stay ranges of the text.
    let preTokenizerOnlySplits: Bool
    public let decoder: [DecoderStep]
    /// Whether BPE runs on bytes (a ByteLevel pre-tokenizer) rather than on characters.
    public let isByteLevel: Bool
    /// The ids the post-processor's single-sequence template puts around the text.
    public let prefixTokens: [Int]
    public let suffixTokens: [Int]

    struct Merge: Sendable {
        var rank: Int32
        var result: Int32
    }

    let merges: [UInt64: Merge]
    /// Byte-level: the id of each byte's single-character token, or -1.
    let byteTokens: [Int]
    /// Character-level: the ids of the single-character tokens, by scalar value.
    let characterTokens: [UInt32: Int]
    /// With byte fallback, the id of each byte's `<0xNN>` token, or -1; else empty.
    let fallbackTokens: [Int]
    /// The whole vocabulary by the bytes each token stands for (byte-level) or its UTF-8, for `ignore_merges`.
    let tokensByBytes: [[UInt8]: Int]
    let ignoreMerges: Bool
    let unknownToken: Int?
    let fuseUnknown: Bool
    /// Per id: the token's text (nil for ids that name no token) and the bytes it decodes to.
    let tokenStrings: [String?]
    let tokenBytes: [[UInt8]]
    let specialIDs: Set<Int>
    /// The ids of pieces seen before: text repeats its words, and merging is the costly part.
    let cache = PieceCache()
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
        func stringReplacement(_ object: [String: Any], at field: String) throws(TokenizerLoadError) -> (String, String) {
            guard let pattern = (object["pattern"] as? [String: Any])?["String"] as? String, !pattern.isEmpty else {
                throw fail(field + ".pattern", "only a non-empty {\"String\": ...} pattern is supported, got \(object["pattern"] ?? "nothing")")
            }
            guard let content = object["content"] as? String else { throw fail(field + ".content", "expected a string") }
            return (pattern, content)
        }
        func metaspaceReplacement(_ object: [String: Any], at field: String) throws(TokenizerLoadError) -> Unicode.Scalar {
            guard let text = object["replacement"] as? String ?? (object["replacement"] == nil ? "\u{2581}" : nil),
                  text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first
            else { throw fail(field + ".replacement", "expected one character, got \(object["replacement"] ?? "nothing")") }
            return scalar
        }

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
        let byteFallback = model["byte_fallback"] as? Bool ?? false
        guard let vocabulary = model["vocab"] as? [String: Any] else { throw fail("model.vocab", "expected an object of token: id") }
        var ids: [String: Int] = [:]
        ids.reserveCapacity(vocabulary.count)
        for (token, value) in vocabulary {
            guard let id = (value as? NSNumber)?.intValue, id >= 0, id < Self.largestID else { throw fail("model.vocab", "token \"\(token)\" has id \(value)") }
            ids[token] = id
        }

        // Added tokens.
        var added: [AddedToken] = []
        for (index, entry) in ((json["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let entry = entry as? [String: Any], let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, id < Self.largestID,
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
        let specialContents = Set(added.filter(\.special).map(\.content))
        specialIDs = Set(strings.indices.filter { strings[$0].map(specialContents.contains) ?? false })
        rawMatcher = AddedTokenMatcher(added.filter { !$0.normalized })
        normalizedMatcher = AddedTokenMatcher(added.filter(\.normalized))

        ignoreMerges = model["ignore_merges"] as? Bool ?? false
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

        // Normalizer: its steps, flattened.
        var normalizerSteps: [NormalizerStep] = []
        func parseNormalizer(_ value: Any?, at field: String) throws(TokenizerLoadError) {
            guard let value, !isNull(value) else { return }
            guard let object = value as? [String: Any], let kind = object["type"] as? String else { throw fail(field, "expected an object with a type") }
            switch kind {
            case "Sequence":
                guard let list = object["normalizers"] as? [Any] else { throw fail(field + ".normalizers", "expected a list") }
                for (index, item) in list.enumerated() { try parseNormalizer(item, at: "\(field).normalizers[\(index)]") }
            case "NFC":
                normalizerSteps.append(.nfc)
            case "Prepend":
                guard let prefix = object["prepend"] as? String else { throw fail(field + ".prepend", "expected a string") }
                normalizerSteps.append(.prepend(prefix))
            case "Replace":
                let (pattern, content) = try stringReplacement(object, at: field)
                normalizerSteps.append(.replace(pattern: pattern, content: content))
            default:
                throw fail(field + ".type", "\"\(kind)\" is not supported (only NFC, Prepend, Replace, Sequence)")
            }
        }
        try parseNormalizer(json["normalizer"], at: "normalizer")
        normalizer = normalizerSteps

        // Pre-tokenizer: its steps, flattened, ByteLevel last.
        var steps: [PreTokenizerStep] = []
        func parse(_ value: Any?, at field: String) throws(TokenizerLoadError) {
            guard let value, !isNull(value) else { return }
            guard let object = value as? [String: Any], let kind = object["type"] as? String else {
                throw fail(field, "expected an object with a type")
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
            case "Metaspace":
                let replacement = try metaspaceReplacement(object, at: field)
                let scheme: PreTokenizerStep.PrependScheme
                if let name = object["prepend_scheme"] as? String {
                    guard let known = PreTokenizerStep.PrependScheme(rawValue: name) else {
                        throw fail(field + ".prepend_scheme", "\"\(name)\" is not one of always, never, first")
                    }
                    scheme = known
                } else {
                    scheme = object["add_prefix_space"] as? Bool ?? true ? .always : .never
                }
                steps.append(.metaspace(replacement: replacement, prependScheme: scheme, split: object["split"] as? Bool ?? true))
            default:
                throw fail(field + ".type", "\"\(kind)\" is not supported (only ByteLevel, Split, Digits, Metaspace, Sequence)")
            }
        }
        try parse(json["pre_tokenizer"], at: "pre_tokenizer")
        let byteLevelSteps = steps.indices.filter { if case .byteLevel = steps[$0] { true } else { false } }
        let byteLevel = !byteLevelSteps.isEmpty
        if byteLevel {
            guard byteLevelSteps == [steps.count - 1] else {
                throw fail("pre_tokenizer", "a byte-level BPE needs exactly one ByteLevel step, the last")
            }
            if steps.contains(where: { if case .metaspace = $0 { true } else { false } }) {
                throw fail("pre_tokenizer", "Metaspace with a ByteLevel step is not supported")
            }
            if byteFallback { throw fail("model.byte_fallback", "byte fallback with a ByteLevel pre-tokenizer is not supported") }
        }
        preTokenizer = steps
        preTokenizerOnlySplits = steps.allSatisfy(\.onlySplits)
        isByteLevel = byteLevel

        // How the model sees characters: bytes as GPT-2's printable characters, or the text itself.
        byteTokens = byteLevel ? ByteLevelMapping.characters.map { ids[String($0)] ?? -1 } : []
        var singles: [UInt32: Int] = [:]
        if !byteLevel {
            for (token, id) in ids where token.unicodeScalars.count == 1 { singles[token.unicodeScalars.first!.value] = id }
        }
        characterTokens = singles
        fallbackTokens = byteFallback ? (0..<256).map { ids[Self.fallbackName(UInt8($0))] ?? -1 } : []
        var byBytes: [[UInt8]: Int] = [:]
        if ignoreMerges {
            for (token, id) in ids {
                if !byteLevel {
                    byBytes[Array(token.utf8)] = id
                } else if token.unicodeScalars.allSatisfy({ ByteLevelMapping.bytes[$0] != nil }) {
                    byBytes[ByteLevelMapping.decode(token)] = id
                }
            }
        }
        tokensByBytes = byBytes

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
                        guard tokenIDs.allSatisfy({ $0.intValue >= 0 && $0.intValue < size }) else {
                            throw fail("\(field).special_tokens", "\"\(name)\" has ids \(tokenIDs) outside the vocabulary (0..<\(size))")
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

        // Decoder: its steps, flattened.
        var decoderSteps: [DecoderStep] = []
        func parseDecoder(_ value: Any?, at field: String) throws(TokenizerLoadError) {
            guard let object = value as? [String: Any], let kind = object["type"] as? String else {
                throw fail(field, "missing (a decoder is needed to turn ids back into text)")
            }
            switch kind {
            case "Sequence":
                guard let list = object["decoders"] as? [Any] else { throw fail(field + ".decoders", "expected a list") }
                for (index, item) in list.enumerated() { try parseDecoder(item, at: "\(field).decoders[\(index)]") }
            case "ByteLevel": decoderSteps.append(.byteLevel)
            case "ByteFallback": decoderSteps.append(.byteFallback)
            case "Fuse": decoderSteps.append(.fuse)
            case "Replace":
                let (pattern, content) = try stringReplacement(object, at: field)
                decoderSteps.append(.replace(pattern: pattern, content: content))
            case "Strip":
                guard let content = object["content"] as? String, content.unicodeScalars.count == 1,
                      let start = (object["start"] as? NSNumber)?.intValue, let stop = (object["stop"] as? NSNumber)?.intValue,
                      start >= 0, stop >= 0
                else { throw fail(field, "Strip needs a one-character content and non-negative start and stop") }
                decoderSteps.append(.strip(content: content.unicodeScalars.first!, start: start, stop: stop))
            case "Metaspace":
                let replacement = try metaspaceReplacement(object, at: field)
                let never = (object["prepend_scheme"] as? String).map { $0 == "never" } ?? !(object["add_prefix_space"] as? Bool ?? true)
                decoderSteps.append(.metaspace(replacement: replacement, dropInFirstToken: !never))
            default:
                throw fail(field + ".type", "\"\(kind)\" is not supported (only ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)")
            }
        }
        try parseDecoder(json["decoder"], at: "decoder")
        if decoderSteps.contains(.byteLevel) != byteLevel {
            throw fail(byteLevel ? "decoder" : "pre_tokenizer", byteLevel
                ? "a ByteLevel pre-tokenizer needs a ByteLevel decoder"
                : "a ByteLevel decoder needs a ByteLevel pre-tokenizer step, the last")
        }
        decoder = decoderSteps
        tokenBytes = strings.map { string in
            guard let string else { return [] }
            if decoderSteps == [.byteLevel] { return ByteLevelMapping.decode(string) }
            var bytes = Array(string.utf8)
            for step in decoderSteps { bytes = step.applyAlone(bytes, token: string) }
            return bytes
        }
    }

    /// Ids at or above this are refused: tables are sized by the largest id, and no vocabulary is near it.
    static let largestID = 1 << 24

    /// The vocabulary's name for a byte in byte fallback, e.g. `<0x0A>`.
    static func fallbackName(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x" + (hex.count == 1 ? "0" : "") + hex + ">"
    }

    // MARK: Encoding

    /// The ids of `text`: added tokens matched first (those marked `normalized` on the normalized
    /// text), the rest normalized, pre-tokenized and merged; with the post-processor's template
    /// (e.g. a beginning-of-text token) when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = addSpecialTokens ? prefixTokens : []
        let bytes = Array(text.utf8)
        for (token, range) in rawMatcher.split(bytes, within: 0..<bytes.count) {
            if let token {
                ids.append(token)
                continue
            }
            let segment: [UInt8]
            let within: Range<Int>
            if normalizer.isEmpty {
                (segment, within) = (bytes, range)
            } else {
                var normalized = Array(bytes[range])
                for step in normalizer { normalized = step.apply(normalized) }
                (segment, within) = (normalized, 0..<normalized.count)
            }
            for (token, piece) in normalizedMatcher.split(segment, within: within) {
                if let token {
                    ids.append(token)
                } else {
                    // Metaspace's "first": only the text's first stretch, at offset 0 of the original.
                    encodeOrdinary(segment[piece], isFirst: range.lowerBound == 0 && piece.lowerBound == within.lowerBound, into: &ids)
                }
            }
        }
        if addSpecialTokens { ids += suffixTokens }
        return ids
    }

    /// Pre-tokenizes and merges text that holds no added token.
    func encodeOrdinary(_ bytes: ArraySlice<UInt8>, isFirst: Bool, into ids: inout [Int]) {
        for piece in pieces(of: bytes, isFirst: isFirst) { merge(piece, into: &ids) }
    }

    /// The UTF-8 of each piece the pre-tokenizer makes of `bytes`.
    func pieces(of bytes: ArraySlice<UInt8>, isFirst: Bool) -> [[UInt8]] {
        guard !bytes.isEmpty else { return [] }
        if preTokenizer.isEmpty { return [Array(bytes)] }
        let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        if preTokenizerOnlySplits, let pieces = splitPieces(of: bytes, scalars) { return pieces }
        var pieces = [scalars]
        for step in preTokenizer {
            var next: [[Unicode.Scalar]] = []
            for (index, piece) in pieces.enumerated() where !piece.isEmpty {
                next += step.apply(piece, isFirst: isFirst && index == 0)
            }
            pieces = next
        }
        return pieces.compactMap { piece in
            guard !piece.isEmpty else { return nil }
            var utf8: [UInt8] = []
            utf8.reserveCapacity(piece.count)
            for scalar in piece { utf8 += UTF8.encode(scalar)! }
            return utf8
        }
    }

    /// The pieces as ranges of the scalars, cut from `bytes` at the end: no copy per step. Nil if the
    /// scalars do not account for the bytes exactly (not valid UTF-8, which no caller passes).
    func splitPieces(of bytes: ArraySlice<UInt8>, _ scalars: [Unicode.Scalar]) -> [[UInt8]]? {
        var offsets: [Int] = []
        offsets.reserveCapacity(scalars.count + 1)
        var offset = bytes.startIndex
        offsets.append(offset)
        for scalar in scalars {
            offset += UTF8.width(scalar)
            offsets.append(offset)
        }
        guard offset == bytes.endIndex else { return nil }
        let classes = scalars.map { CharacterClass($0) }
        var ranges = [scalars.indices], next: [Range<Int>] = []
        for step in preTokenizer {
            next.removeAll(keepingCapacity: true)
            for range in ranges { step.split(scalars, classes, within: range, into: &next) }
            swap(&ranges, &next)
        }
        return ranges.compactMap { $0.isEmpty ? nil : Array(bytes[offsets[$0.lowerBound]..<offsets[$0.upperBound]]) }
    }

    /// The pre-tokenizer's pieces of `text` (byte-level ones in byte-level characters), as
    /// `tokenizers`' `pre_tokenizer.pre_tokenize_str` gives them: neither added tokens nor the
    /// normalizer are applied.
    public func preTokenize(_ text: String) -> [String] {
        pieces(of: Array(text.utf8)[...], isFirst: true).map { isByteLevel ? ByteLevelMapping.encode($0) : String(decoding: $0, as: UTF8.self) }
    }

    static func key(_ left: Int, _ right: Int) -> UInt64 { UInt64(UInt32(left)) << 32 | UInt64(UInt32(right)) }

    /// BPE on one piece: its byte (byte-level) or character tokens merged lowest rank first
    /// (leftmost among equals), as `tokenizers`' priority queue does.
    func merge(_ bytes: [UInt8], into ids: inout [Int]) {
        if ignoreMerges, let whole = tokensByBytes[bytes] {
            ids.append(whole)
            return
        }
        let cacheable = bytes.count <= PieceCache.longestPiece
        if cacheable, let cached = cache.ids(of: bytes) {
            ids += cached
            return
        }
        var symbols = isByteLevel ? byteSymbols(bytes) : characterSymbols(bytes)
        if symbols.count >= 2 {
            var merged: [Int] = []
            mergeSymbols(&symbols, into: &merged)
            symbols = merged
        }
        if cacheable { cache.insert(symbols, for: bytes) }
        ids += symbols
    }

    /// One symbol per byte, or the unknown token for bytes the vocabulary lacks.
    func byteSymbols(_ bytes: [UInt8]) -> [Int] {
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
        return symbols
    }

    /// One symbol per character; a character the vocabulary lacks as its bytes' `<0xNN>` tokens
    /// (byte fallback), else the unknown token. As in `tokenizers`, a pending unknown token is
    /// written only when a known character follows (or at the end), after any fallback bytes.
    func characterSymbols(_ bytes: [UInt8]) -> [Int] {
        var symbols: [Int] = []
        symbols.reserveCapacity(bytes.count)
        var pendingUnknown = false
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            if let id = characterTokens[scalar.value] {
                if pendingUnknown, let unknownToken { symbols.append(unknownToken) }
                pendingUnknown = false
                symbols.append(id)
                continue
            }
            if !fallbackTokens.isEmpty {
                let utf8 = UTF8.encode(scalar)!
                if utf8.allSatisfy({ fallbackTokens[Int($0)] >= 0 }) {
                    for byte in utf8 { symbols.append(fallbackTokens[Int(byte)]) }
                    continue
                }
            }
            if let unknownToken {
                if pendingUnknown && !fuseUnknown { symbols.append(unknownToken) }
                pendingUnknown = true
            }
        }
        if pendingUnknown, let unknownToken { symbols.append(unknownToken) }
        return symbols
    }

    func mergeSymbols(_ symbols: inout [Int], into ids: inout [Int]) {
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

    /// The text of `ids` by the decoder (ByteLevel: invalid UTF-8 repaired with U+FFFD); special
    /// tokens are left out when `skipSpecialTokens`, ids that name no token always.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        if decoder == [.byteLevel] {
            var bytes: [UInt8] = []
            for id in ids { bytes += self.bytes(ofToken: id, skipSpecialTokens: skipSpecialTokens) }
            return String(decoding: bytes, as: UTF8.self)
        }
        var tokens: [String] = ids.compactMap { id in
            guard id >= 0 && id < vocabularySize, !(skipSpecialTokens && specialIDs.contains(id)) else { return nil }
            return tokenStrings[id]
        }
        for step in decoder { tokens = step.apply(tokens) }
        return tokens.joined()
    }

    /// The bytes token `id` contributes to decoded text, for streaming: none for a skipped special
    /// token or an id that names no token. The decoder's steps that look across tokens are left
    /// out: a sentencepiece decoder's Strip (the text's first space stays) and the check that a
    /// run of byte-fallback tokens is valid UTF-8 (the consumer repairs that).
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

/// The BPE ids of short pieces, shared by the copies of a tokenizer and safe across threads; it stops
/// growing at `capacity` pieces (as `tokenizers`' cache does), so memory stays bounded.
final class PieceCache: Sendable {
    static let capacity = 20_000
    static let longestPiece = 64
    private let table = Mutex<[[UInt8]: [Int]]>([:])

    func ids(of piece: [UInt8]) -> [Int]? { table.withLock { $0[piece] } }

    func insert(_ ids: [Int], for piece: [UInt8]) {
        table.withLock { table in
            if table.count < Self.capacity { table[piece] = ids }
        }
    }
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
    /// Token indices by first byte (256 lists), longest first.
    let byFirstByte: [[Int]]

    init(_ tokens: [AddedToken]) {
        let contents = tokens.map { Array($0.content.utf8) }
        var table = [[Int]](repeating: [], count: 256)
        for index in tokens.indices { table[Int(contents[index][0])].append(index) }
        for key in table.indices { table[key].sort { contents[$0].count > contents[$1].count } }
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
            let candidates = byFirstByte[Int(text[position])]
            guard !candidates.isEmpty,
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
