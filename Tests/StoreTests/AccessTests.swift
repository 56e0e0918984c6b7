import Foundation
import Testing

@testable import Store

@Suite("Read grants and scoped penalties")
struct AccessTests {
    @Test func aPrivateDatanetIsReadByItsOwnerGranteesAndOperatorsAndTrainedOnOnlyByThem() throws {
        let f = try Fixture()
        let alice = f.alice.contributor.id, bob = f.bob.contributor.id, dave = f.dave.contributor.id
        let closed = try f.store.createDatanet(NewDatanet(name: "closed", license: "proprietary", visibility: .private), owner: alice)
        _ = try f.store.approve(try f.store.contribute(.text("private note"), to: closed.id, by: alice).id, by: alice)
        let version = try f.store.publishVersion(of: closed.id, by: alice).ref
        let spec = NewAdapter(name: "closed-lora", baseModelHash: baseModelHash, trainedOn: [version], hyperparameters: [:])
        let operatorID = try f.store.createContributor(displayName: "Op", role: .operator).contributor.id

        #expect(try f.store.canRead(closed.id, by: alice) && f.store.canRead(closed.id, by: operatorID))
        #expect(try !f.store.canRead(closed.id, by: dave) && !f.store.canRead(closed.id, by: nil))
        let before = try f.store.dump()
        try expectRefusal(f.store, .datanetNotReadable(datanet: closed.id, contributor: dave)) {
            _ = try f.store.registerAdapter(spec, owner: dave)
        }
        try expectRefusal(f.store, .notDatanetOwner(datanet: closed.id, contributor: bob)) {
            try f.store.grantRead(on: closed.id, to: bob, by: bob)
        }
        #expect(try f.store.dump() == before, "a refusal writes nothing")

        let grants = try f.store.grantRead(on: closed.id, to: dave, by: alice)
        #expect(grants.map(\.grantee) == [dave] && grants[0].grantedBy == alice)
        #expect(try f.store.grantRead(on: closed.id, to: dave, by: operatorID).map(\.grantedBy) == [alice], "the first grant stays")
        #expect(try f.store.canRead(closed.id, by: dave) && !f.store.canRead(closed.id, by: bob))
        #expect(try f.store.registerAdapter(spec, owner: dave).trainedOn == [version])

        #expect(try f.store.revokeRead(on: closed.id, from: dave, by: alice).isEmpty)
        #expect(try !f.store.canRead(closed.id, by: dave))
        try expectRefusal(f.store, .datanetNotReadable(datanet: closed.id, contributor: dave)) {
            try f.store.requireReadable([version], by: dave)
        }
    }

    @Test func aPenaltyCutsPayoutsOnlyOnTheAdapterWhoseCurationEarnedIt() throws {
        var config = StoreConfiguration()
        config.penaltyPolicy = PenaltyPolicy(thresholdPoints: 0, keepBasisPoints: 0)
        let f = try Fixture(configuration: config)
        let bob = f.bob.contributor.id
        // Mallory trains her own adapter on alice's public datanet and curates it: her penalty stays on her adapter.
        let mallory = try f.store.createContributor(displayName: "Mallory").contributor.id
        let hers = try f.store.registerAdapter(
            NewAdapter(name: "mallory-lora", baseModelHash: baseModelHash, trainedOn: [f.version.ref], hyperparameters: [:]),
            owner: mallory)
        let evidence = PenaltyEvidence(method: "datainf", evaluation: f.version.ref, score: -1)
        try f.store.penalize(f.records[2].id, adapter: hers.id, by: mallory, evidence: evidence, points: 5)
        // ... and she cannot penalise on dave's adapter, where she has no stake.
        try expectRefusal(f.store, .notAdapterOwner(adapter: f.adapter.id, contributor: mallory)) {
            try f.store.penalize(f.records[3].id, adapter: f.adapter.id, by: mallory, evidence: evidence, points: 5)
        }
        #expect(try f.store.penaltyPoints(of: bob, on: hers.id) == 5 && f.store.penaltyPoints(of: bob, on: f.adapter.id) == 0)

        let onDaves = try f.store.recordInference(f.inference("daves", fee: 1000, shares: [f.records[2].id: 1]))
        #expect(onDaves.entries.map(\.kind) == [.feePayment, .contributorShare, .ownerShare, .protocolShare] && onDaves.entries[1].amount == 700)
        var onHers = f.inference("hers", fee: 1000, shares: [f.records[2].id: 1])
        onHers.adapter = hers.id
        let receipt = try f.store.recordInference(onHers)
        #expect(receipt.entries.map(\.kind) == [.feePayment, .penaltyForfeit, .ownerShare, .protocolShare])
        #expect(try f.store.penalties(of: bob).map(\.adapter) == [hers.id])

        // The datanet's owner answers for its records on any adapter trained on it; a record outside the
        // adapter's training data cannot be penalised there.
        try f.store.penalize(f.records[4].id, adapter: f.adapter.id, by: f.alice.contributor.id, evidence: evidence, points: 1)
        let other = try f.store.createDatanet(NewDatanet(name: "other", license: "MIT"), owner: mallory)
        let outside = try f.store.contribute(.text("outside"), to: other.id, by: mallory)
        try expectRefusal(f.store, .recordNotInTrainingData(record: outside.id, adapter: hers.id)) {
            try f.store.penalize(outside.id, adapter: hers.id, by: mallory, evidence: evidence, points: 1)
        }
        #expect(try f.store.verifyLedger().isValid)
    }
}
