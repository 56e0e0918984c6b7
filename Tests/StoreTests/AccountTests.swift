import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Accounts: deposits, debits, bounds, idempotency and conservation")
struct AccountTests {
    @Test func onlyOperatorsDepositAndARetriedKeyCreditsOnce() throws {
        let f = try Fixture()
        let (alice, bob, olga) = (f.alice.contributor.id, f.bob.contributor.id, f.olga.contributor.id)
        let receipt = try f.store.deposit(500, to: alice, by: olga, memo: "welcome", idempotencyKey: "d-1")
        #expect(!receipt.isReplay && receipt.balance == 500)
        #expect(receipt.entry.kind == .deposit && receipt.entry.account == .contributor(alice))
        #expect(receipt.entry.subject == olga && receipt.entry.inference == nil && receipt.entry.memo == "welcome")
        #expect(try f.store.ledgerHead() == LedgerHead(seq: receipt.entry.seq, hash: receipt.entry.hash))

        // The same key again: the original entry, nothing written.
        let before = try f.store.dump()
        let again = try f.store.deposit(500, to: alice, by: olga, memo: "welcome", idempotencyKey: "d-1")
        #expect(again.isReplay && again.entry == receipt.entry && again.balance == 500)
        #expect(try f.store.dump() == before)
        try expectRefusal(f.store, .idempotencyKeyReused(key: "d-1", reason: "it credited contributor 1 500 (entry 2)")) {
            _ = try f.store.deposit(600, to: alice, by: olga, memo: "welcome", idempotencyKey: "d-1")
        }

        // Not operators: a contributor, an engine credential, an unknown id. The role is checked first.
        let engine = try f.store.createContributor(displayName: "engine-a", role: .engine).contributor.id
        for depositor in [bob, engine, ContributorID(999)] {
            try expectRefusal(f.store, .notOperator(depositor)) {
                _ = try f.store.deposit(500, to: depositor, by: depositor, idempotencyKey: "self-\(depositor.rawValue)")
            }
        }
        try expectRefusal(f.store, .notOperator(bob)) {
            _ = try f.store.deposit(-5, to: ContributorID(999), by: bob, idempotencyKey: "")
        }
        try expectRefusal(f.store, .contributorNotFound(ContributorID(999))) {
            _ = try f.store.deposit(5, to: ContributorID(999), by: olga, idempotencyKey: "ghost")
        }
        for amount in [0, -1, MoneyBounds.maximumDeposit + 1, Int64.max, Int64.min] {
            try expectRefusal(
                f.store, .invalidDeposit("amount \(amount) is outside 1 to \(MoneyBounds.maximumDeposit) micro-units")
            ) { _ = try f.store.deposit(amount, to: alice, by: olga, idempotencyKey: "bad-\(amount)") }
        }
        for key in ["", String(repeating: "k", count: 201), "tab\there"] {
            try expectRefusal(f.store, .invalidDeposit(Store.keyRule)) {
                _ = try f.store.deposit(5, to: alice, by: olga, idempotencyKey: key)
            }
        }
        try expectRefusal(f.store, .invalidDeposit("memo must be at most 1000 bytes, without control characters")) {
            _ = try f.store.deposit(5, to: alice, by: olga, memo: "a\nb", idempotencyKey: "memo")
        }
        // The largest deposit is accepted; keys are per operator.
        let otto = try f.store.createContributor(displayName: "Otto", role: .operator).contributor.id
        let big = try f.store.deposit(MoneyBounds.maximumDeposit, to: bob, by: otto, idempotencyKey: "d-1")
        #expect(!big.isReplay && big.balance == MoneyBounds.maximumDeposit)
        #expect(try f.store.totalDeposits() == Fixture.erinFunds + 500 + MoneyBounds.maximumDeposit)
        let verification = try f.store.verifyLedger()
        #expect(verification.isValid && verification.deposits == verification.balances)
    }

