import Foundation
import GRDB

/// Who a ledger entry credits.
public enum LedgerAccount: Hashable, Sendable, CustomStringConvertible {
    /// The protocol's treasury.
    case `protocol`
    case contributor(ContributorID)

    var columnValue: String {
        switch self {
        case .protocol: "protocol"
        case .contributor: "contributor"
        }
    }

    public var description: String {
        switch self {
        case .protocol: "protocol"
        case .contributor(let id): id.description
        }
    }
}

/// What a ledger entry is for.
public enum LedgerEntryKind: String, Sendable, Codable, CaseIterable {
    /// A data contributor's share of an inference fee (after any penalty).
    case contributorShare = "contributor_share"
    /// The adapter owner's share.
    case ownerShare = "owner_share"
    /// The protocol's share, with the rounding remainder.
    case protocolShare = "protocol_share"
    /// A penalty reduction: the part of a penalised contributor's share (`subject`) forfeited to the protocol.
    case penaltyForfeit = "penalty_forfeit"
    /// A penalty imposed by curation (amount 0): the account is the penalised contributor, the memo its evidence
    /// (``Store/penalize(_:adapter:by:evidence:points:)``).
    case penalty
}

/// One append-only, hash-chained ledger entry: a credit of `amount` micro-units to `account`.
public struct LedgerEntry: Hashable, Sendable {
    /// 1, 2, 3, ... with no gaps.
    public var seq: Int64
    public var createdAtMillis: Int64
    public var kind: LedgerEntryKind
    public var account: LedgerAccount
    /// Micro-units, non-negative.
    public var amount: Int64
    /// The inference that paid it.
    public var inference: InferenceID?
    /// For a penalty forfeit, the penalised contributor.
    public var subject: ContributorID?
    public var memo: String
    /// The previous entry's hash; 32 zero bytes for seq 1.
    public var prevHash: Data
    /// SHA-256 of ``ChainEncoding`` of this entry.
    public var hash: Data

    public var createdAt: Date { Date(millis: createdAtMillis) }
}

/// The last entry of the ledger: publish it (or keep it) to detect later rewriting of the chain up to it.
public struct LedgerHead: Hashable, Sendable, Codable, CustomStringConvertible {
    public var seq: Int64
    public var hash: Data
    public init(seq: Int64, hash: Data) {
        self.seq = seq
        self.hash = hash
    }
    public var description: String { "\(seq):\(hash.hex)" }
}

/// The first thing wrong with the chain, walking from seq 1.
public enum LedgerBreak: Hashable, Sendable, CustomStringConvertible {
    /// Entries must be numbered 1, 2, 3, ...; `expected` is missing and the next entry found is `found`.
    case missingEntry(expected: Int64, found: Int64)
    /// The entry's `prev_hash` is not the previous entry's `hash` (or the genesis zeros for seq 1).
    case prevHashMismatch(seq: Int64)
    /// The entry's `hash` is not the SHA-256 of its canonical encoding: its content was changed.
    case hashMismatch(seq: Int64)
    /// The entry's columns cannot be encoded at all (wrong types, NULLs, wrong lengths).
    case malformed(seq: Int64, reason: String)
    /// The chain at an anchor's seq does not have the anchor's hash: it was rewritten.
    case anchorMismatch(seq: Int64)
    /// The chain ends before an anchor's seq: it was truncated.
    case anchorMissing(seq: Int64)

    /// The entry named.
    public var seq: Int64 {
        switch self {
        case .missingEntry(let expected, _): expected
        case .prevHashMismatch(let seq), .hashMismatch(let seq), .malformed(let seq, _), .anchorMismatch(let seq),
            .anchorMissing(let seq):
            seq
        }
    }

    public var description: String {
        switch self {
        case .missingEntry(let expected, let found): "entry \(expected) is missing (next entry found: \(found))"
        case .prevHashMismatch(let seq): "entry \(seq): prev_hash does not match the previous entry's hash"
        case .hashMismatch(let seq): "entry \(seq): hash does not match its content (the entry was altered)"
        case .malformed(let seq, let reason): "entry \(seq) is malformed: \(reason)"
        case .anchorMismatch(let seq): "entry \(seq): hash differs from the anchor (the chain was rewritten)"
        case .anchorMissing(let seq): "entry \(seq) is missing: the chain ends before the anchor (truncated)"
        }
    }
}

