import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Schema, migrations and SQL-level guards")
struct SchemaTests {
    @Test func opensOneDataDirectoryInWALModeWithFullSync() throws {
        let dir = try TemporaryDirectory()
        let nested = dir.url.appendingPathComponent("a/b/data")
        let store = try Store(directory: nested)
        #expect(FileManager.default.fileExists(atPath: nested.appendingPathComponent("tributary.sqlite").path))
        #expect(store.databasePath == nested.appendingPathComponent("tributary.sqlite").path)
        let (journal, sync, foreignKeys) = try store.dbPool.writeWithoutTransaction { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"),
             try Int.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(journal == "wal")
        #expect(sync == 2)  // FULL
        #expect(foreignKeys == 1)
        #expect(try store.appliedMigrations() == ["v1", "v2-jobs", "v3-engine-drains", "v4-roles", "v5-accounts", "v6-engine-bindings", "v7-access-penalties"])
    }

    @Test func migrationsAreVersionedAndIdempotent() throws {
        let dir = try TemporaryDirectory()
        do {
            let store = try Store(directory: dir.url)
            _ = try store.createContributor(displayName: "Ada")
            try store.close()
        }
        let again = try Store(directory: dir.url)
        #expect(try again.appliedMigrations() == ["v1", "v2-jobs", "v3-engine-drains", "v4-roles", "v5-accounts", "v6-engine-bindings", "v7-access-penalties"])
        #expect(try again.contributors().count == 1)
        // A database from a newer Tributary is refused rather than misread.
        try again.executeRaw("INSERT INTO grdb_migrations (identifier) VALUES ('v2-from-the-future')")
        try again.close()
        #expect(throws: StoreError.schemaTooNew(unknownMigrations: ["v2-from-the-future"])) {
            _ = try Store(directory: dir.url)
        }
    }

    @Test func appendOnlyAndImmutableTablesRefuseUpdatesAndDeletesInSQL() throws {
        let f = try Fixture()
        _ = try f.store.recordInference(f.inference("r", fee: 1000, shares: [f.records[0].id: 1]))
        try f.penalize(f.records[1].id)
        let before = try f.store.dump()
        let statements = [
            "UPDATE ledger_entry SET amount = amount + 1 WHERE seq = 1",
            "UPDATE ledger_entry SET memo = 'x'",
            "DELETE FROM ledger_entry WHERE seq = 3",
            "DELETE FROM ledger_entry",
            // Inserts must extend the chain: right seq, right prev_hash.
            "INSERT INTO ledger_entry (seq, created_at, kind, account, amount, memo, prev_hash, hash) VALUES (10, 0, 'protocol_share', 'protocol', 1, '', zeroblob(32), zeroblob(32))",
            "INSERT INTO ledger_entry (seq, created_at, kind, account, amount, memo, prev_hash, hash) VALUES (4, 0, 'protocol_share', 'protocol', 1, '', zeroblob(32), zeroblob(32))",
            "UPDATE datanet_version SET record_count = 1",
            "DELETE FROM datanet_version",
            "UPDATE version_record SET record_id = 2 WHERE record_id = 1",
            "DELETE FROM version_record",
            "INSERT INTO version_record (version_id, position, record_id) VALUES (1, 6, 1)",
            "UPDATE record SET text = 'rewritten' WHERE id = 1",
            "UPDATE record SET contributor_id = 2 WHERE id = 1",
            "UPDATE record SET status = 'pending', reviewed_at = NULL WHERE id = 1",
            "DELETE FROM record WHERE id = 1",
            "UPDATE inference SET fee = 0",
            "DELETE FROM inference",
            "UPDATE inference_record_share SET share = 0",
            "DELETE FROM inference_contributor_share",
            "UPDATE record_penalty SET points = 100",
            "DELETE FROM record_penalty",
            "DELETE FROM contributor WHERE id = 4",
            "UPDATE datanet SET owner_id = 2",
            "UPDATE datanet SET name = 'renamed'",
            // Accounts: never negative, never deleted; deposit keys and the epoch are fixed; fees are bounded and paid.
            "UPDATE account_balance SET balance = -1 WHERE contributor_id = 5",
            "UPDATE account_balance SET balance = 1000000000000000001",
            "DELETE FROM account_balance",
            "UPDATE deposit_request SET idempotency_key = 'other'",
            "DELETE FROM deposit_request",
            "UPDATE ledger_accounts_epoch SET first_seq = 1000",
            "DELETE FROM ledger_accounts_epoch",
            """
            INSERT INTO inference (request_id, adapter_id, prompt_output_hash, method, fee, contributors_bp, owner_bp,
                                   protocol_bp, penalty_threshold, penalty_keep_bp, created_at, payer_id)
            VALUES ('huge', 1, zeroblob(32), 'm', 1000000000000001, 7000, 2000, 1000, 3, 5000, 0, 5)
            """,
            """
            INSERT INTO inference (request_id, adapter_id, prompt_output_hash, method, fee, contributors_bp, owner_bp,
                                   protocol_bp, penalty_threshold, penalty_keep_bp, created_at)
            VALUES ('unpaid', 1, zeroblob(32), 'm', 10, 7000, 2000, 1000, 3, 5000, 0)
            """,
        ]
        for sql in statements {
            #expect(throws: DatabaseError.self, "\(sql)") { try f.store.executeRaw(sql) }
        }
        #expect(try f.store.dump() == before)
    }
}
