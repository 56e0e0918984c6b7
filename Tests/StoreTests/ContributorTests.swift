import Crypto
import Foundation
import GRDB
import Testing

@testable import Store

@Suite("Contributors and API tokens")
struct ContributorTests {
    @Test func createsContributorWithIdNameAndCreationTime() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let before = Date().addingTimeInterval(-1)
        let created = try store.createContributor(displayName: "  Ada Lovelace ")
        #expect(created.contributor.displayName == "Ada Lovelace")
        #expect(created.contributor.id.rawValue >= 1)
        #expect(created.contributor.createdAt >= before && created.contributor.createdAt <= Date().addingTimeInterval(1))
        #expect(try store.contributor(created.contributor.id) == created.contributor)
        let second = try store.createContributor(displayName: "Grace")
        #expect(try store.contributors().map(\.id) == [created.contributor.id, second.contributor.id])
    }

    @Test func tokenIsReturnedOnceAndOnlyItsHashIsStored() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let created = try store.createContributor(displayName: "Ada")
        let token = created.token
        #expect(token.hasPrefix("trb_"))
        #expect(token.utf8.count == 4 + 43)
        #expect(APIToken.isWellFormed(token))
        let stored = try store.dbPool.read { db in
            try Data.fetchOne(db, sql: "SELECT token_hash FROM contributor WHERE id = ?", arguments: [created.contributor.id])
        }
        #expect(stored == Data(SHA256.hash(data: Data(token.utf8))))
        // The token itself is nowhere in the database: not in any row, not in the file.
        #expect(!(try store.dump()).contains(token))
        try store.checkpoint()
        let fileBytes = try Data(contentsOf: URL(fileURLWithPath: store.databasePath))
        #expect(fileBytes.range(of: Data(token.utf8)) == nil)
        // Tokens are random: two contributors never share one.
        let other = try store.createContributor(displayName: "Ada")
        #expect(other.token != token)
    }

    @Test func authenticatesByToken() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let ada = try store.createContributor(displayName: "Ada")
        let grace = try store.createContributor(displayName: "Grace")
        #expect(try store.authenticate(token: ada.token) == ada.contributor)
        #expect(try store.authenticate(token: grace.token) == grace.contributor)

        // A well-formed but unknown token, a token with one character changed, malformed tokens.
        var tampered = Array(ada.token)
        tampered[10] = tampered[10] == "A" ? "B" : "A"
        for bad in ["trb_" + String(repeating: "A", count: 43), String(tampered), "", "trb_", ada.token + "x",
                    "xyz_" + ada.token.dropFirst(4), ada.token.replacingOccurrences(of: "trb_", with: "TRB_")] {
            #expect(throws: StoreError.invalidToken) { try store.authenticate(token: bad) }
        }
    }

    @Test func rotatingATokenRevokesTheOldOne() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        let ada = try store.createContributor(displayName: "Ada")
        let newToken = try store.rotateToken(for: ada.contributor.id)
        #expect(newToken != ada.token)
        #expect(throws: StoreError.invalidToken) { try store.authenticate(token: ada.token) }
        #expect(try store.authenticate(token: newToken).id == ada.contributor.id)
        #expect(throws: StoreError.contributorNotFound(ContributorID(99))) { try store.rotateToken(for: ContributorID(99)) }
    }

    @Test func refusesBadDisplayNamesAndUnknownIds() throws {
        let dir = try TemporaryDirectory()
        let store = try Store(directory: dir.url)
        _ = try store.createContributor(displayName: "Ada")
        try expectRefusal(store, .invalidDisplayName("empty")) { _ = try store.createContributor(displayName: " \n ") }
        try expectRefusal(store, .invalidDisplayName("longer than 100 characters")) {
            _ = try store.createContributor(displayName: String(repeating: "x", count: 101))
        }
        try expectRefusal(store, .invalidDisplayName("contains control characters")) {
            _ = try store.createContributor(displayName: "a\u{7}b")
        }
        #expect(throws: StoreError.contributorNotFound(ContributorID(42))) { try store.contributor(ContributorID(42)) }
        let renamed = try store.setDisplayName("Ada L.", for: ContributorID(1))
        #expect(renamed.displayName == "Ada L.")
    }

    @Test func constantTimeComparison() {
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(constantTimeEquals([UInt8](), [UInt8]()))
    }
}
