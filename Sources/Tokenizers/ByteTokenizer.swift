/// The byte-level tokenizer of models without `tokenizer.json`: token id = byte value (0...255),
/// special tokens after 255.
public struct ByteTokenizer: Sendable, Equatable {
    public let vocabularySize: Int
    /// Special tokens by id (>= 256), e.g. 256: "<bos>".
    public let specialTokens: [Int: String]

    public init(vocabularySize: Int, specialTokens: [Int: String] = [:]) throws(TokenizerError) {
        guard vocabularySize >= 256 else { throw .vocabularyTooSmall(vocabularySize) }
        for id in specialTokens.keys where id < 256 || id >= vocabularySize {
            throw .specialTokenOutOfRange(id: id, vocabularySize: vocabularySize)
        }
        self.vocabularySize = vocabularySize
        self.specialTokens = specialTokens
    }

    /// The UTF-8 bytes of `text`, one token each.
    public func encode(_ text: String) -> [Int] {
        // One copy of the contiguous bytes, then a loop that vectorizes: mapping the UTF8View itself walks it
        // index by index.
        Array(text.utf8).map(Int.init)
    }

    /// The bytes of `tokens` as text (invalid UTF-8 is repaired with U+FFFD); special tokens are
    /// written by name, or left out when `skipSpecialTokens`.
    public func decode(_ tokens: [Int], skipSpecialTokens: Bool = true) -> String {
        var bytes: [UInt8] = []
        for token in tokens {
            if token >= 0 && token < 256 {
                bytes.append(UInt8(token))
            } else if !skipSpecialTokens, let name = specialTokens[token] {
                bytes += Array(name.utf8)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A tokenizer that cannot be built or used.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case vocabularyTooSmall(Int)
    case specialTokenOutOfRange(id: Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case .vocabularyTooSmall(let size):
            "a byte-level tokenizer needs a vocabulary of at least 256, the config has \(size)"
        case .specialTokenOutOfRange(let id, let size):
            "special token \(id) must lie in 256..<\(size)"
        }
    }
}
