import Attribution
import Foundation
import LlamaModel
import SampleCorpus
import Serving
import Store
import Testing
import TributaryClient
import WireProtocol

/// The committed built-in base model: attribution needs a real adapter trained on real records.
let baseModelFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../models/tributary-base").standardized.path

/// A server on the built-in base with an adapter trained and indexed by the store's own jobs (as an engine runs
/// them): two domains, each a published datanet of its own contributor; the server's contributor owns the
/// recipes datanet and the adapter, and an operator has deposited ``ownerFunds`` to their account.
struct AttributedServer {
    let server: TestServer
    let generator: TextGenerator
    let adapter: AdapterID
    let forecaster: (id: ContributorID, token: String)
    /// An operator: may deposit.
    let treasurer: (id: ContributorID, token: String)
    let versions: [CorpusDomain: DatanetVersionRef]
    static let corpus = SampleCorpus(seed: 11)
    /// What the server's contributor may spend on fees.
    static let ownerFunds: Int64 = 5_000_000
    var corpus: SampleCorpus { Self.corpus }

    static func start(indexed: Bool = true) async throws -> AttributedServer {
        let generator = try TextGenerator(folder: baseModelFolder)
        let server = try await TestServer.start(generator: generator)
        let store = server.store
        let forecaster = try store.createContributor(displayName: "forecaster")
        let treasurer = try store.createContributor(displayName: "treasurer", role: .operator)
        _ = try store.deposit(ownerFunds, to: server.contributor, by: treasurer.contributor.id, idempotencyKey: "fixture")
        var versions: [CorpusDomain: DatanetVersionRef] = [:]
        for (domain, owner) in [(CorpusDomain.recipes, server.contributor), (.forecasts, forecaster.contributor.id)] {
            let datanet = try store.createDatanet(NewDatanet(name: "\(domain.rawValue)-notes", license: "MIT"), owner: owner)
            for record in AttributedServer.corpus.records(domain, count: 4, contributor: "x", maxBytes: 160) {
                let stored = try store.contribute(.text(bytes: Array(record.text.utf8)), to: datanet.id, by: owner)
                try store.review(stored.id, by: owner, .approve)
            }
            versions[domain] = try store.publishVersion(of: datanet.id, by: owner).ref
        }
        // The data-directory convention: the work folder is the store's directory.
        let runner = JobRunner(store: store, model: generator.model, modelFolder: baseModelFolder, workFolder: server.directory.path)
        func run(_ spec: JobSpecification) throws {
            let job = try store.submitJob(NewJob(kind: spec.kind, specification: try spec.encoded()), by: server.contributor)
            let ended = try runner.run(try store.startJob(job.id, engine: "test", leaseDuration: 600))
            guard ended.state == .succeeded else { throw FixtureError("\(spec.kind) job failed: \(ended.error ?? "")") }
        }
        try run(.train(TrainJob(
            adapterName: "served", versions: [versions[.recipes]!, versions[.forecasts]!], rank: 4, alpha: 8,
            learningRate: 3e-3, steps: 4, batchSize: 4, sequenceLength: 256, seed: 5, checkpointEvery: 2)))
        let adapter = try #require(try store.adapters(owner: server.contributor).first).id
        if indexed { try run(.index(IndexJob(adapter: adapter))) }
        return AttributedServer(
            server: server, generator: generator, adapter: adapter, forecaster: (forecaster.contributor.id, forecaster.token),
            treasurer: (treasurer.contributor.id, treasurer.token), versions: versions)
    }

    /// A forecast record's first bytes: a prompt whose continuation the forecasts shaped.
    var forecastPrompt: String { String(corpus.records(.forecasts, count: 1, contributor: "x", maxBytes: 160)[0].text.prefix(40)) }
}

/// A fixture that could not be set up, or a reply of the wrong kind.
struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func attributedInfer(
    _ prompt: String, adapter: AdapterID, method: Wire.AttributionMethod, fee: Int64, topRecords: UInt32 = 3,
    idempotencyKey: String = ""
) -> Message {
    .infer(Wire.Infer(
        adapter: adapter.rawValue, prompt: prompt, maxTokens: 6, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [],
        method: method, topRecords: topRecords, fee: fee, idempotencyKey: idempotencyKey))
}

