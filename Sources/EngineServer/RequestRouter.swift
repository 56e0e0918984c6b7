import Authorization
import Foundation
import LlamaModel
import NIOCore
import ProtocolServer
import Store
import WireProtocol

/// Maps each catalogue request to library calls, once ``Authorizer`` has admitted the connection's contributor
/// (nil for an anonymous connection) to it (docs/SECURITY.md).
struct RequestRouter: Sendable {
    let engine: Engine
    let contributor: ContributorID?
    let allowsSignUp: Bool
    let startedAt: ContinuousClock.Instant
    let isDraining: @Sendable () -> Bool
    /// Names this connection in the store's inference request ids, with the request's own id.
    let connectionID: UUID
    /// The client's largest accepted payload: export chunks are cut below it.
    let peerMaxPayload: UInt32

    /// Answers `request`; every failure becomes an ERROR frame on its request id.
    func handle(_ request: Message, replier: Replier) async {
        do {
            guard !request.type.isCoordinatorRequest else {
                throw RequestFailure(.failedPrecondition, "\(request.type) is the coordinator's: send it to the coordinator")
            }
            try await authorize(request)
            try await respond(to: request, replier: replier)
        } catch is CancellationError where replier.stream.isCancelled {
            // A request the client cancelled before it could answer (inference answers INFER_END itself).
            try? await replier.fail(RequestFailure(.cancelled, "the request was cancelled"))
        } catch {
            try? await replier.fail(RequestFailure(error))
        }
    }

    /// Refuses what the caller may not send, before anything is read or changed.
    private func authorize(_ request: Message) async throws {
        let caller = contributor
        if AccessRule.rule(for: request.type)?.readsStore == true {
            try await engine.withStore { try Authorizer(store: $0).authorize(request, caller: caller) }
        } else {
            try Authorizer(store: engine.store).authorize(request, caller: caller)
        }
    }

