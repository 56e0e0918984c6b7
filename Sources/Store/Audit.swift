import Foundation
import GRDB

/// The result of ``Store/audit()``.
public struct StoreAudit: Sendable, CustomStringConvertible {
    /// The ledger chain's verification.
    public var ledger: LedgerVerification
    /// Everything found wrong, one line each; empty when the store is consistent.
    public var problems: [String]
    public var isConsistent: Bool { problems.isEmpty }
    public var description: String {
        problems.isEmpty ? "store consistent; \(ledger)" : problems.joined(separator: "\n")
    }
}

extension Store {
    /// Checks the whole store in one snapshot: SQLite's `integrity_check` and `foreign_key_check`; the ledger
    /// chain and the conservation of money (``Store/verifyLedger(anchors:)``); that each paid inference's
    /// credits sum to its fee and match its contributor payouts; that
    /// each version holds its record count and its manifest hash; that each record's content hash matches its
    /// content.
    public func audit() throws -> StoreAudit {
        try read { db in
            var problems: [String] = []
            let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            if integrity != ["ok"] { problems += integrity.map { "integrity_check: \($0)" } }
            for row in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") {
                problems.append("foreign_key_check: \(row)")
            }
            let ledger = try Self.verifyLedger(db, anchors: [])
            if let broken = ledger.firstBreak { problems.append("ledger: \(broken)") }

            // Each inference's credits sum to its fee (its debit is verifyLedger's), and contributors were credited
            // what the shares say. Bounded: an inference's credits add up to its fee, at most MoneyBounds.maximumFee.
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT i.id, i.fee, (SELECT coalesce(sum(amount), 0) FROM ledger_entry l
                                          WHERE l.inference_id = i.id AND l.kind <> 'fee_payment') AS paid
                    FROM inference i WHERE paid <> i.fee
                    """)
            {
                let id: Int64 = try row.decode(forColumn: "id")
                let fee: Int64 = try row.decode(forColumn: "fee")
                let paid: Int64 = try row.decode(forColumn: "paid")
                problems.append("inference \(id): ledger credits sum to \(paid), fee is \(fee)")
            }
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT s.inference_id, s.contributor_id, s.paid_amount,
                           (SELECT coalesce(sum(amount), 0) FROM ledger_entry l
                            WHERE l.inference_id = s.inference_id AND l.kind = 'contributor_share'
                              AND l.contributor_id = s.contributor_id) AS credited
                    FROM inference_contributor_share s WHERE credited <> s.paid_amount
                    """)
            {
                problems.append(
                    "inference \(try row.decode(Int64.self, forColumn: "inference_id")): contributor "
                        + "\(try row.decode(Int64.self, forColumn: "contributor_id")) credited "
                        + "\(try row.decode(Int64.self, forColumn: "credited")), share says "
                        + "\(try row.decode(Int64.self, forColumn: "paid_amount"))")
            }

            // Versions.
            let versions = try Row.fetchAll(
                db, sql: "SELECT id, datanet_id, number, record_count, manifest_hash FROM datanet_version")
            for row in versions {
                let versionID: Int64 = try row.decode(forColumn: "id")
                let datanet: Int64 = try row.decode(forColumn: "datanet_id")
                let number: Int64 = try row.decode(forColumn: "number")
                let label = "datanet \(datanet) version \(number)"
                let members = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT r.id, r.content_hash FROM version_record v JOIN record r ON r.id = v.record_id
                        WHERE v.version_id = ? ORDER BY v.position
                        """,
                    arguments: [versionID]
                ).map { (try $0.decode(RecordID.self, forColumn: "id"), try $0.decode(Data.self, forColumn: "content_hash")) }
                if members.count != (try row.decode(Int.self, forColumn: "record_count")) {
                    problems.append("\(label): holds \(members.count) records, not its record_count")
                }
                if Self.manifestHash(members) != (try row.decode(Data.self, forColumn: "manifest_hash")) {
                    problems.append("\(label): manifest hash does not match its records")
                }
            }

            // Records.
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM record ORDER BY id")
            while let row = try cursor.next() {
                let id: Int64 = try row.decode(forColumn: "id")
                let stored: Data = try row.decode(forColumn: "content_hash")
                if ContentNormalizer.contentHash(try Self.content(from: row)) != stored {
                    problems.append("record \(id): content hash does not match its content")
                }
            }
            return StoreAudit(ledger: ledger, problems: problems)
        }
    }
}
