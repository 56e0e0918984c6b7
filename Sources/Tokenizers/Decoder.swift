/// One step of a `tokenizer.json` decoder: each turns the list of token strings into another, as
/// `tokenizers`' `decode_chain` does, and the decoded text is the last list joined.
public enum DecoderStep: Sendable, Equatable {
    /// `ByteLevel`: the tokens' characters back to bytes (GPT-2's mapping), one string, invalid
    /// UTF-8 repaired with U+FFFD.
    case byteLevel
    /// `Replace` with a `{"String": ...}` pattern, within each token.
    case replace(pattern: String, content: String)
    /// `ByteFallback`: each run of `<0xNN>` tokens becomes its bytes' text, or one U+FFFD per byte
    /// when the run is not valid UTF-8.
    case byteFallback
    /// `Fuse`: all tokens joined into one.
    case fuse
    /// `Strip`: up to `start` leading and `stop` trailing `content` characters off each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    /// `Metaspace`: the replacement character becomes a space, except in the first token, where
    /// (unless the prepend scheme is "never") every one is dropped.
    case metaspace(replacement: Unicode.Scalar, dropInFirstToken: Bool)

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { bytes += ByteLevelMapping.decode(token) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let pattern, let content):
            let pattern = Array(pattern.utf8), content = Array(content.utf8)
            return tokens.map { String(decoding: NormalizerStep.replacing(pattern, with: content, in: Array($0.utf8)), as: UTF8.self) }
        case .byteFallback:
            var result: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let text = String(validating: pending, as: UTF8.self) {
                    result.append(text)
                } else {
                    result += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = Self.fallbackByte(token) {
                    pending.append(byte)
                } else {
                    flush()
                    result.append(token)
                }
            }
            flush()
            return result
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                let scalars = Array(token.unicodeScalars)
                var from = 0
                while from < min(start, scalars.count) && scalars[from] == content { from += 1 }
                var to = scalars.count
                while scalars.count - to < stop && to > from && scalars[to - 1] == content { to -= 1 }
                return String(String.UnicodeScalarView(scalars[from..<to]))
            }
        case .metaspace(let replacement, let dropInFirstToken):
            return tokens.enumerated().map { index, token in
                var scalars = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar != replacement {
                        scalars.append(scalar)
                    } else if index != 0 || !dropInFirstToken {
                        scalars.append(" ")
                    }
                }
                return String(scalars)
            }
        }
    }

    /// The byte of a `<0xNN>` token (two hex digits), as the byte-fallback model and decoder write them.
    static func fallbackByte(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"), utf8[2] == UInt8(ascii: "x"),
              utf8[5] == UInt8(ascii: ">")
        else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }

    /// What the step makes of one token on its own, for streaming: the steps that look across tokens
    /// (a byte run's validity, the first token's leading space) are left out.
    func applyAlone(_ bytes: [UInt8], token: String) -> [UInt8] {
        switch self {
        case .byteLevel: return ByteLevelMapping.decode(String(decoding: bytes, as: UTF8.self))
        case .replace(let pattern, let content): return NormalizerStep.replacing(Array(pattern.utf8), with: Array(content.utf8), in: bytes)
        case .byteFallback: return Self.fallbackByte(token).map { [$0] } ?? bytes
        case .fuse, .strip: return bytes
        case .metaspace(let replacement, _):
            return NormalizerStep.replacing(Array(String(replacement).utf8), with: [0x20], in: bytes)
        }
    }
}
