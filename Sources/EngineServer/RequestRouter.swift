import Foundation
import LlamaModel
import NIOCore
import ProtocolServer
import Store
import WireProtocol

/// Maps each catalogue request to library calls. The connection's authenticated contributor (nil for an
/// anonymous connection) is checked here for every request that changes something.
struct RequestRouter: Sendable {
    let engine: Engine
    let contributor: ContributorID?
    let allowsSignUp: Bool
    let startedAt: ContinuousClock.Instant
    let isDraining: @Sendable () -> Bool

    /// Answers `request`; every failure becomes an ERROR frame on its request id.
    func handle(_ request: Message, replier: Replier) async {
        do {
            try await respond(to: request, replier: replier)
        } catch is CancellationError where replier.stream.isCancelled {
            // A request the client cancelled before it could answer (inference answers INFER_END itself).
            try? await replier.fail(RequestFailure(.cancelled, "the request was cancelled"))
        } catch {
            try? await replier.fail(RequestFailure(error))
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
                    connections: UInt32(stats.connections), requestsInFlight: UInt32(stats.requestsInFlight),
                    requestsCompleted: stats.requestsCompleted, tokensGenerated: stats.tokensGenerated,
                    adaptersLoaded: UInt32(engine.residentAdapterIDs.count), jobsQueued: 0, jobsRunning: 0,
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
            _ = try requireContributor()
            let bytes = try await engine.loadAdapter(AdapterID(load.adapter))
            try await replier.finish(.adapterState(Wire.AdapterState(adapter: load.adapter, loaded: true, residentBytes: UInt64(bytes))))
        case .adapterUnload(let unload):
            _ = try requireContributor()
            guard engine.unloadAdapter(AdapterID(unload.adapter)) else {
                throw RequestFailure(.notFound, "adapter \(unload.adapter) is not loaded")
            }
            try await replier.finish(.adapterState(Wire.AdapterState(adapter: unload.adapter, loaded: false, residentBytes: 0)))
        case .infer(let infer):
            try await InferenceStream(engine: engine, request: infer, replier: replier).run()
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
        case .ledgerEntries(let query):
            let entries = try await engine.withStore { store -> [LedgerEntry] in
                if let inference = query.inference {
                    return try store.ledgerEntries(for: InferenceID(inference)).filter { $0.seq > query.afterSeq }
                }
                return try store.ledgerEntries(after: query.afterSeq, limit: Int(min(query.limit, 10_000)))
            }
            try await replier.finish(.ledgerPage(Wire.LedgerPage(entries: entries.map(Wire.LedgerEntry.init))))
        case .export, .jobSubmit, .jobStatus, .jobEvents, .jobCancel, .attribute, .curate, .ledgerVerify,
            .engineRegister, .engineHeartbeat:
            throw RequestFailure(.failedPrecondition, "\(request.type) is not supported by this engine yet")
        default:
            throw RequestFailure(.invalidMessage, "\(request.type) is not a request")
        }
    }

    private func requireContributor() throws -> ContributorID {
        guard let contributor else {
            throw RequestFailure(.unauthenticated, "this request changes state: connect with a contributor token")
        }
        return contributor
    }
}

/// One INFER: tokens stream back as TOKEN frames (one credit each) while generation runs on the compute pool,
/// then INFER_END carries the usage. A CANCEL stops generation after its current token and still ends with
/// INFER_END (stop reason `cancelled`).
struct InferenceStream {
    let engine: Engine
    let request: Wire.Infer
    let replier: Replier

    func run() async throws {
        guard request.method == .off, request.fee == 0 else {
            throw RequestFailure(.failedPrecondition, "attribution is not available on this engine (no Attribution module): send method off and fee 0")
        }
        guard request.stop.isEmpty else {
            throw RequestFailure(.failedPrecondition, "stop sequences are not supported yet: send an empty stop list")
        }
        let adapter = try request.adapter.map { id in
            guard let adapter = engine.residentAdapter(AdapterID(id)) else {
                throw RequestFailure(.notFound, "adapter \(id) is not loaded (send ADAPTER_LOAD first)")
            }
            return adapter
        }
        let options = GenerationOptions(
            maxNewTokens: Int(request.maxTokens),
            sampling: SamplingParameters(
                temperature: request.temperature, topK: request.topK == 0 ? nil : Int(request.topK), topP: request.topP,
                seed: request.seed))
        try options.validate()

        // Pieces wait here for credits: at most one per position of the context, so a slow reader holds a
        // bounded amount while generation finishes and frees its compute thread.
        let (pieces, continuation) = AsyncStream.makeStream(of: StreamedPiece.self)
        let stream = replier.stream
        let prompt = request.prompt
        async let generation: GenerationResult = {
            defer { continuation.finish() }
            return try await engine.generate(
                prompt: prompt, options: options, adapter: adapter, shouldStop: { stream.isCancelled },
                onPiece: { continuation.yield($0) })
        }()
        var sent: UInt32 = 0
        do {
            for await piece in pieces {
                // A piece without a token flushes an unfinished character at the end: it has no id.
                let token = Wire.Token(index: sent, token: piece.token.map { UInt32($0) } ?? UInt32.max, text: piece.text)
                try await replier.send(streamed: .token(token))
                sent += 1
            }
        } catch {
            // Cancelled (by CANCEL or by the connection closing): generation stops after its current token.
            stream.cancel()
        }
        let result = try await generation
        engine.statistics.tokensGenerated(result.tokens.count)
        try await replier.finish(
            .inferEnd(Wire.InferEnd(
                stopReason: Wire.StopReason(result.stopReason), promptTokens: UInt32(result.promptTokenCount),
                completionTokens: UInt32(result.tokens.count),
                promptUs: UInt64((result.timings.promptSeconds * 1e6).rounded()),
                generationUs: UInt64((result.timings.generationSeconds * 1e6).rounded()))))
    }
}
