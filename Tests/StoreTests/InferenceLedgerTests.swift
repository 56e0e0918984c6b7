import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Inference records, fee splits and balances")
struct InferenceLedgerTests {
    @Test func recordsAttributionAndSplitsTheFeeByTheDefaultPolicy() throws {
        let f = try Fixture()
        let (alice, bob, carol, dave) = (f.alice.contributor.id, f.bob.contributor.id, f.carol.contributor.id, f.dave.contributor.id)
        // Shares are relative weights: 2 : 1 : 0.6 : 0.4 normalise to 0.5, 0.25, 0.15, 0.1.
        let receipt = try f.store.recordInference(
            f.inference("req-1", fee: 1_000_000, shares: [f.records[0].id: 2, f.records[1].id: 1, f.records[2].id: 0.6, f.records[4].id: 0.4]))
        let inference = receipt.inference
        #expect(inference.requestID == "req-1" && inference.adapter == f.adapter.id && inference.method == "datainf")
        #expect(inference.promptOutputHash == InferenceHash.of(prompt: "p req-1", output: "o req-1"))
        #expect(inference.fee == 1_000_000)
        #expect(inference.feePolicy == .default && inference.penaltyPolicy == .default)
        #expect(inference.recordShares == [
            RecordShare(record: f.records[0].id, share: 0.5), RecordShare(record: f.records[1].id, share: 0.25),
            RecordShare(record: f.records[2].id, share: 0.15), RecordShare(record: f.records[4].id, share: 0.1),
        ])
        #expect(inference.contributorShares == [
            ContributorShare(contributor: alice, share: 0.75, grossAmount: 525_000, paidAmount: 525_000, penaltyPoints: 0),
            ContributorShare(contributor: bob, share: 0.15, grossAmount: 105_000, paidAmount: 105_000, penaltyPoints: 0),
            ContributorShare(contributor: carol, share: 0.1, grossAmount: 70_000, paidAmount: 70_000, penaltyPoints: 0),
        ])
        #expect(inference.datanetShares == [DatanetShare(datanet: f.datanet.id, share: 1)])
        #expect(try f.store.inference(requestID: "req-1") == inference)
        #expect(try f.store.inference(inference.id) == inference)

        // The payer is debited the fee first (entry 1 is the fixture's deposit to her)...
        let erin = f.erin.contributor.id
        #expect(inference.payer == erin && inference.idempotencyKey == nil)
        let payment = try #require(receipt.entries.first)
        #expect(payment.kind == .feePayment && payment.account == .contributor(erin) && payment.amount == 1_000_000)
        #expect(payment.signedAmount == -1_000_000 && payment.seq == 2)
        // ... then 70% to contributors by share, 20% to the adapter owner, 10% to the protocol, in this order.
        #expect(receipt.credits.map(\.kind) == [.contributorShare, .contributorShare, .contributorShare, .ownerShare, .protocolShare])
        #expect(receipt.credits.map(\.account) == [.contributor(alice), .contributor(bob), .contributor(carol), .contributor(dave), .protocol])
        #expect(receipt.credits.map(\.amount) == [525_000, 105_000, 70_000, 200_000, 100_000])
        #expect(receipt.entries.map(\.seq) == [2, 3, 4, 5, 6, 7])
        #expect(receipt.entries.allSatisfy { $0.inference == inference.id })
        #expect(receipt.credits.reduce(0) { $0 + $1.amount } == 1_000_000)
        #expect(receipt.entries.reduce(0) { $0 + $1.signedAmount } == 0)
        #expect(try f.store.ledgerEntries(for: inference.id) == receipt.entries)
        #expect(try f.store.ledgerEntries().dropFirst() == receipt.entries[...])
        #expect(try f.store.balance(of: .contributor(erin)) == Fixture.erinFunds - 1_000_000)
        #expect(try f.store.balance(of: .contributor(alice)) == 525_000)
        #expect(try f.store.balance(of: .contributor(dave)) == 200_000)
        #expect(try f.store.balance(of: .protocol) == 100_000)
        #expect(try f.store.verifyLedger().isValid)
    }

    @Test func theRoundingRemainderGoesByLargestRemainderThenToTheProtocol() throws {
        let f = try Fixture()
        let (alice, bob) = (f.alice.contributor.id, f.bob.contributor.id)
        // Fee 10: pool floor(7) , owner floor(2), protocol 10 - 7 - 2 = 1. Three equal shares of 7: 2 each and one
        // left over, which goes to the lowest contributor id among the equal remainders.
        let r1 = try f.store.recordInference(
            f.inference("tiny", fee: 10, shares: [f.records[0].id: 1, f.records[2].id: 1, f.records[4].id: 1]))
        #expect(r1.inference.contributorShares.map(\.paidAmount) == [3, 2, 2])
        #expect(r1.credits.map(\.amount) == [3, 2, 2, 2, 1])
        // Fee 19: pool floor(13.3) = 13, owner floor(3.8) = 3, protocol 3 (1 base + the 0.3 + 0.8 remainders).
        // Shares 0.6 / 0.3 / 0.1 of 13: 7.8, 3.9, 1.3 -> floors 7, 3, 1 and 2 left over -> bob (0.9), alice (0.8).
        let r2 = try f.store.recordInference(
            f.inference("odd", fee: 19, shares: [f.records[0].id: 0.6, f.records[2].id: 0.3, f.records[4].id: 0.1]))
        #expect(r2.inference.contributorShares.map(\.paidAmount) == [8, 4, 1])
        #expect(r2.credits.map(\.amount) == [8, 4, 1, 3, 3])
        // Fee 1: everything rounds into the protocol's part.
        let r3 = try f.store.recordInference(f.inference("one", fee: 1, shares: [f.records[0].id: 1, f.records[2].id: 1]))
        #expect(r3.entries.map(\.kind) == [.feePayment, .protocolShare])
        #expect(r3.entries.map(\.amount) == [1, 1])
        #expect(r3.inference.contributorShares.map(\.contributor) == [alice, bob])
        let audit = try f.store.audit()
        #expect(audit.isConsistent, "\(audit)")
    }

    @Test func unpaidInferencesAreRecordedWithoutLedgerEntries() throws {
        let f = try Fixture()
        let receipt = try f.store.recordInference(f.inference("free", fee: 0, shares: [f.records[1].id: 0.3]))
        #expect(receipt.entries.isEmpty)
        #expect(receipt.inference.contributorShares.map(\.paidAmount) == [0])
        #expect(try f.store.ledgerHead()?.seq == 1, "only the fixture's deposit")
        #expect(try f.store.balance(of: .contributor(f.erin.contributor.id)) == Fixture.erinFunds)
        #expect(try f.store.inferenceCount() == 1)
    }

    @Test func theFeePolicyIsConfigurableAndRecordedWithEachInference() throws {
        var config = StoreConfiguration()
        config.feePolicy = FeePolicy(contributorsBasisPoints: 5000, ownerBasisPoints: 3000, protocolBasisPoints: 2000)
        let f = try Fixture(configuration: config)
        let r = try f.store.recordInference(f.inference("custom", fee: 1_000, shares: [f.records[0].id: 1]))
        #expect(r.credits.map(\.amount) == [500, 300, 200])
        #expect(r.inference.feePolicy == config.feePolicy)

        // Reopening with the default policy changes future splits only.
        try f.store.close()
        let store = try Store(directory: f.directory.url)
        let r2 = try store.recordInference(f.inference("default", fee: 1_000, shares: [f.records[0].id: 1]))
        #expect(r2.credits.map(\.amount) == [700, 200, 100])
        #expect(try store.inference(requestID: "custom").feePolicy == config.feePolicy)

        for bad in [FeePolicy(contributorsBasisPoints: 7000, ownerBasisPoints: 2000, protocolBasisPoints: 999),
                    FeePolicy(contributorsBasisPoints: 11000, ownerBasisPoints: -1000, protocolBasisPoints: 0)] {
            var c = StoreConfiguration()
            c.feePolicy = bad
            #expect(throws: StoreError.self) { _ = try Store(directory: f.directory.url, configuration: c) }
        }
        var c = StoreConfiguration()
        c.penaltyPolicy = PenaltyPolicy(thresholdPoints: 3, keepBasisPoints: 10_001)
        #expect(throws: StoreError.invalidPolicy("penalty keep basis points must be 0 to 10000")) {
            _ = try Store(directory: f.directory.url, configuration: c)
        }
    }

    @Test func attributionIsPerRecordContributorAndDatanet() throws {
        let f = try Fixture()
        // A second datanet, and an adapter trained on both.
        let net2 = try f.store.createDatanet(NewDatanet(name: "second", license: "MIT"), owner: f.carol.contributor.id)
        let x = try f.store.contribute(.text("second one"), to: net2.id, by: f.bob.contributor.id)
        try f.store.approve(x.id, by: f.carol.contributor.id)
        let v = try f.store.publishVersion(of: net2.id, by: f.carol.contributor.id)
        let adapter = try f.store.registerAdapter(
            NewAdapter(name: "both", baseModelHash: baseModelHash, trainedOn: [f.version.ref, v.ref]), owner: f.carol.contributor.id)
        var spec = f.inference("both-1", fee: 100_000, shares: [f.records[2].id: 0.25, x.id: 0.5, f.records[0].id: 0.25])
        spec.adapter = adapter.id
        let r = try f.store.recordInference(spec)
        #expect(r.inference.contributorShares.map(\.contributor) == [f.alice.contributor.id, f.bob.contributor.id])
        #expect(r.inference.contributorShares.map(\.share) == [0.25, 0.75])
        #expect(r.inference.datanetShares == [DatanetShare(datanet: f.datanet.id, share: 0.5), DatanetShare(datanet: net2.id, share: 0.5)])
        // The owner's share goes to this adapter's owner (carol), who also owns net2 but contributed nothing here.
        #expect(r.entries.first { $0.kind == .ownerShare }?.account == .contributor(f.carol.contributor.id))

        // Tracing back: inference -> adapter -> versions -> records -> contributors.
        let traced = try f.store.adapter(r.inference.adapter).trainedOn.flatMap { try f.store.recordIDs(in: $0) }
        #expect(Set(r.inference.recordShares.map(\.record)).isSubset(of: Set(traced)))
    }

    @Test func badInferencesAreRefusedAndChangeNothing() throws {
        let f = try Fixture()
        _ = try f.store.recordInference(f.inference("first", fee: 500, shares: [f.records[0].id: 1]))
        let ok: [RecordID: Double] = [f.records[0].id: 1]
        try expectRefusal(f.store, .duplicateRequest("first")) {
            _ = try f.store.recordInference(f.inference("first", fee: 999, shares: ok))
        }
        try expectRefusal(f.store, .invalidFee(-1)) { _ = try f.store.recordInference(f.inference("neg", fee: -1, shares: ok)) }
        for (shares, _) in [([RecordID: Double](), "empty"), ([f.records[0].id: .nan], "nan"), ([f.records[0].id: -0.1, f.records[1].id: 1], "negative"),
                            ([f.records[0].id: .infinity], "inf"), ([f.records[0].id: 0, f.records[1].id: 0], "zero"),
                            ([f.records[0].id: .greatestFiniteMagnitude, f.records[1].id: .greatestFiniteMagnitude], "overflow")] {
            let before = try f.store.dump()
            let error = #expect(throws: StoreError.self) { _ = try f.store.recordInference(f.inference("bad-shares", fee: 10, shares: shares)) }
            if case .invalidShares = error {} else { Issue.record("expected invalidShares, got \(String(describing: error))") }
            #expect(try f.store.dump() == before)
        }
        try expectRefusal(f.store, .recordNotFound(RecordID(4242))) {
            _ = try f.store.recordInference(f.inference("ghost", fee: 10, shares: [RecordID(4242): 1]))
        }
        // A record approved after the adapter's version, and a pending one, are not training data.
        let late = try f.store.contribute(.text("late"), to: f.datanet.id, by: f.bob.contributor.id)
        try expectRefusal(f.store, .recordNotInTrainingData(record: late.id, adapter: f.adapter.id)) {
            _ = try f.store.recordInference(f.inference("late", fee: 10, shares: [f.records[0].id: 1, late.id: 1]))
        }
        try expectRefusal(f.store, .adapterNotFound(AdapterID(77))) {
            var spec = f.inference("no-adapter", fee: 10, shares: ok)
            spec.adapter = AdapterID(77)
            _ = try f.store.recordInference(spec)
        }
        try expectRefusal(f.store, .invalidInference("prompt/output hash must be 32 bytes (SHA-256)")) {
            var spec = f.inference("short-hash", fee: 10, shares: ok)
            spec.promptOutputHash = Data([1, 2, 3])
            _ = try f.store.recordInference(spec)
        }
        try expectRefusal(f.store, .invalidInference("method must be 1 to 64 characters from a-z, 0-9, '.', '_', '-'")) {
            var spec = f.inference("bad-method", fee: 10, shares: ok)
            spec.method = "Data Inf"
            _ = try f.store.recordInference(spec)
        }
        try expectRefusal(f.store, .invalidInference("request id must be 1 to 200 bytes, without control characters")) {
            _ = try f.store.recordInference(f.inference("", fee: 10, shares: ok))
        }
        #expect(throws: StoreError.inferenceNotFound("\"nope\"")) { try f.store.inference(requestID: "nope") }
    }

    @Test func balancesAreDerivedFromEntriesOverManyRandomInferences() throws {
        let f = try Fixture()
        var rng = SeededGenerator(seed: 0xBA1A_4CE5)
        var deposited = Fixture.erinFunds
        for i in 0..<60 {
            let fee = [Int64.random(in: 0...20, using: &rng), Int64.random(in: 0...10_000_000, using: &rng),
                       Int64.random(in: 0...MoneyBounds.maximumFee, using: &rng)][i % 3]
            if try f.store.balance(of: .contributor(f.erin.contributor.id)) < fee {
                _ = try f.store.deposit(
                    MoneyBounds.maximumDeposit, to: f.erin.contributor.id, by: f.olga.contributor.id, idempotencyKey: "top-up-\(i)")
                deposited += MoneyBounds.maximumDeposit
            }
            var shares: [RecordID: Double] = [:]
            for record in f.records.shuffled(using: &rng).prefix(Int.random(in: 1...6, using: &rng)) {
                shares[record.id] = Double.random(in: 0.001...10, using: &rng)
            }
            let r = try f.store.recordInference(f.inference("rand-\(i)", fee: fee, shares: shares))
            #expect(r.credits.reduce(0) { $0 + $1.amount } == fee)
            #expect(r.entries.reduce(0) { $0 + $1.signedAmount } == 0)
            #expect(r.entries.allSatisfy { $0.amount > 0 })
        }
        let entries = try f.store.ledgerEntries(limit: 100_000)
        var derived: [LedgerAccount: Int64] = [:]
        for e in entries { derived[e.account, default: 0] += e.signedAmount }
        #expect(try f.store.balances() == derived)
        for (account, amount) in derived { #expect(try f.store.balance(of: account) == amount) }
        // Conservation: what the accounts hold is what was deposited.
        #expect(derived.values.reduce(0, +) == deposited)
        #expect(try f.store.totalDeposits() == deposited)
        #expect(try f.store.verifyLedger().balances == deposited)
        #expect(try f.store.balance(of: .contributor(f.alice.contributor.id)) > 0)
        #expect(throws: StoreError.contributorNotFound(ContributorID(999))) { try f.store.balance(of: .contributor(ContributorID(999))) }
        // Paging.
        #expect(try f.store.ledgerEntries(after: 3, limit: 2).map(\.seq) == [4, 5])
        let audit = try f.store.audit()
        #expect(audit.isConsistent, "\(audit)")
    }
}