    private func respond(to request: Message, replier: Replier) async throws {
        switch request {
        case .health:
            try await replier.finish(
                .healthStatus(Wire.HealthStatus(
                    state: isDraining() ? .draining : .serving, serverVersion: EngineServer.version,
                    uptimeMs: (ContinuousClock.now - startedAt).wholeMicroseconds / 1000)))
        case .stats:
            let stats = engine.statistics.snapshot()
            try await replier.finish(
                .statsReport(Wire.StatsReport(
                    // Gauges: saturated at the field's range, never a trap.
                    connections: UInt32(clamping: stats.connections), requestsInFlight: UInt32(clamping: stats.requestsInFlight),
                    requestsCompleted: stats.requestsCompleted, tokensGenerated: stats.tokensGenerated,
                    adaptersLoaded: UInt32(clamping: engine.residentAdapterIDs.count), jobsQueued: 0, jobsRunning: 0,
                    latencyP50Us: stats.latencyP50Microseconds, latencyP99Us: stats.latencyP99Microseconds)))
        case .signUp(let signUp):
            guard allowsSignUp else {
                throw RequestFailure(.permissionDenied, "sign-up is closed on this server: ask its operator for a token")
            }
            let new = try await engine.withStore { try $0.createContributor(displayName: signUp.displayName) }
            try await replier.finish(.signedUp(Wire.SignedUp(contributor: new.contributor.id.rawValue, token: new.token)))
        case .datanetCreate(let create):
            let owner = try requireContributor()
            let spec = NewDatanet(
                name: create.name, summary: create.summary, description: create.description, tags: create.tags,
                license: create.license, visibility: create.visibility == .public ? .public : .private)
            let datanet = try await engine.withStore { try $0.createDatanet(spec, owner: owner) }
            try await replier.finish(.datanetInfo(Wire.DatanetInfo(datanet: Wire.Datanet(datanet))))
        case .contribute(let contribute):
            let contributor = try requireContributor()
            let submission: RecordSubmission =
                switch contribute.content {
                case .text(let text): .text(bytes: text.text)
                case .pair(let pair): .pair(prompt: pair.prompt, completion: pair.completion)
                }
            let record = try await engine.withStore {
                try $0.contribute(submission, to: DatanetID(contribute.datanet), by: contributor)
            }
            try await replier.finish(.recordInfo(Wire.RecordInfo(record: Wire.Record(record))))
        case .review(let review):
            let reviewer = try requireContributor()
            let decision: ReviewDecision = review.decision == .approve ? .approve : .reject
            let record = try await engine.withStore {
                try $0.review(RecordID(review.record), by: reviewer, decision, note: review.note)
            }
            try await replier.finish(.recordInfo(Wire.RecordInfo(record: Wire.Record(record))))
        case .publish(let publish):
            let publisher = try requireContributor()
            let version = try await engine.withStore { try $0.publishVersion(of: DatanetID(publish.datanet), by: publisher) }
            try await replier.finish(.versionInfo(Wire.VersionInfo(version: Wire.DatanetVersion(version))))
        case .adapterList(let list):
            let adapters = try await engine.withStore { try $0.adapters(owner: list.owner.map { ContributorID($0) }) }
            let resident = engine.residentAdapterIDs
            try await replier.finish(
                .adapterListing(Wire.AdapterListing(adapters: adapters.map { Wire.Adapter($0, loaded: resident.contains($0.id)) })))
        case .adapterLoad(let load):
            let bytes = try await engine.loadAdapter(AdapterID(load.adapter), for: computeBucket)
            try await replier.finish(.adapterState(Wire.AdapterState(adapter: load.adapter, loaded: true, residentBytes: UInt64(bytes))))
        case .adapterUnload(let unload):
            guard engine.unloadAdapter(AdapterID(unload.adapter)) else {
                throw RequestFailure(.notFound, "adapter \(unload.adapter) is not loaded")
            }
            try await replier.finish(.adapterState(Wire.AdapterState(adapter: unload.adapter, loaded: false, residentBytes: 0)))
        case .infer(let infer):
            try await InferenceStream(
                engine: engine, request: infer, replier: replier, contributor: contributor,
                storeRequestID: "engine-\(connectionID.uuidString.lowercased())/\(replier.stream.requestID)"
            ).run()
        case .export(let export):
            // The caller reads the datanet: ``Authorizer`` checked it.
            let version = DatanetVersionRef(datanet: DatanetID(export.version.datanet), number: Int(export.version.number))
            try await ExportStream(engine: engine, version: version, replier: replier, maxPayload: Int(peerMaxPayload)).run()
        case .datanetList(let list):
            try await replier.finish(.datanetListing(Wire.DatanetListing(datanets: try await datanetSummaries(list))))
        case .recordList(let list):
            guard (1...1000).contains(list.limit) else {
                throw RequestFailure(.invalidArgument, "limit must be 1 to 1000, got \(list.limit)")
            }
            let (datanet, status) = (DatanetID(list.datanet), list.status.map(RecordStatus.init))
            let records = try await engine.withStore {
                try $0.records(in: datanet, status: status, after: RecordID(list.after), limit: Int(list.limit))
            }
            try await replier.finish(.recordListing(Wire.RecordListing(records: records.map(Wire.Record.init))))
        case .attribute(let attribute):
            try await replier.finish(.attribution(try await self.attribute(attribute, stream: replier.stream)))
        case .curate(let curate):
            try await replier.finish(.curationReport(try await self.curate(curate, stream: replier.stream)))
        case .ledgerVerify(let verify):
            let anchors = verify.anchors.map { LedgerHead(seq: $0.seq, hash: Data($0.hash)) }
            let verification = try await engine.withStore { try $0.verifyLedger(anchors: anchors) }
            try await replier.finish(.ledgerVerification(Wire.LedgerVerification(verification)))
        case .ledgerBalances(let query):
            let balances = try await engine.withStore { store -> [Wire.Balance] in
                if let contributor = query.contributor {
                    return [Wire.Balance(contributor: contributor, amount: try store.balance(of: .contributor(ContributorID(contributor))))]
                }
                return try store.balances()
                    .map { Wire.Balance(contributor: $0.key.contributorID, amount: $0.value) }
                    .sorted { ($0.contributor ?? -1) < ($1.contributor ?? -1) }
            }
            try await replier.finish(.balances(Wire.Balances(balances: balances)))
        case .deposit(let deposit):
            let depositor = try requireContributor()
            guard deposit.contributor > 0 else {
                throw RequestFailure(.invalidArgument, "contributor must be a contributor id (1 or more), got \(deposit.contributor)")
            }
            guard (1...MoneyBounds.maximumDeposit).contains(deposit.amount) else {
                throw RequestFailure(
                    .invalidArgument, "amount must be 1 to \(MoneyBounds.maximumDeposit) micro-units, got \(deposit.amount)")
            }
            // The store checks the role first, in the transaction that writes: a refusal writes nothing.
            let receipt = try await engine.withStore {
                try $0.deposit(
                    deposit.amount, to: ContributorID(deposit.contributor), by: depositor, memo: deposit.memo,
                    idempotencyKey: deposit.idempotencyKey)
            }
            try await replier.finish(
                .deposited(Wire.Deposited(
                    entry: Wire.LedgerEntry(receipt.entry), balance: receipt.balance, replayed: receipt.isReplay)))
        case .ledgerEntries(let query):
            let entries = try await engine.withStore { store -> [LedgerEntry] in
                if let inference = query.inference {
                    return try store.ledgerEntries(for: InferenceID(inference)).filter { $0.seq > query.afterSeq }
                }
                return try store.ledgerEntries(after: query.afterSeq, limit: Int(min(query.limit, 10_000)))
            }
            try await replier.finish(.ledgerPage(Wire.LedgerPage(entries: entries.map(Wire.LedgerEntry.init))))
        case .penaltyList(let list):
            let penalties = try await engine.withStore { store in
                try store.penalties(of: list.contributor.map { ContributorID($0) }, adapter: list.adapter.map { AdapterID($0) })
            }
            try await replier.finish(.penaltyListing(Wire.PenaltyListing(penalties: try penalties.map(Wire.Penalty.init))))
        case .datanetGrant(let grant):
            let granter = try requireContributor()
            let (datanet, grantee) = (DatanetID(grant.datanet), ContributorID(grant.grantee))
            let grants = try await engine.withStore { store in
                grant.grant
                    ? try store.grantRead(on: datanet, to: grantee, by: granter)
                    : try store.revokeRead(on: datanet, from: grantee, by: granter)
            }
            try await replier.finish(.datanetGrants(Wire.DatanetGrants(datanet: grant.datanet, grants: grants.map(Wire.DatanetGrantEntry.init))))
        default:
            throw RequestFailure(.invalidMessage, "\(request.type) is not a request")
        }
    }

