import Foundation
import GRDB

/// The bounds on money, in micro-units, that keep every sum the store makes inside `Int64`.
///
/// Money enters only by deposits, and the sum of all deposits ever made is at most ``maximumTotalDeposits``
/// (10^18, about a ninth of `Int64.max`). Balances never go negative and always sum to the deposits, so every
/// balance, and every running balance the ledger's verification adds up entry by entry, stays within it. A fee is
/// at most ``maximumFee``, so an inference's credits (which add up to its fee) cannot overflow either.
public enum MoneyBounds {
    /// The largest fee of one inference: 10^15 micro-units (a billion units).
    public static let maximumFee: Int64 = 1_000_000_000_000_000
    /// The largest single deposit: 10^15 micro-units.
    public static let maximumDeposit: Int64 = 1_000_000_000_000_000
    /// The largest sum of all deposits ever made: 10^18 micro-units.
    public static let maximumTotalDeposits: Int64 = 1_000_000_000_000_000_000
    /// Idempotency keys and memos are at most this many UTF-8 bytes.
    public static let maximumKeyBytes = 200
    public static let maximumMemoBytes = 1_000
}

/// What ``Store/deposit(_:to:by:memo:idempotencyKey:)`` did.
public struct DepositReceipt: Hashable, Sendable {
    /// The `deposit` ledger entry (the original one when the key was already used).
    public var entry: LedgerEntry
    /// The account's balance now.
    public var balance: Int64
    /// True when the key had already been used for this same deposit: nothing new was written.
    public var isReplay: Bool
}

extension Store {
    /// Credits `amount` micro-units to `contributor`'s account as a `deposit` ledger entry naming `operator` (its
    /// subject): the only way money enters the economy.
    ///
    /// `idempotencyKey` (1 to 200 bytes, no control characters) makes a retry safe: the same operator's same key
    /// credits once, and a retry of the same deposit gets the original entry back. The same key for a different
    /// contributor or amount is refused.
    ///
    /// - Throws: ``StoreError/notOperator(_:)`` when `operator` is not an operator (checked before anything else,
    ///   so a refusal says nothing about the account), ``StoreError/contributorNotFound(_:)``,
    ///   ``StoreError/invalidDeposit(_:)``, ``StoreError/depositLimitReached(total:amount:)``,
    ///   ``StoreError/idempotencyKeyReused(key:reason:)``.
    public func deposit(
        _ amount: Int64, to contributor: ContributorID, by operator: ContributorID, memo: String = "",
        idempotencyKey: String
    ) throws -> DepositReceipt {
        let now = nowMillis()
        return try write { db in
            guard try Self.fetchRole(db, `operator`) == .operator else { throw StoreError.notOperator(`operator`) }
            guard (1...MoneyBounds.maximumDeposit).contains(amount) else {
                throw StoreError.invalidDeposit("amount \(amount) is outside 1 to \(MoneyBounds.maximumDeposit) micro-units")
            }
            guard Self.isValidKey(idempotencyKey) else { throw StoreError.invalidDeposit(Self.keyRule) }
            guard memo.utf8.count <= MoneyBounds.maximumMemoBytes, !Validation.containsControlCharacters(memo) else {
                throw StoreError.invalidDeposit(
                    "memo must be at most \(MoneyBounds.maximumMemoBytes) bytes, without control characters")
            }
            try Self.requireContributor(db, contributor)

            if let seq = try Int64.fetchOne(
                db, sql: "SELECT ledger_seq FROM deposit_request WHERE operator_id = ? AND idempotency_key = ?",
                arguments: [`operator`, idempotencyKey])
            {
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM ledger_entry WHERE seq = ?", arguments: [seq])
                else { throw StoreError.corruptRow("deposit request \"\(idempotencyKey)\" names missing entry \(seq)") }
                let original = try Self.entry(from: row)
                guard original.account == .contributor(contributor), original.amount == amount, original.memo == memo else {
                    throw StoreError.idempotencyKeyReused(
                        key: idempotencyKey,
                        reason: "it credited \(original.account) \(original.amount) (entry \(original.seq))")
                }
                return DepositReceipt(
                    entry: original, balance: try Self.balance(db, of: .contributor(contributor)), isReplay: true)
            }

            let total = try Int64.fetchOne(
                db, sql: "SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE kind = 'deposit'") ?? 0
            let (after, overflow) = total.addingReportingOverflow(amount)
            guard !overflow, after <= MoneyBounds.maximumTotalDeposits else {
                throw StoreError.depositLimitReached(total: total, amount: amount)
            }
            let entry = try Self.append(
                db, after: try Self.head(db), kind: .deposit, account: .contributor(contributor), amount: amount,
                inference: nil, subject: `operator`, memo: memo, at: now)
            try db.execute(
                sql: "INSERT INTO deposit_request (operator_id, idempotency_key, ledger_seq) VALUES (?, ?, ?)",
                arguments: [`operator`, idempotencyKey, entry.seq])
            return DepositReceipt(
                entry: entry, balance: try Self.balance(db, of: .contributor(contributor)), isReplay: false)
        }
    }