/// The result of ``Store/verifyLedger(anchors:)``.
public struct LedgerVerification: Hashable, Sendable, CustomStringConvertible {
    /// Entries checked before stopping (all of them when the chain is intact).
    public var entriesChecked: Int64
    /// The last entry checked and found good.
    public var head: LedgerHead?
    /// The first broken entry, or nil.
    public var firstBreak: LedgerBreak?
    public var isValid: Bool { firstBreak == nil }
    public var description: String {
        if let firstBreak { return "ledger broken: \(firstBreak)" }
        return "ledger intact: \(entriesChecked) entries, head \(head.map(\.description) ?? "none")"
    }
}

extension Store {
    /// Walks the whole chain in one snapshot and names the first broken entry: a missing sequence number, a
    /// `prev_hash` that is not the previous entry's hash, or a `hash` that is not the SHA-256 of the entry's
    /// canonical encoding (see ``ChainEncoding``).
    ///
    /// A hash chain shows any change to an entry unless every later hash is recomputed too. Give `anchors`,
    /// heads published or kept earlier (``ledgerHead()``), to detect that as well: each anchor's entry must still
    /// exist and carry the anchor's hash.
    public func verifyLedger(anchors: [LedgerHead] = []) throws -> LedgerVerification {
        try read { db in try Self.verifyLedger(db, anchors: anchors) }
    }

    /// The last entry's seq and hash, or nil when the ledger is empty.
    public func ledgerHead() throws -> LedgerHead? {
        try read { db in try Self.head(db) }
    }