/// Every reply of one request, in order, up to its FINAL one.
func replies(_ stream: ReplyStream) async throws -> [Message] {
    var all: [Message] = []
    for try await reply in stream { all.append(reply) }
    return all
}

extension ProcessWideSuites {
    @Suite(.serialized) struct AttributionServingTests {
        @Test("A paid, attributed inference streams tokens, INFER_END, ATTRIBUTION and REWARD_SPLIT, recorded once and verifiable on the ledger")
        func paidInference() async throws {
            let fixture = try await AttributedServer.start()
            let server = fixture.server
            let connection = try await server.connect()
            _ = try await connection.call(.adapterLoad(Wire.AdapterLoad(adapter: fixture.adapter.rawValue)))
            let prompt = fixture.forecastPrompt

            let inferStream = try await connection.stream(attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 1_000_000))
            let all = try await replies(inferStream)
            let tokens = all.compactMap { if case .token(let token) = $0, token.token != UInt32.max { Int(token.token) } else { nil } }
            guard all.count == tokens.count + 3, case .inferEnd(let end) = all[tokens.count],
                case .attribution(let attribution) = all[tokens.count + 1], case .rewardSplit(let split) = all[tokens.count + 2]
            else {
                Issue.record("expected tokens, INFER_END, ATTRIBUTION, REWARD_SPLIT; got \(all.map(\.type))")
                return
            }
            #expect(Int(end.completionTokens) == tokens.count && !tokens.isEmpty)

            // The same attribution as the library computes in process for the same output.
            let local = try InferencePipeline(store: server.store, generator: fixture.generator).attribute(
                adapter: fixture.adapter, prompt: prompt, completion: tokens, method: .gradCos, topRecords: 3)
            #expect(attribution.method == .gradcos)
            #expect(attribution.top.map(\.record) == local.records.map { Int64($0.record.id)! })
            #expect(attribution.top.map(\.score) == local.records.map(\.score))
            #expect(attribution.negative.map(\.score) == local.opposingRecords.map(\.score))
            #expect(attribution.negative.allSatisfy { $0.score < 0 } && attribution.top.count == 3)
            #expect(abs(attribution.contributors.reduce(0) { $0 + $1.share } - 1) < 1e-9)
            #expect(abs(attribution.datanets.reduce(0) { $0 + $1.share } - 1) < 1e-9)
            #expect(Set(attribution.datanets.map(\.datanet)) == Set(fixture.versions.values.map(\.datanet.rawValue)))

            // Recorded once under this connection's request, and paid: the split adds up and ends at the ledger's head.
            let inference = try #require(attribution.inference)
            #expect(split.inference == inference && split.fee == 1_000_000)
            #expect(split.contributorPool + split.owner + split.protocolShare == split.fee)
            #expect(split.payouts.reduce(0) { $0 + $1.paid } + split.forfeited == split.contributorPool)
            let head = try #require(try server.store.ledgerHead())
            #expect(split.ledgerHead == Wire.LedgerHead(seq: head.seq, hash: Array(head.hash)))
            #expect(try server.store.inference(InferenceID(inference)).requestID.hasSuffix("/\(inferStream.requestID)"))
            #expect(try server.store.inferenceCount() == 1)

            // The chain verifies against the client's anchor, and a forged anchor is named.
            guard case .ledgerVerification(let verified) = try await connection.call(.ledgerVerify(Wire.LedgerVerify(anchors: [split.ledgerHead]))),
                case .ledgerVerification(let forged) = try await connection.call(
                    .ledgerVerify(Wire.LedgerVerify(anchors: [Wire.LedgerHead(seq: head.seq, hash: [UInt8](repeating: 7, count: 32))])))
            else {
                Issue.record("expected LEDGER_VERIFICATION")
                return
            }
            #expect(verified.checked == UInt64(head.seq) && verified.head == split.ledgerHead && verified.broken == nil)
            #expect(forged.broken?.kind == .anchorMismatch && forged.broken?.seq == head.seq)

