import Crypto
@testable import EngineServer
import Foundation
import Store
import Testing
import TributaryClient
import WireProtocol

/// EXPORT, DATANET_LIST and RECORD_LIST, with the visibility rules: anonymous callers see public datanets only,
/// a private datanet only its owner.
@Suite struct DatanetServingTests {
    /// A published public datanet of `count` records of awkward, varied lengths, and a private one with one
    /// pending record, both owned by the server's contributor.
    func datanets(on server: TestServer, count: Int) throws -> (public: DatanetVersionRef, private: Datanet) {
        let store = server.store
        let owner = server.contributor
        let open = try store.createDatanet(NewDatanet(name: "open-notes", license: "MIT"), owner: owner)
        for index in 0..<count {
            let text = "note \(index): " + String(repeating: "tide \"\(index)\" ", count: 7 + index % 13)
            try store.review(try store.contribute(.text(text), to: open.id, by: owner).id, by: owner, .approve)
        }
        let hidden = try store.createDatanet(NewDatanet(name: "hidden-notes", license: "MIT", visibility: .private), owner: owner)
        _ = try store.contribute(.text("private text"), to: hidden.id, by: owner)
        return (try store.publishVersion(of: open.id, by: owner).ref, hidden)
    }

    func exportRequest(_ version: DatanetVersionRef) -> Message {
        .export(Wire.Export(version: Wire.VersionRef(datanet: version.datanet.rawValue, number: UInt32(version.number))))
    }

    @Test("EXPORT streams the store's exact bytes in chunks cut at line ends, one credit each, then their SHA-256")
    func exportStreamsTheStoresBytes() async throws {
        let server = try await TestServer.start()
        let (version, hidden) = try datanets(on: server, count: 101)
        let expected = try server.store.exportJSONL(version)
        #expect(expected.count > 3 * 4096, "the export spans several chunks")

        // Two credits: the server must wait for the client's grants between chunks, cut below the client's
        // smallest allowed payload.
        let connection = try await server.connect(streamCredits: 2, maxFrameSize: FrameLimits.minimumMaxPayload)
        var chunks: [[UInt8]] = []
        var end: Wire.ExportEnd?
        for try await reply in try await connection.stream(exportRequest(version)) {
            switch reply {
            case .exportChunk(let chunk): chunks.append(chunk.jsonl)
            case .exportEnd(let last): end = last
            default: Issue.record("unexpected \(reply.type)")
            }
        }
        #expect(Data(chunks.joined()) == expected)
        #expect(chunks.count > 3 && chunks.allSatisfy { $0.count <= 4096 - 64 && $0.last == UInt8(ascii: "\n") })
        #expect(end == Wire.ExportEnd(records: 101, bytes: UInt64(expected.count), sha256: Array(SHA256.hash(data: expected))))

        // A private datanet's versions are its owner's alone.
        let hiddenVersion = DatanetVersionRef(datanet: hidden.id, number: 1)
        let anonymous = try await server.connect(token: "")
        let refused = await #expect(throws: ServerError.self) { _ = try await anonymous.call(exportRequest(hiddenVersion)) }
        #expect(refused?.errorCode == .unauthenticated, "anonymous: a token its owner granted would read it")
        let missing = await #expect(throws: ServerError.self) { _ = try await connection.call(exportRequest(hiddenVersion)) }
        #expect(missing?.errorCode == .notFound, "the owner passes the visibility check; the version does not exist")
        await anonymous.close()
        await connection.close()
        try await server.stop()
    }

    @Test("A line longer than a chunk is cut at byte boundaries; every other cut is at a line end")
    func longLinesAreCut() {
        let data = Data("ab\nlong line here\nc\n".utf8)
        let chunks = ExportStream.chunks(of: data, limit: 6).map { String(decoding: $0, as: UTF8.self) }
        #expect(chunks == ["ab\n", "long l", "ine he", "re\nc\n"])
    }

    @Test("DATANET_LIST and RECORD_LIST show public datanets to anyone and private ones to their owner only")
    func listingsFollowVisibility() async throws {
        let server = try await TestServer.start()
        let (version, hidden) = try datanets(on: server, count: 5)
        let owner = try await server.connect()
        let anonymous = try await server.connect(token: "")

        func listing(_ connection: TributaryConnection, datanet: Int64? = nil, owner: Int64? = nil) async throws -> [Wire.DatanetSummary] {
            guard case .datanetListing(let listing) = try await connection.call(.datanetList(Wire.DatanetList(datanet: datanet, owner: owner)))
            else { throw FixtureError("expected DATANET_LISTING") }
            return listing.datanets
        }
        let seenByOwner = try await listing(owner)
        #expect(seenByOwner.map(\.datanet.name) == ["open-notes", "hidden-notes"])
        #expect(seenByOwner.map { [$0.pending, $0.approved, $0.rejected] } == [[0, 5, 0], [1, 0, 0]])
        #expect(seenByOwner[0].versions.map(\.number) == [1] && seenByOwner[0].versions[0].recordCount == 5)
        #expect(try await listing(anonymous).map(\.datanet.name) == ["open-notes"])
        #expect(try await listing(anonymous, datanet: hidden.id.rawValue).isEmpty)
        #expect(try await listing(owner, datanet: hidden.id.rawValue).map(\.datanet.id) == [hidden.id.rawValue])
        #expect(try await listing(owner, owner: server.contributor.rawValue + 1).isEmpty)

        func records(_ connection: TributaryConnection, _ datanet: DatanetID, status: Wire.RecordStatus? = nil, after: Int64 = 0, limit: UInt32)
            async throws -> [Wire.Record]
        {
            guard case .recordListing(let listing) = try await connection.call(
                .recordList(Wire.RecordList(datanet: datanet.rawValue, status: status, after: after, limit: limit)))
            else { throw FixtureError("expected RECORD_LISTING") }
            return listing.records
        }
        let all = try server.store.records(in: version.datanet).map(\.id.rawValue)
        let firstPage = try await records(anonymous, version.datanet, limit: 2)
        let secondPage = try await records(anonymous, version.datanet, after: firstPage.last!.id, limit: 1000)
        #expect((firstPage + secondPage).map(\.id) == all && firstPage.count == 2)
        #expect(try await records(owner, hidden.id, status: .pending, limit: 10).map(\.status) == [.pending])
        #expect(try await records(owner, hidden.id, status: .approved, limit: 10).isEmpty)
        let hiddenRefused = await #expect(throws: ServerError.self) { _ = try await records(anonymous, hidden.id, limit: 10) }
        #expect(hiddenRefused?.errorCode == .unauthenticated)
        let badLimit = await #expect(throws: ServerError.self) { _ = try await records(owner, hidden.id, limit: 0) }
        #expect(badLimit?.errorCode == .invalidArgument)
        await anonymous.close()
        await owner.close()
        try await server.stop()
    }
}