    @Test func aPayerWhoCannotCoverTheFeeIsRefusedAndNothingIsWritten() throws {
        let f = try Fixture()
        let (alice, olga) = (f.alice.contributor.id, f.olga.contributor.id)
        _ = try f.store.deposit(999, to: alice, by: olga, idempotencyKey: "a")
        var spec = f.inference("short", fee: 1_000, shares: [f.records[0].id: 1])
        spec.payer = alice
        try expectRefusal(f.store, .insufficientFunds(payer: alice, balance: 999, fee: 1_000)) {
            _ = try f.store.recordInference(spec)
        }
        #expect(StoreError.insufficientFunds(payer: alice, balance: 999, fee: 1_000).description
            == "insufficient funds: balance 999, fee 1000 (contributor 1)")
        #expect(throws: StoreError.insufficientFunds(payer: alice, balance: 999, fee: 1_000)) {
            _ = try f.store.authorizePayment(of: 1_000, by: alice, idempotencyKey: nil)
        }
        #expect(try f.store.authorizePayment(of: 999, by: alice, idempotencyKey: nil) == nil)
        // Exactly the balance is enough, and leaves zero.
        spec.fee = 999
        let paid = try f.store.recordInference(spec)
        #expect(paid.entries.first?.kind == .feePayment && paid.entries.first?.amount == 999)
        // Alice is also a contributor of the record: she is paid her share back.
        #expect(try f.store.balance(of: .contributor(alice)) == paid.credits.first { $0.kind == .contributorShare }!.amount)
        #expect(try f.store.verifyLedger().isValid)
        let audit = try f.store.audit()
        #expect(audit.isConsistent, "\(audit)")
    }

    @Test func feesAreBoundedAndPaidBySomeone() throws {
        let f = try Fixture()
        let ok: [RecordID: Double] = [f.records[0].id: 1]
        for fee in [Int64.max, MoneyBounds.maximumFee + 1, -1, Int64.min] {
            try expectRefusal(f.store, .invalidFee(fee)) { _ = try f.store.recordInference(f.inference("f\(fee)", fee: fee, shares: ok)) }
            #expect(throws: StoreError.invalidFee(fee)) {
                _ = try f.store.authorizePayment(of: fee, by: f.erin.contributor.id, idempotencyKey: nil)
            }
        }
        var unpaid = f.inference("nobody", fee: 10, shares: ok)
        unpaid.payer = nil
        try expectRefusal(f.store, .invalidInference("a fee of 10 needs a payer: fees are debited from an account")) {
            _ = try f.store.recordInference(unpaid)
        }
        var ghost = f.inference("ghost-payer", fee: 10, shares: ok)
        ghost.payer = ContributorID(999)
        try expectRefusal(f.store, .contributorNotFound(ContributorID(999))) { _ = try f.store.recordInference(ghost) }
        // The largest fee: erin's deposit is exactly that much.
        let largest = try f.store.recordInference(f.inference("max", fee: MoneyBounds.maximumFee, shares: ok))
        #expect(largest.credits.reduce(0) { $0 + $1.amount } == MoneyBounds.maximumFee)
        #expect(try f.store.balance(of: .contributor(f.erin.contributor.id)) == 0)
        // Balances still sum without overflow.
        #expect(try f.store.balances().values.reduce(0, +) == Fixture.erinFunds)
        #expect(try f.store.verifyLedger().isValid)
    }

    @Test func theSameKeyIsChargedOnceAndReturnsTheOriginal() throws {
        let f = try Fixture()
        let (erin, bob) = (f.erin.contributor.id, f.bob.contributor.id)
        var spec = f.inference("conn-a/1", fee: 5_000, shares: [f.records[0].id: 1, f.records[2].id: 1])
        spec.idempotencyKey = "retry-me"
        let first = try f.store.recordInference(spec)
        #expect(!first.isReplay && first.inference.idempotencyKey == "retry-me")
        let balance = try f.store.balance(of: .contributor(erin))

        // A retry from another connection: another request id and output, the same key.
        var retry = f.inference("conn-b/7", fee: 5_000, shares: [f.records[4].id: 1])
        retry.idempotencyKey = "retry-me"
        let before = try f.store.dump()
        #expect(try f.store.authorizePayment(of: 5_000, by: erin, idempotencyKey: "retry-me") == first.inference.id)
        let second = try f.store.recordInference(retry)
        #expect(second.isReplay && second.inference == first.inference && second.entries == first.entries)
        #expect(try f.store.dump() == before)
        #expect(try f.store.balance(of: .contributor(erin)) == balance)
        #expect(throws: StoreError.inferenceNotFound("\"conn-b/7\"")) { try f.store.inference(requestID: "conn-b/7") }

        // The same key for a different fee or adapter is a different request, refused before any work too.
        #expect(throws: StoreError.idempotencyKeyReused(key: "retry-me", reason: "it paid 5000 for inference 1 on adapter 1")) {
            _ = try f.store.authorizePayment(of: 6_000, by: erin, idempotencyKey: "retry-me")
        }
        #expect(throws: StoreError.idempotencyKeyReused(key: "retry-me", reason: "it paid 5000 for inference 1 on adapter 1")) {
            _ = try f.store.authorizePayment(of: 5_000, by: erin, on: AdapterID(2), idempotencyKey: "retry-me")
        }
        retry.fee = 6_000
        try expectRefusal(
            f.store, .idempotencyKeyReused(key: "retry-me", reason: "it paid 5000 for inference 1 on adapter 1")
        ) { _ = try f.store.recordInference(retry) }

        // Keys are per payer: bob's "retry-me" is his own.
        _ = try f.store.deposit(10_000, to: bob, by: f.olga.contributor.id, idempotencyKey: "bob")
        retry.fee = 5_000
        retry.payer = bob
        let bobs = try f.store.recordInference(retry)
        #expect(!bobs.isReplay && bobs.inference.id != first.inference.id && bobs.inference.payer == bob)
        // A key needs a payer.
        var keyed = f.inference("keyed", fee: 0, shares: [f.records[0].id: 1])
        keyed.payer = nil
        keyed.idempotencyKey = "k"
        try expectRefusal(f.store, .invalidInference("an idempotency key is scoped to a payer")) {
            _ = try f.store.recordInference(keyed)
        }
        #expect(try f.store.verifyLedger().isValid)
    }

    /// Seeded random sequences of deposits (some by non-operators, some retried), paid inferences (some beyond the
    /// payer's balance, some retried under the same key, some unpaid): after every step the balances sum to the
    /// deposits, none is negative, each matches a model kept here, and the ledger verifies.
    @Test(arguments: [UInt64(1), 2, 3, 0xC0FFEE])
    func moneyIsConservedAfterEveryStep(seed: UInt64) throws {
        let f = try Fixture()
        var rng = SeededGenerator(seed: seed)
        let people = [f.alice, f.bob, f.carol, f.dave, f.erin].map(\.contributor.id)
        let olga = f.olga.contributor.id
        var model: [LedgerAccount: Int64] = [.contributor(f.erin.contributor.id): Fixture.erinFunds]
        var deposited = Fixture.erinFunds
        var depositKeys: [String: (ContributorID, Int64)] = [:]
        var inferenceKeys: [String: InferenceReceipt] = [:]  // "payer/key"
        for step in 0..<120 {
            let before = try f.store.dump()
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<3:
                // A deposit, sometimes a retry of an earlier key, sometimes by someone who is not an operator.
                let retry = !depositKeys.isEmpty && Bool.random(using: &rng)
                let key = retry ? depositKeys.keys.sorted().randomElement(using: &rng)! : "dep-\(step)"
                let (to, amount) = retry ? depositKeys[key]! : (people.randomElement(using: &rng)!, Int64.random(in: 1...5_000_000, using: &rng))
                if Int.random(in: 0..<6, using: &rng) == 0 {
                    let intruder = people.randomElement(using: &rng)!
                    try expectRefusal(f.store, .notOperator(intruder)) {
                        _ = try f.store.deposit(amount, to: to, by: intruder, idempotencyKey: key)
                    }
                } else {
                    let receipt = try f.store.deposit(amount, to: to, by: olga, idempotencyKey: key)
                    #expect(receipt.isReplay == retry)
                    if !retry {
                        depositKeys[key] = (to, amount)
                        model[.contributor(to), default: 0] += amount
                        deposited += amount
                    }
                }
            case 3..<9:
                // A paid inference: a random payer (often short of money), a random key (sometimes reused).
                let payer = people.randomElement(using: &rng)!
                let balance = model[.contributor(payer)] ?? 0
                let fee = Bool.random(using: &rng) ? Int64.random(in: 0...max(1, balance), using: &rng)
                    : Int64.random(in: balance...(balance + 1_000), using: &rng)
                let reuse = inferenceKeys.keys.filter { $0.hasPrefix("\(payer.rawValue)/") }.sorted().randomElement(using: &rng)
                let key = Bool.random(using: &rng) ? reuse.map { String($0.split(separator: "/")[1]) } ?? "inf-\(step)" : "inf-\(step)"
                var shares: [RecordID: Double] = [:]
                for record in f.records.shuffled(using: &rng).prefix(Int.random(in: 1...4, using: &rng)) {
                    shares[record.id] = Double.random(in: 0.01...1, using: &rng)
                }
                var spec = f.inference("step-\(step)", fee: fee, shares: shares)
                spec.payer = payer
                spec.idempotencyKey = key
                if let original = inferenceKeys["\(payer.rawValue)/\(key)"] {
                    spec.fee = original.inference.fee
                    let replay = try f.store.recordInference(spec)
                    #expect(replay.isReplay && replay.inference.id == original.inference.id)
                    #expect(try f.store.dump() == before)
                } else if fee > MoneyBounds.maximumFee {
                    try expectRefusal(f.store, .invalidFee(fee)) { _ = try f.store.recordInference(spec) }
                } else if fee > balance {
                    try expectRefusal(f.store, .insufficientFunds(payer: payer, balance: balance, fee: fee)) {
                        _ = try f.store.recordInference(spec)
                    }
                } else {
                    let receipt = try f.store.recordInference(spec)
                    #expect(receipt.entries.reduce(0) { $0 + $1.signedAmount } == 0)
                    for entry in receipt.entries { model[entry.account, default: 0] += entry.signedAmount }
                    inferenceKeys["\(payer.rawValue)/\(key)"] = receipt
                }
            default:
                // An unpaid inference moves no money.
                _ = try f.store.recordInference(f.inference("free-\(step)", fee: 0, shares: [f.records[step % 6].id: 1]))
            }
            let balances = try f.store.balances()
            #expect(balances.values.allSatisfy { $0 >= 0 })
            #expect(balances.values.reduce(0, +) == deposited, "step \(step)")
            #expect(balances.filter { $0.value != 0 } == model.filter { $0.value != 0 }, "step \(step)")
            let verification = try f.store.verifyLedger()
            #expect(verification.isValid && verification.deposits == deposited && verification.balances == deposited, "step \(step): \(verification)")
        }
        let audit = try f.store.audit()
        #expect(audit.isConsistent, "\(audit)")
    }
}

