import Crypto
import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Datanets")
struct DatanetTests {
    @Test func createsWithAllFields() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let owner = try store.createContributor(displayName: "Owner").contributor.id
        let net = try store.createDatanet(
            NewDatanet(name: "legal-notes", summary: " Court summaries ", description: "Long text.",
                       tags: ["Law", "law", " summaries ", "en"], license: "CC0-1.0", visibility: .private),
            owner: owner)
        #expect(net.name == "legal-notes")
        #expect(net.summary == "Court summaries")
        #expect(net.description == "Long text.")
        #expect(net.tags == ["en", "law", "summaries"])
        #expect(net.license == "CC0-1.0")
        #expect(net.owner == owner)
        #expect(net.visibility == .private && !net.isPublic)
        #expect(try store.datanet(net.id) == net)
        #expect(try store.datanet(named: "legal-notes") == net)
        #expect(try store.datanets().map(\.id) == [net.id])
        #expect(try store.datanets(tag: "LAW").map(\.id) == [net.id])
        #expect(try store.datanets(tag: "medical").isEmpty)
    }

    @Test func namesAreUniqueAndValidated() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let owner = try store.createContributor(displayName: "Owner").contributor.id
        let other = try store.createContributor(displayName: "Other").contributor.id
        _ = try store.createDatanet(NewDatanet(name: "shared", license: "MIT"), owner: owner)
        try expectRefusal(store, .datanetNameTaken("shared")) {
            _ = try store.createDatanet(NewDatanet(name: "shared", license: "MIT"), owner: other)
        }
        for bad in ["", "Upper", "-dash", "has space", "ünï", String(repeating: "a", count: 65), "semi;colon"] {
            #expect(throws: StoreError.self) {
                _ = try store.createDatanet(NewDatanet(name: bad, license: "MIT"), owner: owner)
            }
        }
        try expectRefusal(store, .invalidDatanetField(field: "license", reason: "empty")) {
            _ = try store.createDatanet(NewDatanet(name: "no-license", license: "  "), owner: owner)
        }
        try expectRefusal(store, .contributorNotFound(ContributorID(77))) {
            _ = try store.createDatanet(NewDatanet(name: "orphan", license: "MIT"), owner: ContributorID(77))
        }
        #expect(throws: StoreError.datanetNotFound("\"nope\"")) { try store.datanet(named: "nope") }
        #expect(throws: StoreError.datanetNotFound("9")) { try store.datanet(DatanetID(9)) }
    }

    @Test func onlyTheOwnerUpdatesDescriptiveFields() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let owner = try store.createContributor(displayName: "Owner").contributor.id
        let other = try store.createContributor(displayName: "Other").contributor.id
        let net = try store.createDatanet(NewDatanet(name: "n1", tags: ["a"], license: "MIT"), owner: owner)
        try expectRefusal(store, .notDatanetOwner(datanet: net.id, contributor: other)) {
            _ = try store.updateDatanet(net.id, by: other, DatanetUpdate(summary: "hijack"))
        }
        let updated = try store.updateDatanet(
            net.id, by: owner, DatanetUpdate(summary: "New", tags: ["b", "c"], visibility: .private))
        #expect(updated.summary == "New" && updated.tags == ["b", "c"] && updated.visibility == .private)
        #expect(updated.license == "MIT" && updated.name == "n1")
    }
}