    /// The datanets the caller may see (public ones and their own), optionally one or one owner's, with their
    /// versions and record counts.
    private func datanetSummaries(_ list: Wire.DatanetList) async throws -> [Wire.DatanetSummary] {
        let caller = contributor
        return try await engine.withStore { store in
            let datanets = try list.datanet.map { [try store.datanet(DatanetID($0))] } ?? store.datanets()
            return try datanets
                .filter { try store.canRead($0.id, by: caller) && (list.owner == nil || $0.owner.rawValue == list.owner) }
                .map { datanet in
                    let counts = try store.recordCounts(in: datanet.id)
                    return Wire.DatanetSummary(
                        datanet: Wire.Datanet(datanet), versions: try store.versions(of: datanet.id).map(Wire.DatanetVersion.init),
                        pending: UInt32(clamping: counts[.pending] ?? 0), approved: UInt32(clamping: counts[.approved] ?? 0),
                        rejected: UInt32(clamping: counts[.rejected] ?? 0))
                }
        }
    }

    /// Whose turn this request's compute work waits for: the contributor's, or the anonymous connections'.
    var computeBucket: ComputeBucket { ComputeBucket(contributor) }

    func requireContributor() throws -> ContributorID {
        guard let contributor else {
            throw RequestFailure(.unauthenticated, "this request changes state: connect with a contributor token")
        }
        return contributor
    }
}
