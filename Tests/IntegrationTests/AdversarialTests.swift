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

    @Test("Two contributors' economy over real processes: nothing minted, nothing charged twice; hostile input leaves both servers up")
    func economyAndHostileInput() async throws {
        try await withCluster { cluster in
            let store = cluster.store
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            let owner = try await cluster.connect()
            let trained = try await cluster.submit(cluster.trainSpec(steps: 1, checkpointEvery: 0), on: owner)
            #expect(try await followEvents(of: trained.id, on: owner).last?.kind == .done, "\(cluster.logs)")
            let adapter = try #require(try store.adapters(owner: cluster.contributor).last).id.rawValue
            let indexed = try await cluster.submit(.index(Wire.IndexSpec(adapter: adapter, method: .tracin, projectionDim: 0)), on: owner)
            #expect(try await followEvents(of: indexed.id, on: owner).last?.kind == .done, "\(cluster.logs)")

            let port = cluster.engines["engine-a"]!.port
            func engine(_ token: String, maxFrameSize: UInt32 = FrameLimits.defaultMaxPayload) async throws -> TributaryConnection {
                try await TributaryConnection.connect(host: "127.0.0.1", port: port, token: token, maxFrameSize: maxFrameSize)
            }
            let ownerEngine = try await engine(cluster.token)
            _ = try await ownerEngine.call(.adapterLoad(Wire.AdapterLoad(adapter: adapter)))
            let treasurer = try store.createContributor(displayName: "treasurer", role: .operator)
            let mallory = try store.createContributor(displayName: "mallory")
            let asOperator = try await engine(treasurer.token)
            let asMallory = try await engine(mallory.token)
            func deposit(_ amount: Int64, key: String, on connection: TributaryConnection) async throws -> Wire.Deposited {
                guard case .deposited(let done) = try await connection.call(.deposit(Wire.Deposit(
                    contributor: mallory.contributor.id.rawValue, amount: amount, memo: "credit", idempotencyKey: key)))
                else { throw ProcessFailure("Deposit was not answered with Deposited") }
                return done
            }
            func infer(fee: Int64, key: String) -> Message {
                .infer(Wire.Infer(
                    adapter: adapter, prompt: cluster.recordTexts[0], maxTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0,
                    stop: [], method: .tracin, topRecords: 3, fee: fee, idempotencyKey: key))
            }
            func paid(_ request: Message, on connection: TributaryConnection) async throws -> Wire.RewardSplit? {
                var split: Wire.RewardSplit?
                for try await reply in try await connection.stream(request) {
                    if case .rewardSplit(let reply) = reply { split = reply }
                }
                return split
            }
            func refused(_ request: Message, on connection: TributaryConnection) async -> ErrorCode? {
                await #expect(throws: ServerError.self) { _ = try await paid(request, on: connection) }?.errorCode
            }

            // Money enters only through an operator's deposit, once per key; mallory cannot mint her own.
            #expect(try await deposit(1_000, key: "first", on: asOperator).balance == 1_000)
            #expect(try await deposit(1_000, key: "first", on: asOperator).replayed)
            #expect(await #expect(throws: ServerError.self) { _ = try await deposit(1_000_000, key: "mine", on: asMallory) }?.errorCode == .permissionDenied)
            let generated = { try store.ledgerEntries(after: 0, limit: 10_000).count }
            let entriesBefore = try generated()
            // A fee beyond her balance, or beyond every bound, is refused before any token; nothing is written.
            #expect(await refused(infer(fee: 5_000, key: "too-much"), on: asMallory) == .failedPrecondition)
            #expect(await refused(infer(fee: .max, key: "overflow"), on: asMallory) == .invalidArgument)
            #expect(try generated() == entriesBefore)
            // Paid once with a key, retried on another connection: charged once, the original split returned.
            let first = try #require(try await paid(infer(fee: 600, key: "retry-me"), on: asMallory))
            let retryConnection = try await engine(mallory.token)
            let retried = try #require(try await paid(infer(fee: 600, key: "retry-me"), on: retryConnection))
            #expect(retried.inference == first.inference && retried.fee == 600)
            #expect(try store.balance(of: .contributor(mallory.contributor.id)) == 400)
            // Conservation, checked by the engine: the balances sum to the deposits.
            guard case .ledgerVerification(let verification) = try await asMallory.call(.ledgerVerify(Wire.LedgerVerify(anchors: [])))
            else { throw ProcessFailure("LedgerVerify was not answered with LedgerVerification") }
            #expect(verification.broken == nil && verification.deposits == 1_000 && verification.balances == 1_000)

            // Hostile input: a HELLO below the smallest frame size is refused, a job id past 2^63 and an absurd rank
            // are refused by name, and both servers still answer.
            await #expect(throws: (any Error).self) { _ = try await engine(mallory.token, maxFrameSize: 16) }
            let coordinator = try await cluster.connect(token: mallory.token)
            let hugeID = await #expect(throws: ServerError.self) { _ = try await coordinator.call(.jobStatus(Wire.JobStatus(job: UInt64.max))) }
            #expect(hugeID?.errorCode == .invalidArgument)
            var absurd = cluster.trainSpec(steps: 1, checkpointEvery: 0)
            if case .train(var spec) = absurd {
                spec.rank = 1 << 30
                absurd = .train(spec)
            }
            let jobsBefore = try store.jobs().count
            let rank = await #expect(throws: ServerError.self) { _ = try await coordinator.call(.jobSubmit(Wire.JobSubmit(spec: absurd))) }
            #expect(rank?.errorCode == .invalidArgument && rank?.message.hasPrefix("rank") == true, "\(rank.map { "\($0)" } ?? "")")
            #expect(try store.jobs().count == jobsBefore)
            guard case .healthStatus = try await asMallory.call(.health(Wire.Health())), case .healthStatus = try await coordinator.call(.health(Wire.Health()))
            else { throw ProcessFailure("a server did not answer Health") }

            for connection in [owner, ownerEngine, asOperator, asMallory, retryConnection, coordinator] { await connection.close() }
        }
    }
}