@Suite("Records: contribution, validation, deduplication, review")
struct RecordTests {
    @Test func contributionsArePendingUntilTheOwnerReviews() throws {
        let f = try Fixture()
        let pending = try f.store.contribute(.pair(prompt: "What is 2+2?", completion: "4"), to: f.datanet.id,
                                             by: f.bob.contributor.id)
        #expect(pending.status == .pending)
        #expect(pending.contributor == f.bob.contributor.id)
        #expect(pending.content == .pair(prompt: "What is 2+2?", completion: "4"))
        #expect(pending.byteSize == "What is 2+2?".utf8.count + 1)
        #expect(pending.reviewedAt == nil)

        // A non-owner cannot review.
        try expectRefusal(f.store, .notDatanetOwner(datanet: f.datanet.id, contributor: f.bob.contributor.id)) {
            try f.store.approve(pending.id, by: f.bob.contributor.id)
        }
        let approved = try f.store.approve(pending.id, by: f.alice.contributor.id, note: "good")
        #expect(approved.status == .approved && approved.reviewedBy == f.alice.contributor.id)
        #expect(approved.reviewNote == "good" && approved.reviewedAt != nil)
        // Review is final.
        try expectRefusal(f.store, .recordAlreadyReviewed(pending.id, status: .approved)) {
            try f.store.reject(pending.id, by: f.alice.contributor.id)
        }

        let other = try f.store.contribute(.text("rejected text"), to: f.datanet.id, by: f.carol.contributor.id)
        let rejected = try f.store.reject(other.id, by: f.alice.contributor.id, note: "off-topic")
        #expect(rejected.status == .rejected && rejected.reviewNote == "off-topic")
        try expectRefusal(f.store, .recordAlreadyReviewed(other.id, status: .rejected)) {
            try f.store.approve(other.id, by: f.alice.contributor.id)
        }
        try expectRefusal(f.store, .recordNotFound(RecordID(999))) {
            try f.store.approve(RecordID(999), by: f.alice.contributor.id)
        }
        #expect(try f.store.records(in: f.datanet.id, status: .pending).isEmpty)
        #expect(try f.store.records(in: f.datanet.id, status: .rejected).map(\.id) == [other.id])
        #expect(try f.store.records(in: f.datanet.id).count == f.records.count + 2)
        let counts = try f.store.recordCounts(in: f.datanet.id)
        let approvedCount = try f.store.records(in: f.datanet.id, status: .approved).count
        #expect(counts == [.pending: 0, .approved: approvedCount, .rejected: 1])
        #expect(approvedCount == f.records.count + 1)
        let fresh = try f.store.contribute(.text("still pending"), to: f.datanet.id, by: f.carol.contributor.id)
        #expect(try f.store.recordCounts(in: f.datanet.id)[.pending] == 1 && fresh.status == .pending)
        try expectRefusal(f.store, .datanetNotFound("999")) { _ = try f.store.recordCounts(in: DatanetID(999)) }
        #expect(try f.store.records(in: f.datanet.id, after: f.records[4].id, limit: 2).map(\.id)
                == [f.records[5].id, pending.id])
    }

    @Test func publicAcceptsAnyonePrivateOnlyTheOwner() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let owner = try store.createContributor(displayName: "Owner").contributor.id
        let stranger = try store.createContributor(displayName: "Stranger").contributor.id
        let open = try store.createDatanet(NewDatanet(name: "open", license: "MIT", visibility: .public), owner: owner)
        let closed = try store.createDatanet(NewDatanet(name: "closed", license: "MIT", visibility: .private), owner: owner)
        _ = try store.contribute(.text("from a stranger"), to: open.id, by: stranger)
        _ = try store.contribute(.text("from the owner"), to: open.id, by: owner)
        _ = try store.contribute(.text("owner's private"), to: closed.id, by: owner)
        try expectRefusal(store, .contributionNotPermitted(datanet: closed.id, contributor: stranger)) {
            _ = try store.contribute(.text("let me in"), to: closed.id, by: stranger)
        }
        try expectRefusal(store, .datanetNotFound("404")) {
            _ = try store.contribute(.text("nowhere"), to: DatanetID(404), by: owner)
        }
        try expectRefusal(store, .contributorNotFound(ContributorID(404))) {
            _ = try store.contribute(.text("nobody"), to: open.id, by: ContributorID(404))
        }
        // Making the datanet private closes it to others from then on.
        _ = try store.updateDatanet(open.id, by: owner, DatanetUpdate(visibility: .private))
        try expectRefusal(store, .contributionNotPermitted(datanet: open.id, contributor: stranger)) {
            _ = try store.contribute(.text("again"), to: open.id, by: stranger)
        }
    }

    @Test func sizeLimitDefaultsTo64KiBAndIsConfigurable() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        #expect(store.configuration.maxRecordBytes == 65_536)
        let owner = try store.createContributor(displayName: "Owner").contributor.id
        let net = try store.createDatanet(NewDatanet(name: "big", license: "MIT"), owner: owner)
        let exact = try store.contribute(.text(String(repeating: "a", count: 65_536)), to: net.id, by: owner)
        #expect(exact.byteSize == 65_536)
        try expectRefusal(store, .recordTooLarge(bytes: 65_537, limit: 65_536)) {
            _ = try store.contribute(.text(String(repeating: "b", count: 65_537)), to: net.id, by: owner)
        }
        // Multi-byte characters count as bytes; a pair counts both halves.
        try expectRefusal(store, .recordTooLarge(bytes: 65_538, limit: 65_536)) {
            _ = try store.contribute(.text(String(repeating: "é", count: 32_769)), to: net.id, by: owner)
        }
        try expectRefusal(store, .recordTooLarge(bytes: 65_537, limit: 65_536)) {
            _ = try store.contribute(.pair(prompt: String(repeating: "p", count: 40_000),
                                           completion: String(repeating: "c", count: 25_537)), to: net.id, by: owner)
        }

        var config = StoreConfiguration()
        config.maxRecordBytes = 10
        let dir2 = try TemporaryDirectory()
        let small = try Store(directory: dir2.url, configuration: config)
        let o2 = try small.createContributor(displayName: "O").contributor.id
        let n2 = try small.createDatanet(NewDatanet(name: "small", license: "MIT"), owner: o2)
        _ = try small.contribute(.text("0123456789"), to: n2.id, by: o2)
        try expectRefusal(small, .recordTooLarge(bytes: 11, limit: 10)) {
            _ = try small.contribute(.text("0123456789A"), to: n2.id, by: o2)
        }
        config.maxRecordBytes = 0
        #expect(throws: StoreError.self) { _ = try Store(directory: dir2.url, configuration: config) }
    }

    @Test func refusesBytesThatAreNotUTF8() throws {
        let f = try Fixture()
        let by = f.bob.contributor.id
        let cases: [(RecordSubmission, StoreError)] = [
            (.text(bytes: [0x61, 0x62, 0xFF, 0x63]), .invalidUTF8(field: "text", byteOffset: 2)),
            (.text(bytes: [0xC3]), .invalidUTF8(field: "text", byteOffset: 0)),  // truncated sequence
            (.text(bytes: [0x41, 0xC0, 0xAF]), .invalidUTF8(field: "text", byteOffset: 1)),  // overlong '/'
            (.text(bytes: [0xED, 0xA0, 0x80]), .invalidUTF8(field: "text", byteOffset: 0)),  // surrogate U+D800
            (.text(bytes: [0xF4, 0x90, 0x80, 0x80]), .invalidUTF8(field: "text", byteOffset: 0)),  // > U+10FFFF
            (.text(bytes: [0x61, 0xE2, 0x82]), .invalidUTF8(field: "text", byteOffset: 1)),
            (.pair(prompt: Array("ok".utf8), completion: [0x6F, 0x80]), .invalidUTF8(field: "completion", byteOffset: 1)),
            (.pair(prompt: [0xFE], completion: Array("ok".utf8)), .invalidUTF8(field: "prompt", byteOffset: 0)),
            (.text(bytes: [0x61, 0x00, 0x62]), .containsNUL(field: "text")),
            (.text(" \n\t\u{00A0} "), .emptyRecord(field: "text")),
            (.text(""), .emptyRecord(field: "text")),
            (.pair(prompt: "question", completion: "  "), .emptyRecord(field: "completion")),
        ]
        for (submission, error) in cases {
            try expectRefusal(f.store, error) { _ = try f.store.contribute(submission, to: f.datanet.id, by: by) }
        }
        // Valid multi-byte UTF-8 of every length is accepted.
        let ok = try f.store.contribute(.text(bytes: Array("é € 𝄞 ok".utf8)), to: f.datanet.id, by: by)
        #expect(ok.content == .text("é € 𝄞 ok"))
    }

    @Test func utf8ValidatorAgreesWithTheStandardLibrary() {
        var rng = SeededGenerator(seed: 0x5EED_0001)
        for _ in 0..<3000 {
            let length = Int.random(in: 0...8, using: &rng)
            let bytes = (0..<length).map { _ in
                // Bias toward the interesting bytes.
                [UInt8.random(in: 0...0x7F, using: &rng), UInt8.random(in: 0x80...0xBF, using: &rng),
                 UInt8.random(in: 0xC0...0xFF, using: &rng)][Int.random(in: 0...2, using: &rng)]
            }
            let valid = String(validating: bytes, as: UTF8.self) != nil
            #expect((UTF8Validation.firstInvalidOffset(bytes) == nil) == valid, "\(bytes)")
        }
    }

    @Test func deduplicatesByNormalisedContentAndTheFirstContributorKeepsTheCredit() throws {
        let f = try Fixture()
        let original = try f.store.contribute(.text("Café  au\tlait\n"), to: f.datanet.id, by: f.bob.contributor.id)
        // Same content after normalisation (NFD vs NFC, white-space runs, leading/trailing space): refused,
        // naming the existing record and its first contributor, whoever submits it.
        for variant in ["Café  au\tlait\n", "Cafe\u{301} au lait", "  Café au\u{00A0}lait", "Café\r\nau lait "] {
            try expectRefusal(f.store, .duplicateRecord(existing: original.id, contributor: f.bob.contributor.id, status: .pending)) {
                _ = try f.store.contribute(.text(variant), to: f.datanet.id, by: f.carol.contributor.id)
            }
        }
        // Different content: case, punctuation, kind.
        _ = try f.store.contribute(.text("café au lait"), to: f.datanet.id, by: f.carol.contributor.id)
        _ = try f.store.contribute(.text("Café au lait!"), to: f.datanet.id, by: f.carol.contributor.id)
        let pair = try f.store.contribute(.pair(prompt: "Café", completion: "au lait"), to: f.datanet.id,
                                          by: f.carol.contributor.id)
        try expectRefusal(f.store, .duplicateRecord(existing: pair.id, contributor: f.carol.contributor.id, status: .pending)) {
            _ = try f.store.contribute(.pair(prompt: " Café ", completion: "au  lait"), to: f.datanet.id, by: f.bob.contributor.id)
        }
        // The pair separator is unambiguous: moving words between prompt and completion is different content.
        _ = try f.store.contribute(.pair(prompt: "Café au", completion: "lait"), to: f.datanet.id, by: f.bob.contributor.id)
        // Approved and rejected records block duplicates too.
        try expectRefusal(f.store, .duplicateRecord(existing: f.records[0].id, contributor: f.alice.contributor.id, status: .approved)) {
            _ = try f.store.contribute(.text("alice one"), to: f.datanet.id, by: f.carol.contributor.id)
        }
        let rejected = try f.store.contribute(.text("spam"), to: f.datanet.id, by: f.carol.contributor.id)
        try f.store.reject(rejected.id, by: f.alice.contributor.id)
        try expectRefusal(f.store, .duplicateRecord(existing: rejected.id, contributor: f.carol.contributor.id, status: .rejected)) {
            _ = try f.store.contribute(.text("spam"), to: f.datanet.id, by: f.bob.contributor.id)
        }
        // Deduplication is per datanet.
        let elsewhere = try f.store.createDatanet(NewDatanet(name: "elsewhere", license: "MIT"), owner: f.carol.contributor.id)
        _ = try f.store.contribute(.text("Café au lait"), to: elsewhere.id, by: f.carol.contributor.id)

        // Copying someone else's record earns nothing: the copy is never stored, so only the original can be
        // attributed; the original's contributor is credited.
        let error = #expect(throws: StoreError.self) {
            _ = try f.store.contribute(.text("bob  one"), to: f.datanet.id, by: f.carol.contributor.id)
        }
        #expect(error == .duplicateRecord(existing: f.records[2].id, contributor: f.bob.contributor.id, status: .approved))
        let receipt = try f.store.recordInference(f.inference("copy", fee: 1_000, shares: [f.records[2].id: 1]))
        #expect(receipt.inference.contributorShares.map(\.contributor) == [f.bob.contributor.id])
    }

    @Test func normalisation() {
        #expect(ContentNormalizer.normalize("  a \t\n b  ") == "a b")
        #expect(ContentNormalizer.normalize("e\u{301}") == "\u{E9}")
        #expect(ContentNormalizer.normalize("\u{212B}") == "\u{C5}")  // Angstrom sign -> A with ring
        #expect(ContentNormalizer.normalize("x\u{2003}\u{3000}y") == "x y")
        #expect(ContentNormalizer.normalize("Keep CASE, punct!") == "Keep CASE, punct!")
        #expect(ContentNormalizer.normalize("\u{200B}") == "\u{200B}")  // zero-width space is not White_Space
        #expect(ContentNormalizer.contentHash(.text("a b")) == ContentNormalizer.contentHash(.text(" a\n\nb")))
        #expect(ContentNormalizer.contentHash(.text("a")) != ContentNormalizer.contentHash(.pair(prompt: "a", completion: "")))
        // The documented construction.
        #expect(ContentNormalizer.contentHash(.pair(prompt: "p", completion: "c")).hex
                == sha256Hex(Array("pair".utf8) + [0] + Array("p".utf8) + [0] + Array("c".utf8)))
    }

    @Test func penaltiesArePerRecordAndAdapterAndAccumulatePoints() throws {
        let f = try Fixture()
        let bob = f.bob.contributor.id
        #expect(try f.store.penaltyPoints(of: bob, on: f.adapter.id) == 0)
        let penalty = try f.penalize(f.records[2].id, points: 2)
        #expect(penalty.contributor == bob && penalty.points == 2 && penalty.adapter == f.adapter.id)
        try f.penalize(f.records[3].id)
        #expect(try f.store.penaltyPoints(of: bob, on: f.adapter.id) == 3)
        #expect(try f.store.penalties(of: bob).map(\.record) == [f.records[2].id, f.records[3].id])
        // Each is on the ledger, with its evidence.
        let entry = try #require(try f.store.ledgerEntries(after: penalty.ledgerSeq - 1, limit: 1).first)
        #expect(entry.kind == .penalty && entry.amount == 0 && entry.account == .contributor(bob) && entry.subject == bob)
        #expect(entry.memo.contains("datainf") && entry.memo.contains("\(f.version.ref)") && entry.memo.contains("2 points"))
        try expectRefusal(f.store, .recordAlreadyFlagged(f.records[2].id)) { try f.penalize(f.records[2].id) }
        try expectRefusal(f.store, .invalidFlag("points must be 1 to 1000")) { try f.penalize(f.records[4].id, points: 0) }
        try expectRefusal(f.store, .invalidFlag("score must be finite")) { try f.penalize(f.records[4].id, score: .nan) }
        try expectRefusal(f.store, .recordNotFound(RecordID(999))) { try f.penalize(RecordID(999)) }
        #expect(try f.store.penaltyPoints(of: f.carol.contributor.id, on: f.adapter.id) == 0)
        #expect(try f.store.verifyLedger().isValid)
    }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    var hasher = Crypto.SHA256()
    hasher.update(data: bytes)
    return hasher.finalize().hex
}
