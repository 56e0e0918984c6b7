import Foundation
import Store
import Testing

/// `tributary-engine contributor`: the tokens it prints authenticate against the store it wrote.
@Suite struct ContributorCommandTests {
    struct Created: Decodable { let contributor: Int64; let name: String; let token: String }

    @Test func addPrintsATokenTheStoreAcceptsAndRotationRevokesIt() throws {
        let data = temporaryFolder("contributors")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let added = try runEngine(["contributor", "add", "--data", data, "--name", "operator", "--json"])
        #expect(added.status == 0, "\(added.errors)")
        let created = try JSONDecoder().decode(Created.self, from: added.output)
        #expect(created.name == "operator")

        let rotated = try runEngine(["contributor", "rotate-token", "--data", data, "--id", String(created.contributor), "--json"])
        #expect(rotated.status == 0, "\(rotated.errors)")
        let fresh = try JSONDecoder().decode(Created.self, from: rotated.output)
        let store = try Store(directory: URL(fileURLWithPath: data))
        #expect(try store.authenticate(token: fresh.token).id == ContributorID(created.contributor))
        #expect(throws: StoreError.self) { try store.authenticate(token: created.token) }
    }

    @Test func anInvalidNameIsRefusedWithItsReason() throws {
        let data = temporaryFolder("contributors")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let run = try runEngine(["contributor", "add", "--data", data, "--name", ""])
        #expect(run.status != 0)
        #expect(run.errors.contains("display name"))
    }
}