@Suite("Penalties")
struct PenaltyTests {
    @Test func sharesAreHalvedAboveTheThresholdAndEachReductionIsOnTheLedger() throws {
        let f = try Fixture()
        let bob = f.bob.contributor.id
        let shares: [RecordID: Double] = [f.records[0].id: 0.5, f.records[2].id: 0.5]  // alice, bob

        // 3 points: at the threshold, not above it: no reduction.
        try f.penalize(f.records[2].id, points: 3)
        let atThreshold = try f.store.recordInference(f.inference("at", fee: 1_000_001, shares: shares))
        #expect(atThreshold.credits.map(\.kind) == [.contributorShare, .contributorShare, .ownerShare, .protocolShare])
        #expect(atThreshold.credits.map(\.amount) == [350_000, 350_000, 200_000, 100_001])

        // 4 points: above. Bob keeps floor(350000 * 0.5); the rest is forfeited to the protocol, in an entry naming him.
        try f.penalize(f.records[3].id)
        let above = try f.store.recordInference(f.inference("above", fee: 1_000_001, shares: shares))
        #expect(above.credits.map(\.kind) == [.contributorShare, .contributorShare, .penaltyForfeit, .ownerShare, .protocolShare])
        #expect(above.credits.map(\.amount) == [350_000, 175_000, 175_000, 200_000, 100_001])
        let forfeit = above.credits[2]
        #expect(forfeit.account == .protocol && forfeit.subject == bob)
        #expect(forfeit.memo.contains("4 points") && forfeit.memo.contains("threshold 3"))
        #expect(above.credits.reduce(0) { $0 + $1.amount } == 1_000_001)
        let bobShare = above.inference.contributorShares.first { $0.contributor == bob }!
        #expect(bobShare.grossAmount == 350_000 && bobShare.paidAmount == 175_000 && bobShare.penaltyPoints == 4)

        // Odd amounts round the kept part down.
        let odd = try f.store.recordInference(f.inference("odd", fee: 15, shares: [f.records[2].id: 1]))
        // pool 10 -> bob keeps 5, forfeits 5; owner 3; protocol 2.
        #expect(odd.credits.map(\.amount) == [5, 5, 3, 2])
        let odd2 = try f.store.recordInference(f.inference("odd2", fee: 5, shares: [f.records[2].id: 1]))
        // pool 3 -> keeps 1, forfeits 2; owner 1; protocol 1.
        #expect(odd2.credits.map(\.amount) == [1, 2, 1, 1])

        // Reductions apply to future shares only: the earlier entries are untouched.
        #expect(try f.store.ledgerEntries(for: atThreshold.inference.id) == atThreshold.entries)
        #expect(try f.store.verifyLedger().isValid)
        let audit = try f.store.audit()
        #expect(audit.isConsistent, "\(audit)")
    }

    @Test func thePenaltyPolicyIsConfigurable() throws {
        var config = StoreConfiguration()
        config.penaltyPolicy = PenaltyPolicy(thresholdPoints: 0, keepBasisPoints: 0)
        let f = try Fixture(configuration: config)
        try f.penalize(f.records[0].id)
        let r = try f.store.recordInference(f.inference("all-forfeit", fee: 100, shares: [f.records[0].id: 1, f.records[2].id: 1]))
        // Alice forfeits all of her 35; she gets no contributor entry.
        #expect(r.credits.map(\.kind) == [.penaltyForfeit, .contributorShare, .ownerShare, .protocolShare])
        #expect(r.credits.map(\.amount) == [35, 35, 20, 10])
        #expect(r.credits[0].subject == f.alice.contributor.id)
        #expect(r.inference.penaltyPolicy == config.penaltyPolicy)
        #expect(try f.store.balance(of: .contributor(f.alice.contributor.id)) == 0)
    }
}
