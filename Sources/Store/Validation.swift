import Foundation

/// Input rules shared by the store's methods. Each returns the value to store or throws a ``StoreError``.
enum Validation {
    static func displayName(_ raw: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw StoreError.invalidDisplayName("empty") }
        guard name.count <= 100 else { throw StoreError.invalidDisplayName("longer than 100 characters") }
        guard !containsControlCharacters(name) else {
            throw StoreError.invalidDisplayName("contains control characters")
        }
        return name
    }

    /// Datanet names: 1 to 64 characters from `a-z 0-9 . _ -`, starting with a letter or digit. They appear in
    /// URLs and file names, and are compared exactly.
    static func datanetName(_ name: String) throws -> String {
        guard !name.isEmpty else { throw StoreError.invalidDatanetName(name, reason: "empty") }
        guard name.utf8.count <= 64 else {
            throw StoreError.invalidDatanetName(name, reason: "longer than 64 characters")
        }
        let bytes = Array(name.utf8)
        guard isLowerAlnum(bytes[0]) else {
            throw StoreError.invalidDatanetName(name, reason: "must start with a-z or 0-9")
        }
        guard bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
            || $0 == UInt8(ascii: "-") })
        else {
            throw StoreError.invalidDatanetName(name, reason: "only a-z, 0-9, '.', '_' and '-' are allowed")
        }
        return name
    }

    /// Tags are lower-cased and trimmed, then must be 1 to 40 characters from `a-z 0-9 . _ + -`; duplicates
    /// are merged and the set is kept sorted. At most 32 tags.
    static func tags(_ raw: [String]) throws -> [String] {
        var result = Set<String>()
        for tag in raw {
            let t = tag.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            let bytes = Array(t.utf8)
            guard !bytes.isEmpty, bytes.count <= 40,
                bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
                    || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") })
            else {
                throw StoreError.invalidDatanetField(
                    field: "tag", reason: "\"\(tag)\": 1 to 40 characters from a-z, 0-9, '.', '_', '+', '-'")
            }
            result.insert(t)
        }
        guard result.count <= 32 else { throw StoreError.invalidDatanetField(field: "tags", reason: "more than 32") }
        return result.sorted()
    }

    /// Free text: trimmed, at most `maxBytes` UTF-8 bytes, no NUL.
    static func text(_ raw: String, field: String, maxBytes: Int, allowEmpty: Bool) throws -> String {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard allowEmpty || !text.isEmpty else { throw StoreError.invalidDatanetField(field: field, reason: "empty") }
        guard text.utf8.count <= maxBytes else {
            throw StoreError.invalidDatanetField(field: field, reason: "longer than \(maxBytes) bytes")
        }
        guard !text.utf8.contains(0) else { throw StoreError.invalidDatanetField(field: field, reason: "contains NUL") }
        return text
    }

    /// A SHA-256 as 64 hex digits; returned lower-cased.
    static func sha256Hex(_ raw: String) -> String? {
        let hex = raw.lowercased()
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ isHexDigit($0) }) else { return nil }
        return hex
    }

    static func containsControlCharacters(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    @inline(__always) static func isLowerAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    @inline(__always) static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
    }
}

extension Sequence where Element == UInt8 {
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