            // ATTRIBUTE of the past inference (by its id) gives what was recorded.
            let recorded = try server.store.inference(InferenceID(inference))
            guard case .attribution(let past) = try await connection.call(.attribute(Wire.Attribute(
                target: .inference(Wire.InferenceTarget(requestId: "\(inference)")), method: .off, topRecords: 2, allScores: false)))
            else {
                Issue.record("expected ATTRIBUTION")
                return
            }
            #expect(past.inference == inference && past.method == .gradcos && past.top.count == 2)
            #expect(past.top.map(\.score) == recorded.recordShares.map(\.share).sorted(by: >).prefix(2).map { $0 })
            #expect(past.contributors.map(\.share) == recorded.contributorShares.map(\.share))
            // ... and by its recorded request id.
            guard case .attribution(let byRequest) = try await connection.call(.attribute(Wire.Attribute(
                target: .inference(Wire.InferenceTarget(requestId: recorded.requestID)), method: .off, topRecords: 2, allScores: false)))
            else {
                Issue.record("expected ATTRIBUTION")
                return
            }
            #expect(byRequest == past)

            // ATTRIBUTE of the text: every training record's score in training order, no inference recorded.
            let output = all.map { if case .token(let token) = $0 { token.text } else { "" } }.joined()
            guard case .attribution(let text) = try await connection.call(.attribute(Wire.Attribute(
                target: .text(Wire.TextTarget(adapter: fixture.adapter.rawValue, prompt: prompt, completion: output)), method: .gradcos,
                topRecords: 3, allScores: true)))
            else {
                Issue.record("expected ATTRIBUTION")
                return
            }
            let scores = try #require(text.allScores)
            let trainingOrder = try fixture.versions.keys.sorted().flatMap { try server.store.recordIDs(in: fixture.versions[$0]!) }
            #expect(scores.shape == [trainingOrder.count] && text.inference == nil)
            #expect(text.top == attribution.top && text.negative == attribution.negative)
            let best = scores.values.indices.max { scores.values[$0] < scores.values[$1] }!
            #expect(trainingOrder[best].rawValue == text.top[0].record)
            #expect(try server.store.inferenceCount() == 1)

            // A cancelled attributed inference ends at INFER_END, neither recorded nor paid.
            let slow = try await server.connect(streamCredits: 1)
            var request = attributedInfer(prompt, adapter: fixture.adapter, method: .gradcos, fee: 1_000_000)
            if case .infer(var infer) = request { infer.maxTokens = 200; request = .infer(infer) }
            let cancelled = try await slow.stream(request)
            var cancelledReplies: [Message] = []
            for try await reply in cancelled {
                if cancelledReplies.isEmpty { try await slow.cancel(cancelled.requestID) }
                cancelledReplies.append(reply)
            }
            guard case .inferEnd(let cancelledEnd) = cancelledReplies.last else {
                Issue.record("expected INFER_END last, got \(cancelledReplies.map(\.type))")
                return
            }
            #expect(cancelledEnd.stopReason == .cancelled && cancelledEnd.completionTokens < 200)
            #expect(try server.store.inferenceCount() == 1 && server.store.ledgerHead() == head)
            await slow.close()

            await connection.close()
            try await server.stop()
        }