@Suite("Accounts: a ledger from before accounts")
struct AccountsMigrationTests {
    /// A database at `v4-roles` whose one paid inference was credited with no payer (as every fee was then).
    @Test func feesCreditedBeforeAccountsCountAsMintedAndTheLedgerStillBalances() throws {
        let directory = try TemporaryDirectory()
        do {
            let queue = try DatabaseQueue(path: directory.url.appendingPathComponent("tributary.sqlite").path)
            try Schema.migrator.migrate(queue, upTo: "v4-roles")
            try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO contributor (display_name, token_hash, created_at) VALUES ('Old', randomblob(32), 0);
                    INSERT INTO adapter (name, owner_id, base_model_hash, training_version_count, created_at)
                        VALUES ('old', 1, '\(baseModelHash)', 1, 0);
                    INSERT INTO inference (request_id, adapter_id, prompt_output_hash, method, fee, contributors_bp, owner_bp,
                                           protocol_bp, penalty_threshold, penalty_keep_bp, created_at)
                        VALUES ('old-1', 1, zeroblob(32), 'datainf', 100, 7000, 2000, 1000, 3, 5000, 0);
                    """)
                var previous = ChainEncoding.genesisHash
                for (seq, kind, account, amount) in [
                    (Int64(1), LedgerEntryKind.contributorShare, LedgerAccount.contributor(ContributorID(1)), Int64(70)),
                    (2, .ownerShare, .contributor(ContributorID(1)), 20), (3, .protocolShare, .protocol, 10),
                ] {
                    var entry = LedgerEntry(
                        seq: seq, createdAtMillis: 0, kind: kind, account: account, amount: amount, inference: InferenceID(1),
                        subject: nil, memo: "", prevHash: previous, hash: Data())
                    entry.hash = ChainEncoding.hash(entry)
                    try db.execute(
                        sql: """
                            INSERT INTO ledger_entry (seq, created_at, kind, account, contributor_id, amount, inference_id,
                                                      subject_contributor_id, memo, prev_hash, hash)
                            VALUES (?, 0, ?, ?, ?, ?, 1, NULL, '', ?, ?)
                            """,
                        arguments: [seq, kind.rawValue, account.columnValue, account == .protocol ? nil : Int64(1), amount,
                                    entry.prevHash, entry.hash])
                    previous = entry.hash
                }
            }
        }
        let store = try Store(directory: directory.url)
        #expect(try store.appliedMigrations().contains("v5-accounts"))
        #expect(try store.balances() == [.contributor(ContributorID(1)): 90, .protocol: 10])
        var verification = try store.verifyLedger()
        #expect(verification.isValid, "\(verification)")
        #expect(verification.mintedBeforeAccounts == 100 && verification.deposits == 0 && verification.balances == 100)
        #expect(try store.inference(requestID: "old-1").payer == nil)

        // Accounts from here on: a deposit, and the sums still hold.
        let treasurer = try store.createContributor(displayName: "Treasurer", role: .operator).contributor.id
        _ = try store.deposit(1_000, to: ContributorID(1), by: treasurer, idempotencyKey: "first")
        verification = try store.verifyLedger()
        #expect(verification.isValid && verification.deposits == 1_000 && verification.balances == 1_100)
        #expect(verification.description.hasSuffix("balances 1100 = deposits 1000 + 100 credited before accounts"))
        let audit = try store.audit()
        #expect(audit.isConsistent, "\(audit)")
    }
}

@Suite("Accounts: tampering with money")
struct MoneyTamperTests {
    @Test func aStoredBalanceEditedToMintMoneyIsCaught() throws {
        let f = try Fixture()
        try TamperTests.fill(f, count: 3)
        let head = try #require(try f.store.ledgerHead())
        try f.store.executeRaw("UPDATE account_balance SET balance = balance + 1000000 WHERE contributor_id = 2")
        let verification = try f.store.verifyLedger()
        #expect(verification.firstBreak == .unbalanced(
            seq: head.seq, reason: "contributor 2's stored balance is \(try f.store.balance(of: .contributor(f.bob.contributor.id))), "
                + "its entries add up to \(try f.store.balance(of: .contributor(f.bob.contributor.id)) - 1_000_000)"))
        #expect(verification.entriesChecked == head.seq)
        let audit = try f.store.audit()
        #expect(!audit.isConsistent)
    }

    @Test func aForgedDepositWithAFreshHashIsCaught() throws {
        let f = try Fixture()
        try TamperTests.fill(f, count: 2)
        // Someone appends a well-chained deposit to bob and raises his stored balance, without a deposit request.
        try f.store.dbPool.write { db in
            _ = try Store.append(
                db, after: try Store.head(db), kind: .deposit, account: .contributor(f.bob.contributor.id), amount: 77,
                inference: nil, subject: f.olga.contributor.id, memo: "forged", at: 0)
        }
        let head = try #require(try f.store.ledgerHead())
        #expect(try f.store.verifyLedger().firstBreak == .unbalanced(
            seq: head.seq, reason: "deposit of 77 has no deposit request from contributor \(f.olga.contributor.id.rawValue)"))
    }

    @Test func aFeePaymentEditedAwayIsCaught() throws {
        let f = try Fixture()
        try TamperTests.fill(f, count: 3)
        // Erin's payment for inference 2 (entry 6) rewritten as a payment of 1, with every later hash recomputed
        // and her stored balance raised to match: the inference is then paid less than its fee.
        try f.store.executeRaw("DROP TRIGGER ledger_entry_no_update")
        let payment = try #require(try f.store.ledgerEntries(after: 5, limit: 1).first)
        #expect(payment.kind == .feePayment && payment.inference == InferenceID(2))
        try f.store.executeRaw("""
            UPDATE ledger_entry SET amount = 1 WHERE seq = 6;
            UPDATE account_balance SET balance = balance + \(payment.amount - 1) WHERE contributor_id = \(f.erin.contributor.id.rawValue);
            """)
        try TamperTests.rehash(f.store, from: 6)
        #expect(try f.store.verifyLedger().firstBreak == .unbalanced(
            seq: 9, reason: "inference 2: the payer is debited 1, the fee is \(payment.amount)"))
    }
}
