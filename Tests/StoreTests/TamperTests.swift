import Crypto
import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Ledger hash chain: verification and tampering")
struct TamperTests {
    /// Writes `count` inferences with a single record each, so that every inference writes 4 entries: erin's fee
    /// payment, the contributor's, owner's and protocol's shares.
    static func fill(_ f: Fixture, count: Int, feeBase: Int64 = 1_000) throws {
        for i in 0..<count {
            _ = try f.store.recordInference(
                f.inference("fill-\(feeBase)-\(i)", fee: feeBase + Int64(i) * 37, shares: [f.records[i % 6].id: 1]))
        }
    }

    /// Finds `needle` in the database file (the store closed, the WAL folded in), expecting exactly one
    /// occurrence, and flips one bit of the byte at `offset` within it.
    static func flipByte(inFileOf path: String, at needle: [UInt8], offset: Int) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var hits: [Int] = []
        if bytes.count >= needle.count {
            for i in 0...(bytes.count - needle.count) where bytes[i] == needle[0] && Array(bytes[i..<(i + needle.count)]) == needle {
                hits.append(i)
            }
        }
        try #require(hits.count == 1, "expected the bytes once in the file, found \(hits.count) times")
        bytes[hits[0] + offset] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func anIntactChainVerifiesAndTheEncodingIsTheDocumentedOne() throws {
        let empty = try TemporaryDirectory()
        #expect(try Store(directory: empty.url).verifyLedger() == LedgerVerification(entriesChecked: 0, head: nil, firstBreak: nil))
        let f = try Fixture()
        try Self.fill(f, count: 10)
        let entries = try f.store.ledgerEntries()
        #expect(entries.count == 41)
        #expect(entries.first?.prevHash == Data(count: 32))
        for (previous, entry) in zip(entries, entries.dropFirst()) { #expect(entry.prevHash == previous.hash) }
        for entry in entries { #expect(ChainEncoding.hash(entry) == entry.hash) }
        let verification = try f.store.verifyLedger()
        #expect(verification.isValid && verification.entriesChecked == 41)
        #expect(verification.head == LedgerHead(seq: 41, hash: entries.last!.hash))
        #expect(verification.deposits == Fixture.erinFunds && verification.balances == Fixture.erinFunds)
        #expect(try f.store.ledgerHead() == verification.head)

        // The canonical encoding, byte by byte, for entry 1: olga's deposit to erin.
        let deposit = entries[0]
        var expectedDeposit: [UInt8] = Array("TRBL".utf8) + [1]
        expectedDeposit += be(1) + be(deposit.createdAtMillis)
        expectedDeposit += be32(7) + Array("deposit".utf8)
        expectedDeposit += be32(11) + Array("contributor".utf8)
        expectedDeposit += [1] + be(f.erin.contributor.id.rawValue)
        expectedDeposit += be(Fixture.erinFunds)
        expectedDeposit += [0]                                  // no inference
        expectedDeposit += [1] + be(f.olga.contributor.id.rawValue)  // the operator
        expectedDeposit += be32(7) + Array("fixture".utf8)
        expectedDeposit += [UInt8](repeating: 0, count: 32)
        #expect(ChainEncoding.encode(deposit) == expectedDeposit)
        #expect(Data(SHA256.hash(data: expectedDeposit)) == deposit.hash)

        // Entry 2: erin's payment of inference 1's fee, 1000.
        let payment = entries[1]
        var expectedPayment: [UInt8] = Array("TRBL".utf8) + [1]
        expectedPayment += be(2) + be(payment.createdAtMillis)
        expectedPayment += be32(11) + Array("fee_payment".utf8)
        expectedPayment += be32(11) + Array("contributor".utf8)
        expectedPayment += [1] + be(f.erin.contributor.id.rawValue)
        expectedPayment += be(1000) + [1] + be(1) + [0] + be32(0) + Array(deposit.hash)
        #expect(ChainEncoding.encode(payment) == expectedPayment)

        // Entry 3: alice's 700 of fee 1000.
        let e = entries[2]
        var expected: [UInt8] = Array("TRBL".utf8) + [1]
        expected += be(e.seq) + be(e.createdAtMillis)
        expected += be32("contributor_share".utf8.count) + Array("contributor_share".utf8)
        expected += be32(11) + Array("contributor".utf8)
        expected += [1] + be(f.alice.contributor.id.rawValue)
        expected += be(700)
        expected += [1] + be(1)   // inference 1
        expected += [0]           // no subject
        expected += be32(0)       // empty memo
        expected += Array(payment.hash)
        #expect(ChainEncoding.encode(e) == expected)
        #expect(Data(SHA256.hash(data: expected)) == e.hash)
    }

    @Test func changingOneByteOfAnAmountInTheFileIsNamedByVerify() throws {
        let f = try Fixture()
        try Self.fill(f, count: 8)
        // One entry with a distinctive amount: the owner's 20% is 0x5A17C39E42D1, which needs SQLite's 6-byte
        // integer encoding and is stored nowhere else (the fee is 5x it; contributor amounts are 3.5x it).
        let amount: Int64 = 0x5A17_C39E_42D1
        let receipt = try f.store.recordInference(f.inference("target", fee: amount * 5, shares: [f.records[3].id: 1]))
        let target = try #require(receipt.entries.first { $0.kind == .ownerShare })
        #expect(target.amount == amount)
        try Self.fill(f, count: 4, feeBase: 50_000)
        let total = try f.store.verifyLedger().entriesChecked

        try f.store.checkpoint()
        try f.store.close()
        let path = f.store.databasePath
        let needle = Array(withUnsafeBytes(of: amount.bigEndian) { Array($0) }.suffix(6))
        try Self.flipByte(inFileOf: path, at: needle, offset: 5)

        let reopened = try Store(directory: f.directory.url)
        let verification = try reopened.verifyLedger()
        #expect(verification.firstBreak == .hashMismatch(seq: target.seq))
        #expect(verification.entriesChecked == target.seq - 1)
        #expect(verification.firstBreak?.seq == target.seq)
        #expect(total == 53)
        // The altered amount is what SQLite now reads; the audit names the entry and the unbalanced inference.
        #expect(try reopened.ledgerEntries(after: target.seq - 1, limit: 1).first?.amount == amount ^ 1)
        let audit = try reopened.audit()
        #expect(!audit.isConsistent)
        #expect(audit.problems.contains { $0.contains("entry \(target.seq)") })
        #expect(audit.problems.contains { $0.contains("inference \(receipt.inference.id.rawValue): ledger credits sum to") })
    }

    @Test func changingOneByteOfAMemoInTheFileIsNamedByVerify() throws {
        var config = StoreConfiguration()
        config.penaltyPolicy = PenaltyPolicy(thresholdPoints: 0, keepBasisPoints: 5000)
        let f = try Fixture(configuration: config)
        try Self.fill(f, count: 5)
        try f.penalize(f.records[4].id)
        let receipt = try f.store.recordInference(f.inference("penalised", fee: 987_654, shares: [f.records[4].id: 1]))
        let forfeit = try #require(receipt.entries.first { $0.kind == .penaltyForfeit })
        try Self.fill(f, count: 2, feeBase: 9_000)
        try f.store.checkpoint()
        try f.store.close()

        try Self.flipByte(inFileOf: f.store.databasePath, at: Array(forfeit.memo.utf8), offset: 9)
        let reopened = try Store(directory: f.directory.url)
        #expect(try reopened.verifyLedger().firstBreak == .hashMismatch(seq: forfeit.seq))
    }

    @Test func changingOneByteOfAStoredHashIsNamedByVerify() throws {
        let f = try Fixture()
        try Self.fill(f, count: 6)
        let victim = try f.store.ledgerEntries()[7]  // seq 8
        try f.store.checkpoint()
        try f.store.close()
        // prev_hash and hash are adjacent in the row: together they appear once in the file. Flip a bit of hash.
        try Self.flipByte(inFileOf: f.store.databasePath, at: Array(victim.prevHash) + Array(victim.hash), offset: 40)
        let reopened = try Store(directory: f.directory.url)
        #expect(try reopened.verifyLedger().firstBreak == .hashMismatch(seq: 8))
    }

    /// Recomputes every entry's `prev_hash` and `hash` from `seq` on, as someone rewriting the chain would.
    static func rehash(_ store: Store, from seq: Int64) throws {
        try store.dbPool.write { db in
            var previous = try Data.fetchOne(db, sql: "SELECT hash FROM ledger_entry WHERE seq = ?", arguments: [seq - 1])!
            for row in try Row.fetchAll(db, sql: "SELECT * FROM ledger_entry WHERE seq >= ? ORDER BY seq", arguments: [seq]) {
                var entry = try Store.entry(from: row)
                entry.prevHash = previous
                entry.hash = ChainEncoding.hash(entry)
                try db.execute(sql: "UPDATE ledger_entry SET prev_hash = ?, hash = ? WHERE seq = ?",
                               arguments: [entry.prevHash, entry.hash, entry.seq])
                previous = entry.hash
            }
        }
    }

    @Test func rewritesAreCaughtByTheChainConservationAndAnchors() throws {
        let f = try Fixture()
        try Self.fill(f, count: 5)
        let anchor = try #require(try f.store.ledgerHead())
        #expect(anchor.seq == 21)
        #expect(try f.store.verifyLedger(anchors: [anchor]).isValid)

        // Someone with write access drops the guards and edits entry 4 (inference 1's owner share): the chain
        // names entry 4.
        try f.store.executeRaw("DROP TRIGGER ledger_entry_no_update; DROP TRIGGER ledger_entry_no_delete")
        try f.store.executeRaw("UPDATE ledger_entry SET amount = amount + 1000 WHERE seq = 4")
        #expect(try f.store.verifyLedger().firstBreak == .hashMismatch(seq: 4))

        // They recompute every hash from entry 4 on: the chain is consistent again, but 1000 was minted: inference
        // 1's credits (entries 3 to 5) no longer add up to the fee erin paid (entry 2).
        try Self.rehash(f.store, from: 4)
        let minted = try f.store.verifyLedger()
        #expect(minted.firstBreak?.seq == 5 && minted.entriesChecked == 5)
        guard case .unbalanced(_, let reason)? = minted.firstBreak else {
            Issue.record("expected an unbalanced ledger, got \(minted)")
            return
        }
        #expect(reason == "inference 1: credits add up to 2000, the fee is 1000")

        // A rewrite that conserves money (10 moved from the protocol's share to the owner's, with the stored
        // balances to match) passes the walk: only the anchor shows it.
        try f.store.executeRaw("""
            UPDATE ledger_entry SET amount = amount - 990 WHERE seq = 4;
            UPDATE ledger_entry SET amount = amount - 10 WHERE seq = 5;
            UPDATE account_balance SET balance = balance + 10 WHERE account = 'contributor' AND contributor_id = 4;
            UPDATE account_balance SET balance = balance - 10 WHERE account = 'protocol';
            """)
        try Self.rehash(f.store, from: 4)
        #expect(try f.store.verifyLedger().isValid)
        #expect(try f.store.verifyLedger(anchors: [anchor]).firstBreak == .anchorMismatch(seq: anchor.seq))

        // Truncation: the anchor's entry is gone, and the stored balances no longer match the entries.
        try f.store.executeRaw("DELETE FROM ledger_entry WHERE seq >= 14")
        if case .unbalanced(13, _)? = try f.store.verifyLedger().firstBreak {} else {
            Issue.record("expected the truncated ledger to be unbalanced at its new head")
        }
        #expect(try f.store.verifyLedger(anchors: [anchor]).firstBreak == .anchorMissing(seq: 21))

        // A deleted entry in the middle is a missing sequence number.
        try f.store.executeRaw("DELETE FROM ledger_entry WHERE seq = 6")
        #expect(try f.store.verifyLedger().firstBreak == .missingEntry(expected: 6, found: 7))
        // A broken link: entry 2's prev_hash rewritten.
        try f.store.executeRaw("UPDATE ledger_entry SET prev_hash = zeroblob(32) WHERE seq = 2")
        #expect(try f.store.verifyLedger().firstBreak == .prevHashMismatch(seq: 2))
        // A value of the wrong type.
        try f.store.dbPool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA ignore_check_constraints = ON")
            try db.execute(sql: "UPDATE ledger_entry SET hash = x'00' WHERE seq = 1")
        }
        #expect(try f.store.verifyLedger().firstBreak == .malformed(seq: 1, reason: "hash is 1 bytes, not 32"))
    }
}

func be(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
func be32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(v).bigEndian) { Array($0) } }