    /// Entries with seq greater than `after`, in order, at most `limit`.
    public func ledgerEntries(after: Int64 = 0, limit: Int = 1000) throws -> [LedgerEntry] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM ledger_entry WHERE seq > ? ORDER BY seq LIMIT ?",
                arguments: [after, max(0, limit)]
            ).map(Self.entry(from:))
        }
    }

    /// The entries an inference wrote, in order.
    public func ledgerEntries(for inference: InferenceID) throws -> [LedgerEntry] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM ledger_entry WHERE inference_id = ? ORDER BY seq", arguments: [inference]
            ).map(Self.entry(from:))
        }
    }

    /// The account's balance: the sum of its entries' amounts, in micro-units.
    public func balance(of account: LedgerAccount) throws -> Int64 {
        try read { db in
            switch account {
            case .protocol:
                return try Int64.fetchOne(
                    db, sql: "SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE account = 'protocol'") ?? 0
            case .contributor(let id):
                try Self.requireContributor(db, id)
                return try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT coalesce(sum(amount), 0) FROM ledger_entry
                        WHERE account = 'contributor' AND contributor_id = ?
                        """,
                    arguments: [id]) ?? 0
            }
        }
    }

    /// Every account with entries, and its balance.
    public func balances() throws -> [LedgerAccount: Int64] {
        try read { db in
            var result: [LedgerAccount: Int64] = [:]
            for row in try Row.fetchAll(
                db,
                sql: "SELECT contributor_id, sum(amount) AS total FROM ledger_entry GROUP BY account, contributor_id")
            {
                let id: ContributorID? = try row.decode(forColumn: "contributor_id")
                result[id.map(LedgerAccount.contributor) ?? .protocol] = try row.decode(forColumn: "total")
            }
            return result
        }
    }

    // MARK: - Internals

    static func head(_ db: Database) throws -> LedgerHead? {
        guard let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
        else { return nil }
        return LedgerHead(seq: try row.decode(forColumn: "seq"), hash: try row.decode(forColumn: "hash"))
    }

    /// Appends one entry after `head` (nil for an empty ledger) and returns it; the caller passes the returned
    /// entry's head to the next append in the same transaction.
    static func append(
        _ db: Database, after head: LedgerHead?, kind: LedgerEntryKind, account: LedgerAccount, amount: Int64,
        inference: InferenceID?, subject: ContributorID?, memo: String, at now: Int64
    ) throws -> LedgerEntry {
        var entry = LedgerEntry(
            seq: (head?.seq ?? 0) + 1, createdAtMillis: now, kind: kind, account: account, amount: amount,
            inference: inference, subject: subject, memo: memo, prevHash: head?.hash ?? ChainEncoding.genesisHash,
            hash: Data())
        entry.hash = ChainEncoding.hash(entry)
        let contributorID: ContributorID? =
            switch account {
            case .protocol: nil
            case .contributor(let id): id
            }
        try db.execute(
            sql: """
                INSERT INTO ledger_entry (seq, created_at, kind, account, contributor_id, amount, inference_id,
                                          subject_contributor_id, memo, prev_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                entry.seq, now, kind.rawValue, account.columnValue, contributorID, amount, inference, subject, memo,
                entry.prevHash, entry.hash,
            ])
        return entry
    }

    static func entry(from row: Row) throws -> LedgerEntry {
        let seq: Int64 = try row.decode(forColumn: "seq")
        let rawKind: String = try row.decode(forColumn: "kind")
        guard let kind = LedgerEntryKind(rawValue: rawKind) else {
            throw StoreError.corruptRow("ledger entry \(seq) has kind \"\(rawKind)\"")
        }
        let contributorID: ContributorID? = try row.decode(forColumn: "contributor_id")
        return LedgerEntry(
            seq: seq, createdAtMillis: try row.decode(forColumn: "created_at"),
            kind: kind,
            account: contributorID.map(LedgerAccount.contributor) ?? .protocol,
            amount: try row.decode(forColumn: "amount"), inference: try row.decode(forColumn: "inference_id"),
            subject: try row.decode(forColumn: "subject_contributor_id"), memo: try row.decode(forColumn: "memo"),
            prevHash: try row.decode(forColumn: "prev_hash"), hash: try row.decode(forColumn: "hash"))
    }

    static func verifyLedger(_ db: Database, anchors: [LedgerHead]) throws -> LedgerVerification {
        // Anchors by seq; two different hashes for one seq cannot both hold.
        var anchorHashes: [Int64: [Data]] = [:]
        for anchor in anchors { anchorHashes[anchor.seq, default: []].append(anchor.hash) }

        // Raw column values: text as the bytes stored (CAST AS BLOB), so that the hash covers exactly the file.
        let cursor = try Row.fetchCursor(
            db,
            sql: """
                SELECT seq, created_at, CAST(kind AS BLOB), CAST(account AS BLOB), contributor_id, amount,
                       inference_id, subject_contributor_id, CAST(memo AS BLOB), prev_hash, hash
                FROM ledger_entry ORDER BY seq
                """)
        var expected: Int64 = 1
        var previousHash = ChainEncoding.genesisHash
        var checked: Int64 = 0
        var head: LedgerHead?

        func result(_ broken: LedgerBreak?) -> LedgerVerification {
            LedgerVerification(entriesChecked: checked, head: head, firstBreak: broken)
        }

        while let row = try cursor.next() {
            let values = Array(row.databaseValues)
            guard case .int64(let seq) = values[0].storage else {
                return result(.malformed(seq: expected, reason: "seq is not an integer"))
            }
            guard seq == expected else { return result(.missingEntry(expected: expected, found: seq)) }
            let fields: ChainEncoding.Fields
            let storedHash: Data
            do {
                func int(_ i: Int, _ name: String) throws -> Int64 {
                    guard case .int64(let v) = values[i].storage else { throw Malformed("\(name) is not an integer") }
                    return v
                }
                func optionalInt(_ i: Int, _ name: String) throws -> Int64? {
                    switch values[i].storage {
                    case .null: return nil
                    case .int64(let v): return v
                    default: throw Malformed("\(name) is neither NULL nor an integer")
                    }
                }
                func bytes(_ i: Int, _ name: String, count: Int? = nil) throws -> [UInt8] {
                    let value: [UInt8]
                    switch values[i].storage {
                    case .blob(let data): value = Array(data)
                    case .string(let s): value = Array(s.utf8)
                    default: throw Malformed("\(name) is not text or bytes")
                    }
                    if let count, value.count != count { throw Malformed("\(name) is \(value.count) bytes, not \(count)") }
                    return value
                }
                fields = ChainEncoding.Fields(
                    seq: seq, createdAt: try int(1, "created_at"), kind: try bytes(2, "kind"),
                    account: try bytes(3, "account"), contributorID: try optionalInt(4, "contributor_id"),
                    amount: try int(5, "amount"), inferenceID: try optionalInt(6, "inference_id"),
                    subjectContributorID: try optionalInt(7, "subject_contributor_id"), memo: try bytes(8, "memo"),
                    prevHash: try bytes(9, "prev_hash", count: 32))
                storedHash = Data(try bytes(10, "hash", count: 32))
            } catch let error as Malformed {
                return result(.malformed(seq: seq, reason: error.reason))
            }
            guard Data(fields.prevHash) == previousHash else { return result(.prevHashMismatch(seq: seq)) }
            guard ChainEncoding.hash(fields) == storedHash else { return result(.hashMismatch(seq: seq)) }
            if let hashes = anchorHashes[seq], hashes.contains(where: { $0 != storedHash }) {
                return result(.anchorMismatch(seq: seq))
            }
            checked += 1
            head = LedgerHead(seq: seq, hash: storedHash)
            previousHash = storedHash
            expected = seq + 1
        }
        if let missing = anchorHashes.keys.filter({ $0 >= expected }).min() {
            return result(.anchorMissing(seq: missing))
        }
        return result(nil)
    }
}

private struct Malformed: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
