import Foundation

/// One step of a `tokenizer.json` normalizer, applied to each stretch of text between the added tokens
/// that are matched on the raw text (as `tokenizers` normalizes each split separately).
public enum NormalizerStep: Sendable, Equatable {
    /// `NFC`: canonical composition (Qwen2 and Qwen3).
    case nfc
    /// `Prepend`: `prefix` before a non-empty text (Llama 2 / Mistral's "▁").
    case prepend(String)
    /// `Replace` with a `{"String": ...}` pattern: every occurrence of `pattern` becomes `content`
    /// (Llama 2 / Mistral's " " to "▁").
    case replace(pattern: String, content: String)

    /// `text` (UTF-8) normalized.
    func apply(_ text: [UInt8]) -> [UInt8] {
        switch self {
        case .nfc:
            // Scalars below U+0300 are all NFC-stable starters that compose with nothing before them.
            guard let first = Self.firstScalarAtOrAbove0300(text) else { return text }
            // The scalar before it (a starter) may compose with what follows (e + U+0301 = é); none before that can.
            let back = text[..<first].lastIndex { $0 < 0x80 || $0 >= 0xC0 } ?? first
            let composed = String(decoding: text[back...], as: UTF8.self).precomposedStringWithCanonicalMapping
            return Array(text[..<back]) + Array(composed.utf8)
        case .prepend(let prefix):
            return text.isEmpty ? text : Array(prefix.utf8) + text
        case .replace(let pattern, let content):
            return Self.replacing(Array(pattern.utf8), with: Array(content.utf8), in: text)
        }
    }

    /// The index of the first byte that starts a scalar of U+0300 or above (0xCC 0x80 is U+0300).
    static func firstScalarAtOrAbove0300(_ text: [UInt8]) -> Int? {
        var index = 0
        while index < text.count {
            let byte = text[index]
            if byte < 0x80 {
                index += 1
            } else if byte < 0xCC {
                index += 2
            } else {
                return index
            }
        }
        return nil
    }

    /// `text` with each non-overlapping occurrence of `pattern`, left to right, replaced.
    static func replacing(_ pattern: [UInt8], with content: [UInt8], in text: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty, text.count >= pattern.count else { return text }
        var result: [UInt8] = []
        result.reserveCapacity(text.count + text.count / 4)
        var index = 0
        let first = pattern[0]
        while index < text.count {
            if text[index] == first, index + pattern.count <= text.count,
               pattern.indices.allSatisfy({ text[index + $0] == pattern[$0] }) {
                result += content
                index += pattern.count
            } else {
                result.append(text[index])
                index += 1
            }
        }
        return result
    }
}
