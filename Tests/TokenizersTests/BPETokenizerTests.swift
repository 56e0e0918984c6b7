import Foundation
import Testing
import TensorCore
@testable import Tokenizers

/// Tiny byte-level BPE tokenizers trained by Hugging Face `tokenizers`, with that library's ids and
/// decoded text for tricky and random strings (Tests/TokenizersTests/make_fixtures.py).
private func fixturePath(_ name: String) -> String {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures/\(name)").path
}

private struct Expected: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let plain_ids: [Int]
        let pieces: [String]?
        let decoded: String
        let decoded_with_special: String
    }
    let vocab_size: Int
    let cases: [Case]
}

private func expected(_ name: String) throws -> Expected {
    try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixturePath(name) + "/expected.json")))
}

private func tokenizer(_ name: String) throws -> BPETokenizer {
    try BPETokenizer(contentsOf: fixturePath(name) + "/tokenizer.json")
}

/// The lines of a file, as the UTF-8 of each.
private func corpusLines(_ path: String) throws -> [Data] {
    try Data(contentsOf: URL(fileURLWithPath: path)).split(separator: UInt8(ascii: "\n")).map { Data($0) }
}

private func fixtureJSON(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath(name) + "/tokenizer.json"))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

/// `text` with its scalars escaped, for readable failure messages.
private func shown(_ text: String) -> String {
    text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "\\u{\(String($0.value, radix: 16))}" }.joined()
}

@Suite struct BPETokenizerParityTests {
    static let fixtures = [
        "gpt2", "gpt2-prefix-space", "llama3", "smollm", "qwen2", "mistral", "mistral-metaspace", "sentencepiece-unk", "sentencepiece-split",
    ]

    @Test(arguments: fixtures)
    func idsAndTextMatchHuggingFaceTokenizers(name: String) throws {
        let tokenizer = try tokenizer(name)
        let reference = try expected(name)
        #expect(tokenizer.vocabularySize == reference.vocab_size)
        #expect(reference.cases.count > 300)
        var failures: [String] = []
        for item in reference.cases {
            let ids = tokenizer.encode(item.text)
            let plain = tokenizer.encode(item.text, addSpecialTokens: false)
            if ids != item.ids { failures.append("encode \"\(shown(item.text))\": \(ids) != \(item.ids)") }
            if plain != item.plain_ids { failures.append("encode (no specials) \"\(shown(item.text))\": \(plain) != \(item.plain_ids)") }
            let pieces = tokenizer.preTokenize(item.text)
            if let expected = item.pieces, pieces != expected { failures.append("pre-tokenize \"\(shown(item.text))\": \(pieces) != \(expected)") }
            let decoded = tokenizer.decode(item.ids)
            if decoded != item.decoded { failures.append("decode \(item.ids): \"\(shown(decoded))\" != \"\(shown(item.decoded))\"") }
            let withSpecial = tokenizer.decode(item.ids, skipSpecialTokens: false)
            if withSpecial != item.decoded_with_special {
                failures.append("decode with specials \(item.ids): \"\(shown(withSpecial))\" != \"\(shown(item.decoded_with_special))\"")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "\n"))")
    }

    /// decode(encode(s)) == s for the fixtures' strings, except where an added token swallows
    /// whitespace by design (lstrip / rstrip) or the pre-tokenizer adds a space.
    @Test(arguments: ["gpt2", "llama3", "smollm"])
    func decodeInvertsEncode(name: String) throws {
        let tokenizer = try tokenizer(name)
        for item in try expected(name).cases where !item.text.contains("<mask>") && !item.text.contains("[ws]") {
            let ids = tokenizer.encode(item.text, addSpecialTokens: false)
            #expect(tokenizer.decode(ids, skipSpecialTokens: false) == item.text, "\"\(shown(item.text))\" -> \(ids)")
        }
    }

