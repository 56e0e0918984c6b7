import Testing
import TensorCore
@testable import Tokenizers

@Suite struct ByteTokenizerTests {
    @Test func tokensAreBytesAndRoundTrip() throws {
        let tokenizer = try ByteTokenizer(vocabularySize: 258, specialTokens: [256: "<bos>", 257: "<eos>"])
        #expect(tokenizer.encode("Hi é") == [72, 105, 32, 195, 169])
        var random = SeededRandom(seed: 5)
        for _ in 0..<50 {
            let scalars = (0..<Int(random.next() % 20)).compactMap { _ in Unicode.Scalar(UInt32(random.next() % 0x2FFF) + 32) }
            let text = String(String.UnicodeScalarView(scalars))
            #expect(tokenizer.decode(tokenizer.encode(text)) == text)
        }
    }

    @Test func specialTokensAreNamedOrSkipped() throws {
        let tokenizer = try ByteTokenizer(vocabularySize: 258, specialTokens: [256: "<bos>", 257: "<eos>"])
        #expect(tokenizer.decode([256, 104, 105, 257]) == "hi")
        #expect(tokenizer.decode([256, 104, 105, 257], skipSpecialTokens: false) == "<bos>hi<eos>")
        #expect(tokenizer.decode([0xE2, 0x82]) == "\u{FFFD}", "a cut multi-byte character is repaired, not lost silently")
    }

    @Test func vocabularyMustHoldEveryByte() {
        #expect(throws: TokenizerError.vocabularyTooSmall(255)) { try ByteTokenizer(vocabularySize: 255) }
        #expect(throws: TokenizerError.specialTokenOutOfRange(id: 12, vocabularySize: 300)) {
            try ByteTokenizer(vocabularySize: 300, specialTokens: [12: "<bad>"])
        }
    }
}
