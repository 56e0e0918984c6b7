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

    /// `account_balance.contributor_id`: the contributor's id, 0 for the protocol.
    var balanceKey: Int64 {
        switch self {
        case .protocol: 0
        case .contributor(let id): id.rawValue
        }
    }

    public var description: String {
        switch self {
        case .protocol: "protocol"
        case .contributor(let id): id.description
        }
    }
}

/// What a ledger entry is for. Every kind but ``feePayment`` credits its account; ``feePayment`` debits it.
public enum LedgerEntryKind: String, Sendable, Codable, CaseIterable {
    /// A data contributor's share of an inference fee (after any penalty).
    case contributorShare = "contributor_share"
    /// The adapter owner's share.
    case ownerShare = "owner_share"
    /// The protocol's share, with the rounding remainder.
    case protocolShare = "protocol_share"
    /// A penalty reduction: the part of a penalised contributor's share (`subject`) forfeited to the protocol.
    case penaltyForfeit = "penalty_forfeit"
    /// Money entering the economy: an operator (`subject`) credits a contributor's account. The only way in.
    case deposit = "deposit"
    /// A paid inference's charge: the payer's account is debited the fee, which the inference's credits add up to.
    case feePayment = "fee_payment"
    /// A penalty imposed by curation (amount 0): the account is the penalised contributor, the memo its evidence
    /// (``Store/penalize(_:adapter:by:evidence:points:)``).
    case penalty

    /// Whether the entry takes its amount out of its account rather than adding it.
    public var isDebit: Bool { self == .feePayment }
}

/// One append-only, hash-chained ledger entry: `amount` micro-units credited to `account`, or debited from it for a
/// ``LedgerEntryKind/feePayment``.
public struct LedgerEntry: Hashable, Sendable {
    /// 1, 2, 3, ... with no gaps.
    public var seq: Int64
    public var createdAtMillis: Int64
    public var kind: LedgerEntryKind
    public var account: LedgerAccount
    /// Micro-units, non-negative: the kind says whether it is credited or debited (``signedAmount``).
    public var amount: Int64
    /// The inference that paid it (or, for a fee payment, that it paid for).
    public var inference: InferenceID?
    /// For a penalty forfeit, the penalised contributor; for a deposit, the operator who made it.
    public var subject: ContributorID?
    public var memo: String
    /// The previous entry's hash; 32 zero bytes for seq 1.
    public var prevHash: Data
    /// SHA-256 of ``ChainEncoding`` of this entry.
    public var hash: Data

    public var createdAt: Date { Date(millis: createdAtMillis) }
    /// What the entry adds to its account's balance: `-amount` for a debit.
    public var signedAmount: Int64 { kind.isDebit ? -amount : amount }
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
    /// The chain's hashes hold but its money does not: at `seq` an inference's entries do not net to zero
    /// against its fee, an account goes negative, a deposit has no operator's deposit request, or (at
    /// the head) the stored balances or their sum differ from what the entries add up to. Money was minted or
    /// destroyed by an edit.
    case unbalanced(seq: Int64, reason: String)