    /// Round trips on seeded random text over all of Unicode, beyond what the fixtures hold. (Mistral's
    /// legacy shape round-trips too: its decoder strips exactly the "▁" its normalizer put in front;
    /// byte fallback covers every character.)
    @Test(arguments: ["gpt2", "llama3", "smollm", "mistral"])
    func randomUnicodeRoundTrips(name: String) throws {
        let tokenizer = try tokenizer(name)
        var random = SeededRandom(seed: 17)
        for _ in 0..<300 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int(random.next() % 24) {
                let pick = random.next() % 4
                let value: UInt32 = switch pick {
                case 0: UInt32(random.next() % 0x80)
                case 1: UInt32(random.next() % 0x800)
                case 2: UInt32(random.next() % 0x10000)
                default: UInt32(random.next() % 0x110000)
                }
                if let scalar = Unicode.Scalar(value) { scalars.append(scalar) }
            }
            let text = String(scalars)
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            #expect(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize })
            #expect(tokenizer.decode(ids, skipSpecialTokens: false) == text, "\"\(shown(text))\" -> \(ids)")
        }
    }

    /// The shared corpus (>= 5,000 strings across scripts, code, digits, whitespace runs and every
    /// family's added tokens): ids with and without the template, and decoded text with and without
    /// special tokens, equal to `tokenizers`'.
    @Test(arguments: ["gpt2", "llama3", "smollm", "qwen2", "mistral", "mistral-metaspace"])
    func sharedCorpusMatchesHuggingFaceTokenizers(name: String) throws {
        struct Line: Decodable {
            let ids: String
            let decoded: String?
            let decoded_with_special: String?
        }
        let tokenizer = try tokenizer(name)
        let corpus = try corpusLines(fixturePath("corpus.txt")).map { try JSONDecoder().decode(String.self, from: $0) }
        let expected = try corpusLines(fixturePath(name) + "/corpus.jsonl").map { try JSONDecoder().decode(Line.self, from: $0) }
        #expect(corpus.count >= 5000 && expected.count == corpus.count)
        for token in tokenizer.addedTokens {
            #expect(corpus.contains { $0.contains(token.content) && $0 != token.content }, "\(token.content) is embedded in text")
        }
        var failures: [String] = []
        for (text, line) in zip(corpus, expected) {
            let ids = line.ids.unicodeScalars.map { Int($0.value) - 0x100 }
            let encoded = tokenizer.encode(text)
            if encoded != ids { failures.append("encode \"\(shown(text))\": \(encoded) != \(ids)") }
            let plain = tokenizer.encode(text, addSpecialTokens: false)
            if tokenizer.prefixTokens + plain + tokenizer.suffixTokens != ids { failures.append("encode (no specials) \"\(shown(text))\"") }
            let decoded = line.decoded ?? text
            let withSpecial = line.decoded_with_special ?? decoded
            if tokenizer.decode(ids) != decoded { failures.append("decode \(ids): \"\(shown(tokenizer.decode(ids)))\" != \"\(shown(decoded))\"") }
            if tokenizer.decode(ids, skipSpecialTokens: false) != withSpecial {
                failures.append("decode with specials \(ids): \"\(shown(tokenizer.decode(ids, skipSpecialTokens: false)))\" != \"\(shown(withSpecial))\"")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) mismatches, first: \(failures.prefix(5).joined(separator: "\n"))")
    }

    @Test func mistralShapeUsesByteFallbackAndStreamsBytes() throws {
        let tokenizer = try tokenizer("mistral")
        #expect(!tokenizer.isByteLevel && tokenizer.prefixTokens == [1] && tokenizer.token(for: 3) == "<0x00>")
        let text = "Grüße, 世界! 👋🏽 it's 12345"
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        #expect(ids.contains { (3...258).contains($0) }, "characters outside the vocabulary fall back to <0xNN> tokens")
        // Streaming keeps the prepended space that the decoder's Strip removes from the whole text.
        #expect(ids.flatMap { tokenizer.bytes(ofToken: $0) } == Array((" " + text).utf8))
        #expect(tokenizer.decode(ids) == text)
    }

    @Test func llama3TemplateAddsBeginningOfText() throws {
        let tokenizer = try tokenizer("llama3")
        #expect(tokenizer.prefixTokens == [0] && tokenizer.suffixTokens.isEmpty)
        #expect(tokenizer.encode("") == [0])
        #expect(tokenizer.encode("", addSpecialTokens: false) == [])
        #expect(tokenizer.isSpecial(0) && tokenizer.token(for: 0) == "<|begin_of_text|>")
        #expect(tokenizer.decode([0, 2]) == "" && tokenizer.decode([0, 2], skipSpecialTokens: false) == "<|begin_of_text|><|eot_id|>")
        #expect(tokenizer.decode([-1, 100_000]) == "", "ids that name no token are left out")
    }

    @Test func streamingBytesRebuildTheText() throws {
        let tokenizer = try tokenizer("llama3")
        let text = "Grüße, 世界! 👋🏽 it's 12345"
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        let bytes = ids.flatMap { tokenizer.bytes(ofToken: $0) }
        #expect(bytes == Array(text.utf8))
        #expect(ids.contains { tokenizer.bytes(ofToken: $0).count == 1 && tokenizer.bytes(ofToken: $0)[0] >= 0x80 },
                "some token holds part of a multi-byte character, which streaming must buffer")
    }
}

