import Foundation
import Store
import Testing
import TributaryClient
import WireProtocol

/// The attacks of issue 15 played by an ordinary contributor against real processes on loopback: each is refused
/// with the code docs/SECURITY.md names, nothing changes in the store, and the servers stay up.
@Suite("Integration: an adversarial contributor", .serialized)
struct AdversarialTests {
    @Test("A contributor cannot act on others' datanets, adapters, jobs or engines; a grant opens exactly the datanet")
    func objectAccess() async throws {
        try await withCluster { cluster in
            let store = cluster.store
            let engineToken = try store.createContributor(displayName: "engine credential", role: .engine).token
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a", token: engineToken)
            let owner = try await cluster.connect()

            // The owner's adapter, and a private datanet of theirs with a published version.
            let trained = try await cluster.submit(cluster.trainSpec(steps: 1, checkpointEvery: 0), on: owner)
            #expect(try await followEvents(of: trained.id, on: owner).last?.kind == .done, "\(cluster.logs)")
            let adapter = try #require(try store.adapters(owner: cluster.contributor).last).id.rawValue
            let closed = try store.createDatanet(NewDatanet(name: "closed-notes", license: "proprietary", visibility: .private), owner: cluster.contributor)
            _ = try store.approve(try store.contribute(.text("a private note"), to: closed.id, by: cluster.contributor).id, by: cluster.contributor)
            let closedVersion = Wire.VersionRef(datanet: closed.id.rawValue, number: UInt32(try store.publishVersion(of: closed.id, by: cluster.contributor).number))

            let mallory = try store.createContributor(displayName: "mallory")
            let coordinator = try await cluster.connect(token: mallory.token)
            let engine = try await TributaryConnection.connect(
                host: "127.0.0.1", port: cluster.engines["engine-a"]!.port, token: mallory.token)
            /// What an attack could change: jobs and their events, adapters, grants, penalties, the ledger, drains.
            func state() throws -> [String: String] {
                let jobs = try store.jobs()
                return [
                    "jobs": "\(jobs)", "events": "\(try jobs.map { try store.jobEvents(of: $0.id) })", "adapters": "\(try store.adapters().map { ($0.id, $0.owner, $0.trainedOn, $0.gradientIndexLocation, try store.checkpoints(of: $0.id)) })",
                    "grants": "\(try store.grants(on: closed.id))", "penalties": "\(try store.penalties())",
                    "ledger": "\(try store.ledgerHead() as Any)", "drain": "\(try store.engineDrain(named: "engine-a") as Any)",
                ]
            }
            let before = try state()

            func refused(_ request: Message, on connection: TributaryConnection, _ code: ErrorCode = .permissionDenied) async {
                let error = await #expect(throws: ServerError.self, "\(request.type) was answered") { _ = try await connection.call(request) }
                #expect(error?.errorCode == code, "\(request.type): \(error.map { "\($0)" } ?? "")")
            }
            var train = cluster.trainSpec(steps: 1, checkpointEvery: 0)
            if case .train(var spec) = train {
                spec.versions = [closedVersion]
                train = .train(spec)
            }
            // Train on a private datanet; act on the owner's adapter and job; take over the owner's engine.
            await refused(.jobSubmit(Wire.JobSubmit(spec: train)), on: coordinator)
            await refused(.jobSubmit(Wire.JobSubmit(spec: .index(Wire.IndexSpec(adapter: adapter, method: .tracin, projectionDim: 0)))), on: coordinator)
            await refused(.jobSubmit(Wire.JobSubmit(spec: .evaluate(Wire.EvaluateSpec(
                adapter: adapter, version: Wire.VersionRef(datanet: cluster.version.datanet.rawValue, number: 1))))), on: coordinator)
            await refused(.jobStatus(Wire.JobStatus(job: trained.id)), on: coordinator)
            await refused(.jobCancel(Wire.JobCancel(job: trained.id)), on: coordinator)
            await refused(.engineRegister(Wire.EngineRegister(
                name: "engine-a", address: "127.0.0.1:1", computeSlots: 1, memoryBytes: 1, maxAdapters: 1, jobKinds: [.train])), on: coordinator)
            await refused(.engineDrain(Wire.EngineDrain(name: "engine-a", drain: true)), on: coordinator)
            // Penalise the owner's contributors through their adapter; unload it; read the private datanet.
            await refused(.curate(Wire.Curate(
                adapter: adapter, evaluation: Wire.VersionRef(datanet: cluster.version.datanet.rawValue, number: 1), method: .tracin,
                maxFlags: 3, points: 100, apply: true)), on: engine)
            await refused(.adapterUnload(Wire.AdapterUnload(adapter: adapter)), on: engine)
            await refused(.adapterLoad(Wire.AdapterLoad(adapter: adapter)), on: engine)
            await refused(.export(Wire.Export(version: closedVersion)), on: engine)
            await refused(.recordList(Wire.RecordList(datanet: closed.id.rawValue, status: nil, after: 0, limit: 10)), on: engine)
            await refused(.datanetGrant(Wire.DatanetGrant(datanet: closed.id.rawValue, grantee: mallory.contributor.id.rawValue, grant: true)), on: engine)
            let anonymous = try await cluster.connect(token: "")
            await refused(.jobEvents(Wire.JobEvents(job: trained.id, afterSeq: 0)), on: anonymous, .unauthenticated)
            let after = try state()
            for (part, was) in before.sorted(by: { $0.key < $1.key }) {
                #expect(after[part] == was, "a refused attack changed the store's \(part)")
            }

            // Both servers are up, and the owner's engine still takes jobs.
            guard case .healthStatus = try await engine.call(.health(Wire.Health())), case .healthStatus = try await coordinator.call(.health(Wire.Health()))
            else { throw ProcessFailure("a server did not answer Health") }

            // The owner's grant opens the private datanet to mallory, for reading and training, and nothing else.
            _ = try await owner.call(.engineList(Wire.EngineList()))
            let ownerEngine = try await TributaryConnection.connect(host: "127.0.0.1", port: cluster.engines["engine-a"]!.port, token: cluster.token)
            guard case .datanetGrants(let grants) = try await ownerEngine.call(.datanetGrant(Wire.DatanetGrant(
                datanet: closed.id.rawValue, grantee: mallory.contributor.id.rawValue, grant: true)))
            else { throw ProcessFailure("DatanetGrant was not answered with DatanetGrants") }
            #expect(grants.grants.map(\.grantee) == [mallory.contributor.id.rawValue])
            guard case .recordListing(let listing) = try await engine.call(.recordList(Wire.RecordList(datanet: closed.id.rawValue, status: nil, after: 0, limit: 10)))
            else { throw ProcessFailure("RecordList was not answered with RecordListing") }
            #expect(listing.records.count == 1)
            let granted = try await cluster.submit(train, on: coordinator)
            #expect(try await followEvents(of: granted.id, on: coordinator).last?.kind == .done, "\(cluster.logs)")
            await refused(.adapterUnload(Wire.AdapterUnload(adapter: adapter)), on: engine)

            for connection in [owner, coordinator, engine, anonymous, ownerEngine] { await connection.close() }
        }
    }
}
