import Crypto
import Foundation

/// The content of a record, as stored (exactly as submitted) and exported for training.
public enum RecordContent: Hashable, Sendable {
    case text(String)
    case pair(prompt: String, completion: String)

    /// `"text"` or `"pair"`, as in the `record.kind` column.
    public var kind: String {
        switch self {
        case .text: "text"
        case .pair: "pair"
        }
    }
}

/// Deduplication: two records are the same content when their normalised forms are equal.
///
/// Normalisation of a string: Unicode NFC (canonical composition); then every run of Unicode white space
/// (`White_Space` property: spaces, tabs, line breaks, NBSP, ...) becomes one U+0020 SPACE, and leading and
/// trailing white space is removed. Case, punctuation and everything else are kept.
///
/// Content hash (32 bytes): SHA-256 over `"text" 0x00 N(text)` for a text record, and over
/// `"pair" 0x00 N(prompt) 0x00 N(completion)` for a prompt/completion pair, `N` being the normalised string in
/// UTF-8. Records cannot contain U+0000, so the separator is unambiguous; a text record never equals a pair.
public enum ContentNormalizer {
    public static func normalize(_ string: String) -> String {
        let composed = string.precomposedStringWithCanonicalMapping
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in composed.unicodeScalars {
            if scalar.properties.isWhitespace {
                if !out.isEmpty { pendingSpace = true }
                continue
            }
            if pendingSpace {
                out.append(" ")
                pendingSpace = false
            }
            out.append(scalar)
        }
        return String(out)
    }

    /// The content hash used for deduplication.
    public static func contentHash(_ content: RecordContent) -> Data {
        var hasher = SHA256()
        switch content {
        case .text(let text):
            hasher.update(data: Array("text".utf8) + [0])
            hasher.update(data: Array(normalize(text).utf8))
        case .pair(let prompt, let completion):
            hasher.update(data: Array("pair".utf8) + [0])
            hasher.update(data: Array(normalize(prompt).utf8))
            hasher.update(data: [0])
            hasher.update(data: Array(normalize(completion).utf8))
        }
        return Data(hasher.finalize())
    }
}

enum UTF8Validation {
    /// The offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode table 3-7: no
    /// overlong forms, no surrogates, nothing above U+10FFFF), or nil when all of `bytes` is well formed.
    static func firstInvalidOffset(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var lo: UInt8 = 0x80
            var hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; hi = 0x9F
            case 0xF0: length = 4; lo = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; hi = 0x8F
            default: return i
            }
            guard i + length <= n else { return i }
            guard bytes[i + 1] >= lo && bytes[i + 1] <= hi else { return i }
            for k in 2..<length where bytes[i + k] < 0x80 || bytes[i + k] > 0xBF {
                return i
            }
            i += length
        }
        return nil
    }
}