@Suite struct PreTokenizerTests {
    func pieces(_ pattern: SplitPattern, _ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        return pattern.split(scalars).map { String(String.UnicodeScalarView(scalars[$0])) }
    }

    /// Splits checked against `tokenizers`' `pre_tokenize_str` by hand.
    @Test func gpt2Pattern() {
        #expect(pieces(.gpt2, "Hello world, it's 12345!") == ["Hello", " world", ",", " it", "'s", " 12345", "!"])
        #expect(pieces(.gpt2, "a  b   \n") == ["a", " ", " b", "   \n"])
        #expect(pieces(.gpt2, "x'RE ''s") == ["x", "'", "RE", " ''", "s"])
        #expect(pieces(.gpt2, "a\u{A0}!") == ["a", "\u{A0}", "!"], "no-break space is \\s")
        #expect(pieces(.gpt2, "a\u{1C}!") == ["a", "\u{1C}!"], "U+001C is not \\s")
    }

    @Test func llama3Pattern() {
        let llama3 = SplitPattern(regex: SplitPattern.llama3Source)!
        #expect(llama3 == .cl100k(maxDigits: 3))
        #expect(pieces(llama3, "Hello world, it's 1234567!") == ["Hello", " world", ",", " it", "'s", " ", "123", "456", "7", "!"])
        #expect(pieces(llama3, "x'ſa x'RE") == ["x", "'ſ", "a", " x", "'RE"], "case-insensitive contractions fold ſ to s")
        #expect(pieces(llama3, "a \n\n b\tc") == ["a", " \n\n", " b", "\tc"])
        #expect(pieces(llama3, "x!!\n\ny") == ["x", "!!\n\n", "y"])
        #expect(pieces(llama3, "  x") == [" ", " x"])
    }

    @Test func digitsAndByteLevelSteps() {
        let text = Array("ab12 3".unicodeScalars)
        let individual = PreTokenizerStep.digits(individualDigits: true).apply(text).map { String(String.UnicodeScalarView($0)) }
        #expect(individual == ["ab", "1", "2", " ", "3"])
        let grouped = PreTokenizerStep.digits(individualDigits: false).apply(text).map { String(String.UnicodeScalarView($0)) }
        #expect(grouped == ["ab", "12", " ", "3"])
        let prefixed = PreTokenizerStep.byteLevel(addPrefixSpace: true, useRegex: false).apply(Array("hi".unicodeScalars))
        #expect(prefixed.map { String(String.UnicodeScalarView($0)) } == [" hi"])
    }

    /// Values from `tokenizers`' own Metaspace pre-tokenizer and Metaspace / ByteFallback / Strip decoders.
    @Test func metaspaceAndSentencepieceDecoders() {
        func strings(_ pieces: [[Unicode.Scalar]]) -> [String] { pieces.map { String(String.UnicodeScalarView($0)) } }
        let always = PreTokenizerStep.metaspace(replacement: "▁", prependScheme: .always, split: true)
        #expect(strings(always.apply(Array("a  b\tc ▁d ".unicodeScalars))) == ["▁a", "▁", "▁b\tc", "▁", "▁d", "▁"])
        let first = PreTokenizerStep.metaspace(replacement: "▁", prependScheme: .first, split: true)
        #expect(strings(first.apply(Array(" a  b\tc ▁d ".unicodeScalars), isFirst: true)) == ["▁a", "▁", "▁b\tc", "▁", "▁d", "▁"])
        #expect(strings(first.apply(Array("a b".unicodeScalars), isFirst: false)) == ["a", "▁b"])
        #expect(DecoderStep.metaspace(replacement: "▁", dropInFirstToken: true).apply(["▁▁a▁b", "▁c", "▁"]).joined() == "ab c ")
        #expect(DecoderStep.metaspace(replacement: "▁", dropInFirstToken: false).apply(["▁▁a▁b", "▁c", "▁"]).joined() == "  a b c ")
        let bytes = DecoderStep.byteFallback.apply(["<0xE6>", "<0x97>", "a", "<0xE6>", "<0x97>", "<0xA5>", "<0xFF>"]).joined()
        #expect(bytes == "\u{FFFD}\u{FFFD}a\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}", "an invalid run is one U+FFFD per byte")
        #expect(DecoderStep.byteFallback.apply(["<0xE6>", "<0x97>", "<0xA5>", "b"]).joined() == "日b")
        #expect(DecoderStep.strip(content: " ", start: 2, stop: 1).apply(["  a  ", "b ", " "]) == ["a ", "b", ""], "no trap where tokenizers panics")
    }

