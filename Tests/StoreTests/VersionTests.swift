import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Versions and JSON Lines export")
struct VersionTests {
    @Test func publishingSnapshotsApprovedRecordsAsNumberedImmutableVersions() throws {
        let f = try Fixture()
        #expect(f.version.number == 1)
        #expect(f.version.recordCount == 6)
        #expect(try f.store.recordIDs(in: f.version.ref) == f.records.map(\.id))
        let v1Export = try f.store.exportJSONL(f.version.ref)

        // Pending and rejected records stay out; the next version adds newly approved ones.
        let pending = try f.store.contribute(.text("still pending"), to: f.datanet.id, by: f.bob.contributor.id)
        let rejected = try f.store.contribute(.text("rejected"), to: f.datanet.id, by: f.bob.contributor.id)
        try f.store.reject(rejected.id, by: f.alice.contributor.id)
        let approved = try f.store.contribute(.pair(prompt: "Q", completion: "A"), to: f.datanet.id, by: f.carol.contributor.id)
        try f.store.approve(approved.id, by: f.alice.contributor.id)
        let v2 = try f.store.publishVersion(of: f.datanet.id, by: f.alice.contributor.id)
        #expect(v2.number == 2 && v2.recordCount == 7)
        #expect(try f.store.recordIDs(in: v2.ref) == f.records.map(\.id) + [approved.id])
        #expect(!(try f.store.recordIDs(in: v2.ref)).contains(pending.id))

        // Version 1 did not change.
        #expect(try f.store.recordIDs(in: f.version.ref) == f.records.map(\.id))
        #expect(try f.store.exportJSONL(f.version.ref) == v1Export)
        #expect(try f.store.version(f.version.ref) == f.version)
        #expect(try f.store.versions(of: f.datanet.id).map(\.number) == [1, 2])
        #expect(v2.manifestHash == Store.manifestHash(
            try (f.store.recordIDs(in: v2.ref)).map { ($0, try f.store.record($0).contentHash) }))
        #expect(v2.manifestHash != f.version.manifestHash)
    }

    @Test func publishingRefusesNonOwnersEmptySnapshotsAndUnknownDatanets() throws {
        let f = try Fixture()
        try expectRefusal(f.store, .notDatanetOwner(datanet: f.datanet.id, contributor: f.bob.contributor.id)) {
            _ = try f.store.publishVersion(of: f.datanet.id, by: f.bob.contributor.id)
        }
        let empty = try f.store.createDatanet(NewDatanet(name: "empty", license: "MIT"), owner: f.bob.contributor.id)
        _ = try f.store.contribute(.text("pending only"), to: empty.id, by: f.bob.contributor.id)
        try expectRefusal(f.store, .nothingToPublish(empty.id)) {
            _ = try f.store.publishVersion(of: empty.id, by: f.bob.contributor.id)
        }
        try expectRefusal(f.store, .datanetNotFound("12345")) {
            _ = try f.store.publishVersion(of: DatanetID(12345), by: f.bob.contributor.id)
        }
    }

    @Test func versionsThatDoNotExistAreErrors() throws {
        let f = try Fixture()
        for number in [0, 2, -1] {
            let ref = DatanetVersionRef(datanet: f.datanet.id, number: number)
            #expect(throws: StoreError.versionNotFound(ref)) { try f.store.version(ref) }
            #expect(throws: StoreError.versionNotFound(ref)) { try f.store.exportJSONL(ref) }
            #expect(throws: StoreError.versionNotFound(ref)) { try f.store.recordIDs(in: ref) }
        }
        #expect(throws: StoreError.datanetNotFound("99")) {
            try f.store.exportJSONL(DatanetVersionRef(datanet: DatanetID(99), number: 1))
        }
    }

    @Test func exportIsTheExactJSONLinesTrainingReads() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let owner = try store.createContributor(displayName: "O").contributor.id
        let helper = try store.createContributor(displayName: "H").contributor.id
        let net = try store.createDatanet(NewDatanet(name: "tricky.chars", license: "MIT"), owner: owner)
        let a = try store.contribute(.text("plain"), to: net.id, by: owner)
        let b = try store.contribute(
            .pair(prompt: "Say \"hi\"\\\n\ttab", completion: "é 😀 /slash\u{1}\u{1F}\u{7F}\r\u{8}\u{C}"), to: net.id, by: helper)
        let c = try store.contribute(.text("  kept as submitted  "), to: net.id, by: helper)
        for r in [a, b, c] { try store.approve(r.id, by: owner) }
        let v = try store.publishVersion(of: net.id, by: owner)

        let expected = """
            {"id":\(a.id.rawValue),"contributor":\(owner.rawValue),"datanet":"tricky.chars","datanet_version":1,"text":"plain"}
            {"id":\(b.id.rawValue),"contributor":\(helper.rawValue),"datanet":"tricky.chars","datanet_version":1,"prompt":"Say \\"hi\\"\\\\\\n\\ttab","completion":"é 😀 /slash\\u0001\\u001f\u{7F}\\r\\b\\f"}
            {"id":\(c.id.rawValue),"contributor":\(helper.rawValue),"datanet":"tricky.chars","datanet_version":1,"text":"  kept as submitted  "}

            """
        let exported = try store.exportJSONL(v.ref)
        #expect(String(decoding: exported, as: UTF8.self) == expected)

        // Every line is valid JSON that decodes to exactly the stored content.
        let lines = exported.split(separator: 0x0A)
        #expect(lines.count == 3)
        let second = try JSONSerialization.jsonObject(with: Data(lines[1])) as! [String: Any]
        #expect(second["prompt"] as? String == "Say \"hi\"\\\n\ttab")
        #expect(second["completion"] as? String == "é 😀 /slash\u{1}\u{1F}\u{7F}\r\u{8}\u{C}")
        #expect(second["datanet_version"] as? Int == 1)

        // Deterministic: the same bytes again, after reopening, and through the file writer.
        #expect(try store.exportJSONL(v.ref) == exported)
        try store.close()
        let reopened = try Store(directory: dir.url)
        #expect(try reopened.exportJSONL(v.ref) == exported)
        let file = dir.url.appendingPathComponent("export.jsonl")
        try reopened.exportJSONL(v.ref, to: file)
        try reopened.exportJSONL(v.ref, to: file)  // replaces
        #expect(try Data(contentsOf: file) == exported)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
    }
}
