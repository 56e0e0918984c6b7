import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Adapter registry")
struct AdapterTests {
    @Test func registersProvenanceCheckpointsMetricsAndIndexLocation() throws {
        let f = try Fixture()
        let other = try f.store.createDatanet(NewDatanet(name: "other", license: "MIT"), owner: f.bob.contributor.id)
        let r = try f.store.contribute(.text("other data"), to: other.id, by: f.bob.contributor.id)
        try f.store.approve(r.id, by: f.bob.contributor.id)
        let otherV1 = try f.store.publishVersion(of: other.id, by: f.bob.contributor.id)

        let adapter = try f.store.registerAdapter(
            NewAdapter(name: "two-sets", baseModelHash: String(repeating: "AB", count: 32),
                       trainedOn: [otherV1.ref, f.version.ref, f.version.ref],
                       hyperparameters: ["rank": .int(16), "alpha": .double(32.5), "optimizer": .string("adamw"),
                                         "bias": .bool(false), "dropout": .double(0)]),
            owner: f.dave.contributor.id)
        #expect(adapter.owner == f.dave.contributor.id)
        #expect(adapter.baseModelHash == String(repeating: "ab", count: 32))
        #expect(adapter.trainedOn == [f.version.ref, otherV1.ref])
        #expect(adapter.hyperparameters == ["rank": .int(16), "alpha": .double(32.5), "optimizer": .string("adamw"),
                                            "bias": .bool(false), "dropout": .double(0)])
        #expect(adapter.gradientIndexLocation == nil)
        #expect(try f.store.adapter(adapter.id) == adapter)
        #expect(try f.store.adapters(owner: f.dave.contributor.id).map(\.id) == [f.adapter.id, adapter.id])

        let hash = String(repeating: "0f", count: 32)
        try f.store.addCheckpoint(to: adapter.id, by: f.dave.contributor.id, step: 100, location: "ckpt/100.safetensors", contentHash: hash)
        try f.store.addCheckpoint(to: adapter.id, by: f.dave.contributor.id, step: 0, location: "ckpt/0.safetensors", contentHash: hash)
        #expect(try f.store.checkpoints(of: adapter.id).map(\.step) == [0, 100])
        #expect(try f.store.checkpoints(of: adapter.id)[1].location == "ckpt/100.safetensors")
        try expectRefusal(f.store, .checkpointExists(adapter: adapter.id, step: 100)) {
            try f.store.addCheckpoint(to: adapter.id, by: f.dave.contributor.id, step: 100, location: "x", contentHash: hash)
        }

        try f.store.recordMetrics(for: adapter.id, by: f.dave.contributor.id, step: 10, ["loss": 2.5, "lr": 1e-4])
        try f.store.recordMetrics(for: adapter.id, by: f.dave.contributor.id, step: 20, ["loss": 1.75])
        #expect(try f.store.metrics(of: adapter.id, named: "loss").map(\.value) == [2.5, 1.75])
        #expect(try f.store.metrics(of: adapter.id).map(\.name) == ["loss", "lr", "loss"])
        try expectRefusal(f.store, .metricExists(adapter: adapter.id, step: 20, name: "loss")) {
            try f.store.recordMetrics(for: adapter.id, by: f.dave.contributor.id, step: 20, ["grad_norm": 1, "loss": 1.5])
        }
        try expectRefusal(f.store, .invalidAdapter("metric loss is not finite")) {
            try f.store.recordMetrics(for: adapter.id, by: f.dave.contributor.id, step: 30, ["loss": .nan])
        }

        let indexed = try f.store.setGradientIndexLocation("index/two-sets.gidx", for: adapter.id, by: f.dave.contributor.id)
        #expect(indexed.gradientIndexLocation == "index/two-sets.gidx")

        // Only the owner records training artefacts.
        let bob = f.bob.contributor.id
        try expectRefusal(f.store, .notAdapterOwner(adapter: adapter.id, contributor: bob)) {
            try f.store.addCheckpoint(to: adapter.id, by: bob, step: 5, location: "x", contentHash: hash)
        }
        try expectRefusal(f.store, .notAdapterOwner(adapter: adapter.id, contributor: bob)) {
            try f.store.recordMetrics(for: adapter.id, by: bob, step: 5, ["loss": 1])
        }
        try expectRefusal(f.store, .notAdapterOwner(adapter: adapter.id, contributor: bob)) {
            try f.store.setGradientIndexLocation("evil", for: adapter.id, by: bob)
        }
    }

    @Test func registrationRefusesBadProvenance() throws {
        let f = try Fixture()
        let dave = f.dave.contributor.id
        let missing = DatanetVersionRef(datanet: f.datanet.id, number: 2)
        try expectRefusal(f.store, .versionNotFound(missing)) {
            _ = try f.store.registerAdapter(NewAdapter(name: "a", baseModelHash: baseModelHash, trainedOn: [f.version.ref, missing]), owner: dave)
        }
        try expectRefusal(f.store, .datanetNotFound("50")) {
            _ = try f.store.registerAdapter(
                NewAdapter(name: "a", baseModelHash: baseModelHash, trainedOn: [DatanetVersionRef(datanet: DatanetID(50), number: 1)]),
                owner: dave)
        }
        try expectRefusal(f.store, .invalidAdapter("no training data: name its datanet versions")) {
            _ = try f.store.registerAdapter(NewAdapter(name: "a", baseModelHash: baseModelHash, trainedOn: []), owner: dave)
        }
        for bad in ["", "abc", String(repeating: "g", count: 64), String(repeating: "a", count: 63)] {
            try expectRefusal(f.store, .invalidAdapter("base-model hash must be a SHA-256 in 64 hex digits")) {
                _ = try f.store.registerAdapter(NewAdapter(name: "a", baseModelHash: bad, trainedOn: [f.version.ref]), owner: dave)
            }
        }
        try expectRefusal(f.store, .invalidAdapter("hyperparameter lr is not finite")) {
            _ = try f.store.registerAdapter(
                NewAdapter(name: "a", baseModelHash: baseModelHash, trainedOn: [f.version.ref], hyperparameters: ["lr": .double(.infinity)]),
                owner: dave)
        }
        try expectRefusal(f.store, .contributorNotFound(ContributorID(70))) {
            _ = try f.store.registerAdapter(NewAdapter(name: "a", baseModelHash: baseModelHash, trainedOn: [f.version.ref]), owner: ContributorID(70))
        }
        #expect(throws: StoreError.adapterNotFound(AdapterID(70))) { try f.store.adapter(AdapterID(70)) }
        try expectRefusal(f.store, .adapterNotFound(AdapterID(70))) {
            try f.store.addCheckpoint(to: AdapterID(70), by: dave, step: 1, location: "x", contentHash: baseModelHash)
        }
    }

    @Test func provenanceIsImmutableAtTheSQLLevel() throws {
        let f = try Fixture()
        let id = f.adapter.id.rawValue
        // A second version (row id 2) exists, so that adding it to the adapter's training set fails on the
        // sealing trigger, not on a foreign key.
        let extra = try f.store.contribute(.text("extra"), to: f.datanet.id, by: f.alice.contributor.id)
        try f.store.approve(extra.id, by: f.alice.contributor.id)
        _ = try f.store.publishVersion(of: f.datanet.id, by: f.alice.contributor.id)
        for sql in [
            "UPDATE adapter SET base_model_hash = '\(String(repeating: "cd", count: 32))' WHERE id = \(id)",
            "UPDATE adapter SET owner_id = 1 WHERE id = \(id)",
            "DELETE FROM adapter_training_version WHERE adapter_id = \(id)",
            "INSERT INTO adapter_training_version (adapter_id, version_id) VALUES (\(id), 2)",
            "UPDATE adapter_hyperparameter SET value = 64 WHERE adapter_id = \(id)",
            "DELETE FROM adapter WHERE id = \(id)",
        ] {
            #expect(throws: DatabaseError.self, "\(sql)") { try f.store.executeRaw(sql) }
        }
        #expect(try f.store.adapter(f.adapter.id) == f.adapter)
    }
}