    @Test func byteMappingIsGPT2s() {
        let characters = ByteLevelMapping.characters
        #expect(Set(characters).count == 256)
        #expect(characters[0x20] == "Ġ" && characters[0x0A] == "Ċ" && characters[0x41] == "A" && characters[0xAD] == "Ń")
        #expect(ByteLevelMapping.decode(ByteLevelMapping.encode(Array(0...255))) == Array(0...255))
        #expect(ByteLevelMapping.decode("Ġhello") == Array(" hello".utf8))
        #expect(ByteLevelMapping.decode("a b") == Array("a b".utf8), "a token with an unmapped character decodes as its own UTF-8")
    }
}

@Suite struct BPETokenizerLoadingTests {
    /// The error for the gpt2 fixture with `edit` applied.
    func loadError(_ edit: (inout [String: Any]) -> Void) throws -> TokenizerLoadError? {
        var json = try fixtureJSON("gpt2")
        edit(&json)
        do {
            _ = try BPETokenizer(json: json, path: "t.json")
            return nil
        } catch {
            return error
        }
    }

    static func setModel(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { json in
            var model = json["model"] as! [String: Any]
            model[key] = value
            json["model"] = model
        }
    }

    /// (what is changed, the field the error must name, a word it must say)
    @Test(arguments: [
        ("model.type", "WordPiece"),
        ("model.byte_fallback", "byte fallback"),
        ("model.continuing_subword_prefix", "##"),
        ("model.dropout", "dropout"),
        ("normalizer.type", "NFKC"),
        ("normalizer.normalizers[1].pattern", "Regex"),
        ("pre_tokenizer.type", "Whitespace"),
        ("pre_tokenizer.pretokenizers[0].pattern.Regex", "\\p{L}+"),
        ("pre_tokenizer.pretokenizers[0].behavior", "Removed"),
        ("pre_tokenizer", "needs a ByteLevel pre-tokenizer step"),
        ("post_processor.type", "RobertaProcessing"),
        ("decoder.type", "CTC"),
        ("decoder.decoders[1].type", "WordPiece"),
        ("decoder", "missing"),
        ("model.merges[1]", "not in the vocabulary"),
    ])
    func unsupportedFieldsAreNamed(field: String, mentions: String) throws {
        let split: [String: Any] = ["type": "Split", "pattern": ["Regex": "\\p{L}+"], "behavior": "Isolated", "invert": false]
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]
        let edit: (inout [String: Any]) -> Void = switch field {
        case "model.type": Self.setModel("type", "WordPiece")
        case "model.byte_fallback": Self.setModel("byte_fallback", true)
        case "model.continuing_subword_prefix": Self.setModel("continuing_subword_prefix", "##")
        case "model.dropout": Self.setModel("dropout", 0.1)
        case "normalizer.type": { $0["normalizer"] = ["type": "NFKC"] }
        case "normalizer.normalizers[1].pattern":
            { $0["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFC"], ["type": "Replace", "pattern": ["Regex": " +"], "content": " "]]] }
        case "pre_tokenizer.type": { $0["pre_tokenizer"] = ["type": "Whitespace"] }
        case "pre_tokenizer.pretokenizers[0].pattern.Regex": { $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [split, byteLevel]] }
        case "pre_tokenizer.pretokenizers[0].behavior":
            { json in
                var removed = split
                removed["pattern"] = ["Regex": SplitPattern.llama3Source]
                removed["behavior"] = "Removed"
                json["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [removed, byteLevel]]
            }
        case "pre_tokenizer": { $0["pre_tokenizer"] = ["type": "Digits", "individual_digits": true] }
        case "post_processor.type": { $0["post_processor"] = ["type": "RobertaProcessing"] }
        case "decoder.type": { $0["decoder"] = ["type": "CTC"] }
        case "decoder.decoders[1].type": { $0["decoder"] = ["type": "Sequence", "decoders": [["type": "ByteLevel"], ["type": "WordPiece"]]] }
        case "decoder": { $0["decoder"] = NSNull() }
        default:
            { json in
                var model = json["model"] as! [String: Any]
                var merges = model["merges"] as! [Any]
                merges[1] = ["Ġ", "nonexistent"]
                model["merges"] = merges
                json["model"] = model
            }
        }
        let error = try #require(try loadError(edit))
        #expect(error.field == field && error.description.contains(mentions), "\(error)")
        #expect(error.description.hasPrefix("t.json: field \"\(field)\""), "\(error)")
    }

    @Test func fixtureLoadsAndMissingFileIsNamed() throws {
        #expect(try loadError { _ in } == nil)
        #expect(throws: TokenizerLoadError.self) { try BPETokenizer(contentsOf: "/nonexistent/tokenizer.json") }
    }
}
