import Crypto
import Foundation

/// The canonical byte encoding of a ledger entry, which its hash covers. Version 1, all integers big-endian:
///
/// | bytes | field |
/// |---|---|
/// | 4 | magic `TRBL` (`54 52 42 4C`) |
/// | 1 | encoding version, `01` |
/// | 8 | `seq`, signed |
/// | 8 | `created_at`, milliseconds since 1970, signed |
/// | 4 + n | `kind`: length n (unsigned), then its UTF-8 bytes |
/// | 4 + n | `account`: length, then UTF-8 (`protocol` or `contributor`) |
/// | 1 (+ 8) | `contributor_id`: `00` when NULL, else `01` and the id, signed |
/// | 8 | `amount`, signed, micro-units |
/// | 1 (+ 8) | `inference_id`: `00` when NULL, else `01` and the id |
/// | 1 (+ 8) | `subject_contributor_id`: `00` when NULL, else `01` and the id |
/// | 4 + n | `memo`: length, then UTF-8 |
/// | 32 | `prev_hash`: the previous entry's `hash`; 32 zero bytes for the first entry (seq 1) |
///
/// `hash = SHA-256(encoding)`.
public enum ChainEncoding {
    public static let magic: [UInt8] = Array("TRBL".utf8)
    public static let version: UInt8 = 1
    /// The previous hash of the first entry.
    public static let genesisHash = Data(repeating: 0, count: 32)

    /// The raw field values of an entry, as the database holds them.
    struct Fields {
        var seq: Int64
        var createdAt: Int64
        var kind: [UInt8]
        var account: [UInt8]
        var contributorID: Int64?
        var amount: Int64
        var inferenceID: Int64?
        var subjectContributorID: Int64?
        var memo: [UInt8]
        var prevHash: [UInt8]
    }

    static func encode(_ f: Fields) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + f.kind.count + f.account.count + f.memo.count)
        out += magic
        out.append(version)
        appendInt(f.seq, to: &out)
        appendInt(f.createdAt, to: &out)
        appendBytes(f.kind, to: &out)
        appendBytes(f.account, to: &out)
        appendOptional(f.contributorID, to: &out)
        appendInt(f.amount, to: &out)
        appendOptional(f.inferenceID, to: &out)
        appendOptional(f.subjectContributorID, to: &out)
        appendBytes(f.memo, to: &out)
        out += f.prevHash
        return out
    }

    static func hash(_ f: Fields) -> Data {
        Data(SHA256.hash(data: encode(f)))
    }

    /// The canonical encoding of an entry (its `hash` field is not part of it).
    public static func encode(_ entry: LedgerEntry) -> [UInt8] { encode(fields(of: entry)) }

    /// SHA-256 of the entry's canonical encoding: what its `hash` must be.
    public static func hash(_ entry: LedgerEntry) -> Data { hash(fields(of: entry)) }

    static func fields(of e: LedgerEntry) -> Fields {
        let contributorID: Int64? =
            switch e.account {
            case .protocol: nil
            case .contributor(let id): id.rawValue
            }
        return Fields(
            seq: e.seq, createdAt: e.createdAtMillis, kind: Array(e.kind.rawValue.utf8),
            account: Array(e.account.columnValue.utf8), contributorID: contributorID, amount: e.amount,
            inferenceID: e.inference?.rawValue, subjectContributorID: e.subject?.rawValue, memo: Array(e.memo.utf8),
            prevHash: Array(e.prevHash))
    }

    private static func appendInt(_ v: Int64, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func appendBytes(_ bytes: [UInt8], to out: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: bytes.count).bigEndian) { out.append(contentsOf: $0) }
        out += bytes
    }

    private static func appendOptional(_ v: Int64?, to out: inout [UInt8]) {
        if let v {
            out.append(1)
            appendInt(v, to: &out)
        } else {
            out.append(0)
        }
    }
}