        @Test("Attribution and fees are refused, before generation, where they cannot be honoured")
        func refusals() async throws {
            let fixture = try await AttributedServer.start(indexed: false)
            let server = fixture.server
            let connection = try await server.connect()
            _ = try await connection.call(.adapterLoad(Wire.AdapterLoad(adapter: fixture.adapter.rawValue)))
            let anonymous = try await server.connect(token: "")
            let cases: [(TributaryConnection, Message, ErrorCode)] = [
                (connection, attributedInfer("x", adapter: fixture.adapter, method: .tracin, fee: 0), .failedPrecondition),
                (connection, attributedInfer("x", adapter: fixture.adapter, method: .off, fee: 5), .invalidArgument),
                (connection, attributedInfer("x", adapter: fixture.adapter, method: .tracin, fee: -1), .invalidArgument),
                (connection, attributedInfer("x", adapter: fixture.adapter, method: .tracin, fee: .max), .invalidArgument),
                (connection, attributedInfer("x", adapter: fixture.adapter, method: .tracin, fee: 5, idempotencyKey: "a\u{7}"), .invalidArgument),
                (anonymous, attributedInfer("x", adapter: fixture.adapter, method: .tracin, fee: 0, idempotencyKey: "k"), .unauthenticated),
                (anonymous, attributedInfer("x", adapter: fixture.adapter, method: .tracin, fee: 5), .unauthenticated),
                (connection, inferRequest("x", maxTokens: 2).withMethod(.gradcos), .invalidArgument),
                (connection, .jobSubmit(Wire.JobSubmit(spec: .index(Wire.IndexSpec(adapter: 1, method: .tracin, projectionDim: 0)))), .failedPrecondition),
                (connection, .engineHeartbeat(Wire.EngineHeartbeat(engine: 1, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: [])), .failedPrecondition),
            ]
            for (client, request, code) in cases {
                let error = await #expect(throws: ServerError.self) { _ = try await client.call(request) }
                #expect(error?.errorCode == code, "\(request.type): \(error?.message ?? "")")
                if request.type == .jobSubmit { #expect(error?.message.contains("send it to the coordinator") == true) }
            }
            #expect(try server.store.inferenceCount() == 0)
            await anonymous.close()
            await connection.close()
            try await server.stop()
        }

        @Test("CURATE by the adapter's owner: a dry run flags nothing, apply flags the most harmful records once")
        func curation() async throws {
            let fixture = try await AttributedServer.start()
            let server = fixture.server
            let store = server.store
            // The evaluation set: another domain, published by the adapter's owner.
            let evaluation = try store.createDatanet(NewDatanet(name: "astronomy-eval", license: "MIT"), owner: server.contributor)
            for record in fixture.corpus.records(.astronomy, count: 2, contributor: "x", maxBytes: 160) {
                try store.review(try store.contribute(.text(bytes: Array(record.text.utf8)), to: evaluation.id, by: server.contributor).id, by: server.contributor, .approve)
            }
            let version = try store.publishVersion(of: evaluation.id, by: server.contributor).ref
            func curate(apply: Bool) -> Message {
                .curate(Wire.Curate(
                    adapter: fixture.adapter.rawValue, evaluation: Wire.VersionRef(datanet: version.datanet.rawValue, number: UInt32(version.number)),
                    method: .tracin, maxFlags: 2, points: 3, apply: apply))
            }
            let local = try InferencePipeline(store: store, generator: fixture.generator)
                .curate(adapter: fixture.adapter, evaluation: version, method: .tracIn)
            let expected = local.harmfulRecords.prefix(2).map { Int64($0.record.id)! }
            #expect(!expected.isEmpty, "the fixture has harmful records to flag")

            let connection = try await server.connect()
            guard case .curationReport(let dryRun) = try await connection.call(curate(apply: false)) else {
                Issue.record("expected CURATION_REPORT")
                return
            }
            #expect(dryRun.evaluated == 8 && !dryRun.applied && dryRun.flagged.map(\.record) == expected)
            #expect(dryRun.flagged.map(\.score) == local.harmfulRecords.prefix(2).map(\.score))
            #expect(try store.penalties(of: server.contributor).isEmpty && store.penalties(of: fixture.forecaster.id).isEmpty)

            guard case .curationReport(let applied) = try await connection.call(curate(apply: true)) else {
                Issue.record("expected CURATION_REPORT")
                return
            }
            #expect(applied.applied && applied.flagged.map(\.record) == expected)
            let flags = try store.penalties(of: server.contributor) + store.penalties(of: fixture.forecaster.id)
            #expect(Set(flags.map(\.record.rawValue)) == Set(expected) && flags.allSatisfy { $0.points == 3 })
            // Again: nothing is flagged twice.
            _ = try await connection.call(curate(apply: true))
            #expect(try (store.penalties(of: server.contributor) + store.penalties(of: fixture.forecaster.id)).count == flags.count)

            // A contributor with no stake in the adapter's data may not curate it.
            let stranger = try await server.connect(token: try store.createContributor(displayName: "stranger").token)
            let refused = await #expect(throws: ServerError.self) { _ = try await stranger.call(curate(apply: false)) }
            #expect(refused?.errorCode == .permissionDenied)
            await stranger.close()
            await connection.close()
            try await server.stop()
        }
    }
}

extension Message {
    /// This INFER with another attribution method.
    func withMethod(_ method: Wire.AttributionMethod) -> Message {
        guard case .infer(var infer) = self else { return self }
        infer.method = method
        return .infer(infer)
    }
}