    /// Checks, before any work is done for it, that `payer` can pay `fee` for a request on `adapter` with
    /// `idempotencyKey`: returns the inference already recorded under the key (a retry, charged once already), or
    /// nil when the balance covers the fee. Recording re-checks the balance in its own transaction.
    ///
    /// - Throws: ``StoreError/invalidFee(_:)``, ``StoreError/insufficientFunds(payer:balance:fee:)``,
    ///   ``StoreError/contributorNotFound(_:)``, ``StoreError/invalidInference(_:)`` for a malformed key,
    ///   ``StoreError/idempotencyKeyReused(key:reason:)`` when the key names a request for another fee or adapter.
    public func authorizePayment(
        of fee: Int64, by payer: ContributorID, on adapter: AdapterID? = nil, idempotencyKey: String?
    ) throws -> InferenceID? {
        guard (0...MoneyBounds.maximumFee).contains(fee) else { throw StoreError.invalidFee(fee) }
        if let idempotencyKey, !Self.isValidKey(idempotencyKey) { throw StoreError.invalidInference(Self.keyRule) }
        return try read { db in
            try Self.requireContributor(db, payer)
            if let idempotencyKey,
                let existing = try InferenceID.fetchOne(
                    db, sql: "SELECT id FROM inference WHERE payer_id = ? AND idempotency_key = ?",
                    arguments: [payer, idempotencyKey])
            {
                let original = try Self.fetchInference(db, existing)
                guard original.fee == fee, adapter == nil || original.adapter == adapter else {
                    throw StoreError.idempotencyKeyReused(
                        key: idempotencyKey,
                        reason: "it paid \(original.fee) for inference \(original.id.rawValue) on \(original.adapter)")
                }
                return existing
            }
            let balance = try Self.balance(db, of: .contributor(payer))
            guard balance >= fee else { throw StoreError.insufficientFunds(payer: payer, balance: balance, fee: fee) }
            return nil
        }
    }

    /// The sum of all deposits ever made.
    public func totalDeposits() throws -> Int64 {
        try read { db in
            try Int64.fetchOne(db, sql: "SELECT coalesce(sum(amount), 0) FROM ledger_entry WHERE kind = 'deposit'") ?? 0
        }
    }

    static func fetchRole(_ db: Database, _ id: ContributorID) throws -> ContributorRole? {
        try String.fetchOne(db, sql: "SELECT role FROM contributor WHERE id = ?", arguments: [id])
            .flatMap(ContributorRole.init(rawValue:))
    }

    static func isValidKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= MoneyBounds.maximumKeyBytes && !Validation.containsControlCharacters(key)
    }

    static let keyRule = "an idempotency key is 1 to \(MoneyBounds.maximumKeyBytes) bytes, without control characters"
}