    /// The entry named.
    public var seq: Int64 {
        switch self {
        case .missingEntry(let expected, _): expected
        case .prevHashMismatch(let seq), .hashMismatch(let seq), .malformed(let seq, _), .anchorMismatch(let seq),
            .anchorMissing(let seq), .unbalanced(let seq, _):
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
        case .unbalanced(let seq, let reason): "entry \(seq): the ledger does not balance: \(reason)"
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
    /// The sum of the deposit entries checked, in micro-units.
    public var deposits: Int64 = 0
    /// The sum of the balances the entries checked add up to.
    public var balances: Int64 = 0
    /// Fees credited before accounts began (migration `v5-accounts`), with no payer debited: the only money
    /// that did not come from a deposit.
    public var mintedBeforeAccounts: Int64 = 0
    public var isValid: Bool { firstBreak == nil }
    public var description: String {
        if let firstBreak { return "ledger broken: \(firstBreak)" }
        let minted = mintedBeforeAccounts == 0 ? "" : " + \(mintedBeforeAccounts) credited before accounts"
        return "ledger intact: \(entriesChecked) entries, head \(head.map(\.description) ?? "none"); balances "
            + "\(balances) = deposits \(deposits)\(minted)"
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
    ///
    /// The same walk checks that money is conserved, which holds even against a chain rewritten with fresh
    /// hashes: every paid inference's entries are contiguous, its `fee_payment` debits its payer its fee and its
    /// credits add up to that fee; no account ever goes negative; and at the head the balances the entries add up
    /// to are the stored ones (`account_balance`) and sum to the deposits (plus fees credited before accounts
    /// began). A violation is ``LedgerBreak/unbalanced(seq:reason:)``. All sums are overflow-checked.
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

    /// The account's balance in micro-units: what its entries add up to (credits less debits), as the store keeps
    /// it alongside the ledger (``verifyLedger(anchors:)`` checks the two agree).
    public func balance(of account: LedgerAccount) throws -> Int64 {
        try read { db in
            if case .contributor(let id) = account { try Self.requireContributor(db, id) }
            return try Self.balance(db, of: account)
        }
    }

    /// Every account with entries, and its balance.
    public func balances() throws -> [LedgerAccount: Int64] {
        try read { db in
            var result: [LedgerAccount: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT contributor_id, balance FROM account_balance") {
                let id: Int64 = try row.decode(forColumn: "contributor_id")
                result[id == 0 ? .protocol : .contributor(ContributorID(id))] = try row.decode(forColumn: "balance")
            }
            return result
        }
    }

    // MARK: - Internals

    static func balance(_ db: Database, of account: LedgerAccount) throws -> Int64 {
        try Int64.fetchOne(
            db, sql: "SELECT balance FROM account_balance WHERE account = ? AND contributor_id = ?",
            arguments: [account.columnValue, account.balanceKey]) ?? 0
    }

    static func head(_ db: Database) throws -> LedgerHead? {
        guard let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
        else { return nil }
        return LedgerHead(seq: try row.decode(forColumn: "seq"), hash: try row.decode(forColumn: "hash"))
    }

    /// Appends one entry after `head` (nil for an empty ledger) and returns it, and moves its account's balance
    /// by it; the caller passes the returned entry's head to the next append in the same transaction.
    ///
    /// - Throws: ``StoreError/insufficientFunds(payer:balance:fee:)`` when a debit would take the balance below
    ///   zero: the transaction's own last check, so that a concurrent spend cannot overdraw.
    static func append(
        _ db: Database, after head: LedgerHead?, kind: LedgerEntryKind, account: LedgerAccount, amount: Int64,
        inference: InferenceID?, subject: ContributorID?, memo: String, at now: Int64
    ) throws -> LedgerEntry {
        precondition(amount >= 0, "ledger amounts are magnitudes")
        let balance = try Self.balance(db, of: account)
        let (moved, overflow) =
            kind.isDebit ? balance.subtractingReportingOverflow(amount) : balance.addingReportingOverflow(amount)
        if kind.isDebit, overflow || moved < 0, case .contributor(let payer) = account {
            throw StoreError.insufficientFunds(payer: payer, balance: balance, fee: amount)
        }
        // Balances sum to the deposits, which MoneyBounds keeps far below Int64's range.
        guard !overflow, moved >= 0, moved <= MoneyBounds.maximumTotalDeposits else {
            throw StoreError.corruptRow("the balance of \(account) (\(balance)) cannot take \(kind.rawValue) \(amount)")
        }
        try db.execute(
            sql: """
                INSERT INTO account_balance (account, contributor_id, balance) VALUES (?, ?, ?)
                ON CONFLICT (account, contributor_id) DO UPDATE SET balance = excluded.balance
                """,
            arguments: [account.columnValue, account.balanceKey, moved])
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
        var money = try Conservation(db)

        func result(_ broken: LedgerBreak?) -> LedgerVerification {
            LedgerVerification(
                entriesChecked: checked, head: head, firstBreak: broken, deposits: money.deposits,
                balances: money.balanceSum, mintedBeforeAccounts: money.mintedBeforeAccounts)
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
            if let broken = try money.take(fields) { return result(broken) }
            checked += 1
            head = LedgerHead(seq: seq, hash: storedHash)
            previousHash = storedHash
            expected = seq + 1
        }
        if let missing = anchorHashes.keys.filter({ $0 >= expected }).min() {
            return result(.anchorMissing(seq: missing))
        }
        return result(try money.finish(at: head?.seq ?? 0))
    }
}

/// The money side of the ledger walk: each account's balance entry by entry, in `Int64` with every sum checked
/// (an honest ledger's running balances are real balances, at most ``MoneyBounds/maximumTotalDeposits``; an
/// overflow is itself a break), and each paid inference's entries netted against its fee.
private struct Conservation {
    /// Entries before this seq were written before accounts began (`ledger_accounts_epoch`).
    let epoch: Int64
    let inferenceStatement: Statement
    let depositStatement: Statement
    let db: Database
    /// By `account_balance.contributor_id`: 0 for the protocol.
    var balances: [Int64: Int64] = [:]
    var deposits: Int64 = 0
    var mintedBeforeAccounts: Int64 = 0
    var balanceSum: Int64 = 0
    /// The inference whose entries are being walked.
    var open: (id: Int64, lastSeq: Int64, credits: Int64, debit: Int64?, payer: Int64?)?
    var closed: Set<Int64> = []

    init(_ db: Database) throws {
        self.db = db
        epoch = try Int64.fetchOne(db, sql: "SELECT first_seq FROM ledger_accounts_epoch WHERE id = 1") ?? 1
        inferenceStatement = try db.makeStatement(sql: "SELECT fee, payer_id FROM inference WHERE id = ?")
        depositStatement = try db.makeStatement(sql: "SELECT operator_id FROM deposit_request WHERE ledger_seq = ?")
    }

    /// Takes the next entry, whose hash is good; returns the break it shows, if any.
    mutating func take(_ entry: ChainEncoding.Fields) throws -> LedgerBreak? {
        let seq = entry.seq
        func unbalanced(_ reason: String) -> LedgerBreak { .unbalanced(seq: seq, reason: reason) }
        guard let kind = LedgerEntryKind(rawValue: String(decoding: entry.kind, as: UTF8.self)) else {
            return unbalanced("kind \"\(String(decoding: entry.kind, as: UTF8.self))\" moves no known money")
        }
        guard entry.amount >= 0 else { return unbalanced("amount \(entry.amount) is negative") }
        if entry.inferenceID != open?.id {
            if let broken = try close() { return broken }
            if let id = entry.inferenceID {
                guard !closed.contains(id) else { return unbalanced("inference \(id)'s entries are not contiguous") }
                open = (id, seq, 0, nil, nil)
            }
        }
        let account = entry.contributorID ?? 0
        let before = balances[account] ?? 0
        switch kind {
        case .deposit:
            guard entry.inferenceID == nil, entry.contributorID != nil, entry.subjectContributorID != nil,
                (1...MoneyBounds.maximumDeposit).contains(entry.amount)
            else { return unbalanced("a deposit credits a contributor 1 to \(MoneyBounds.maximumDeposit), made by an operator") }
            // Money enters only through Store.deposit, which checked the operator's role then (a role may change
            // later): its request row names the operator the entry names.
            guard try Int64.fetchOne(depositStatement, arguments: [seq]) == entry.subjectContributorID else {
                return unbalanced("deposit of \(entry.amount) has no deposit request from contributor \(entry.subjectContributorID ?? 0)")
            }
            let (total, overflow) = deposits.addingReportingOverflow(entry.amount)
            guard !overflow, total <= MoneyBounds.maximumTotalDeposits else {
                return unbalanced("deposits pass \(MoneyBounds.maximumTotalDeposits)")
            }
            deposits = total
        case .feePayment:
            guard let id = entry.inferenceID, let payer = entry.contributorID, seq >= epoch else {
                return unbalanced("a fee payment debits a contributor for an inference recorded with accounts")
            }
            guard open?.debit == nil else { return unbalanced("inference \(id) is paid twice") }
            open?.debit = entry.amount
            open?.payer = payer
        case .penalty:
            // A curation penalty moves no money: it puts the verdict and its evidence on the chain.
            guard entry.inferenceID == nil, entry.amount == 0, let penalised = entry.contributorID,
                entry.subjectContributorID == penalised
            else { return unbalanced("a penalty moves no money and names the penalised contributor as its account") }
        case .contributorShare, .ownerShare, .protocolShare, .penaltyForfeit:
            guard entry.inferenceID != nil else { return unbalanced("a \(kind.rawValue) credit names no inference") }
            let (credits, overflow) = open!.credits.addingReportingOverflow(entry.amount)
            guard !overflow else { return unbalanced("inference \(open!.id)'s credits overflow") }
            open?.credits = credits
            if seq < epoch { mintedBeforeAccounts += entry.amount }
        }
        open?.lastSeq = seq
        let (after, overflow) =
            kind.isDebit ? before.subtractingReportingOverflow(entry.amount) : before.addingReportingOverflow(entry.amount)
        guard !overflow, after <= MoneyBounds.maximumTotalDeposits else {
            return unbalanced("the balance of account \(account) leaves its bounds")
        }
        guard after >= 0 else { return unbalanced("contributor \(account) is overdrawn: balance \(before), debit \(entry.amount)") }
        balances[account] = after
        balanceSum += after - before  // Both are in 0...maximumTotalDeposits.
        return nil
    }

    /// Nets the open inference's entries against its recorded fee and payer.
    mutating func close() throws -> LedgerBreak? {
        guard let inference = open else { return nil }
        open = nil
        closed.insert(inference.id)
        func unbalanced(_ reason: String) -> LedgerBreak {
            .unbalanced(seq: inference.lastSeq, reason: "inference \(inference.id): \(reason)")
        }
        guard let row = try Row.fetchOne(inferenceStatement, arguments: [inference.id]) else {
            return unbalanced("no such inference")
        }
        let fee: Int64 = try row.decode(forColumn: "fee")
        let payer: Int64? = try row.decode(forColumn: "payer_id")
        guard inference.credits == fee else { return unbalanced("credits add up to \(inference.credits), the fee is \(fee)") }
        if inference.lastSeq < epoch {
            guard inference.debit == nil else { return unbalanced("paid for before accounts began") }
            return nil
        }
        guard let debit = inference.debit else { return unbalanced("credits \(fee) with no fee payment") }
        guard debit == fee else { return unbalanced("the payer is debited \(debit), the fee is \(fee)") }
        guard inference.payer == payer else {
            return unbalanced("contributor \(inference.payer ?? 0) is debited, the payer is \(payer.map(String.init) ?? "none")")
        }
        return nil
    }

    /// At the head: the open inference closes, the balances sum to what came in and are the stored ones.
    mutating func finish(at seq: Int64) throws -> LedgerBreak? {
        if let broken = try close() { return broken }
        let (expected, overflow) = deposits.addingReportingOverflow(mintedBeforeAccounts)
        guard !overflow, balanceSum == expected else {
            return .unbalanced(
                seq: seq, reason: "balances sum to \(balanceSum), deposits and earlier fees to \(deposits) + \(mintedBeforeAccounts)")
        }
        var stored: [Int64: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT contributor_id, balance FROM account_balance") {
            stored[try row.decode(forColumn: "contributor_id")] = try row.decode(forColumn: "balance")
        }
        for account in Set(stored.keys).union(balances.keys).sorted()
        where (stored[account] ?? 0) != (balances[account] ?? 0) {
            let name = account == 0 ? "the protocol" : "contributor \(account)"
            return .unbalanced(
                seq: seq,
                reason: "\(name)'s stored balance is \(stored[account] ?? 0), its entries add up to \(balances[account] ?? 0)")
        }
        return nil
    }
}

private struct Malformed: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
