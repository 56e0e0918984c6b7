import Foundation
import SampleCorpus
import Store
import TensorCore
import Testing
import TributaryClient
import WireProtocol

/// The whole loop on a small configuration, across a coordinator and two engines as processes, over the wire:
/// contribute (a copy refused), review and publish, train and index through the coordinator, a paid attributed
/// inference and its fee split, curation that flags records, and the ledger verified. `make demo` runs the same
/// loop at full size and also checks that each domain's contributor leads its output's attribution.
@Suite("Integration: the flywheel", .serialized)
struct FlywheelIntegrationTests {
    @Test("Contribute, curate, train, serve, attribute and reward, across processes")
    func flywheel() async throws {
        try await withCluster { cluster in
            try await cluster.startCoordinator()
            try await cluster.startEngine("engine-a")
            try await cluster.startEngine("engine-b")
            let enginePort = cluster.engines["engine-a"]!.port
            let writer = try await TributaryConnection.connect(host: "127.0.0.1", port: enginePort, token: cluster.token)
            let mallory = try await signUp("mallory", port: enginePort)
            let recipes = cluster.version.datanet.rawValue

            // mallory adds damaged recipes to the writer's public datanet; a copy of a record already there is refused.
            var random = SeededRandom(seed: 9)
            for record in SampleCorpus(seed: 4).records(.recipes, count: 3, contributor: "mallory", maxBytes: 60) {
                _ = try await mallory.call(.contribute(Wire.Contribute(
                    datanet: recipes, content: .text(Wire.TextRecord(text: Array(Damage.shuffledWords(record.text, &random).utf8))))))
            }
            let copied = try #require(cluster.recordTexts.first)
            let refused = await #expect(throws: ServerError.self) {
                _ = try await mallory.call(.contribute(Wire.Contribute(datanet: recipes, content: .text(Wire.TextRecord(text: Array(copied.utf8))))))
            }
            #expect(refused?.errorCode == .alreadyExists)

            // The owner approves what is pending and publishes version 2; a held-out datanet is published too.
            let training = try await approveAndPublish(recipes, on: writer)
            #expect(training.recordCount == 9)
            guard case .datanetInfo(let heldOut) = try await writer.call(.datanetCreate(Wire.DatanetCreate(
                name: "held-out", summary: "", description: "", tags: [], license: "CC-BY-4.0", visibility: .public)))
            else { throw ProcessFailure("DatanetCreate was not answered with DatanetInfo") }
            for record in SampleCorpus(seed: 5).records(.recipes, count: 3, contributor: "writer", maxBytes: 60) {
                _ = try await writer.call(.contribute(Wire.Contribute(datanet: heldOut.datanet.id, content: .text(Wire.TextRecord(text: Array(record.text.utf8))))))
            }
            let evaluation = try await approveAndPublish(heldOut.datanet.id, on: writer)

            // Train on version 2 and index it, through the coordinator.
            let coordinator = try await cluster.connect()
            let train = try await cluster.submit(
                .train(Wire.TrainSpec(
                    adapterName: "recipes-lora", baseModel: "", versions: [Wire.VersionRef(datanet: recipes, number: training.number)],
                    rank: 2, alpha: 4, targets: ["q", "v"], learningRate: 3e-3, steps: 6, epochs: 0, batchSize: 3, sequenceLength: 64,
                    seed: 1, checkpointEvery: 3)),
                on: coordinator)
            #expect(try await followEvents(of: train.id, on: coordinator).last?.kind == .done, "\(cluster.logs)")
            guard case .jobInfo(let trained) = try await coordinator.call(.jobStatus(Wire.JobStatus(job: train.id))),
                let adapter = trained.job.adapter
            else { throw ProcessFailure("the train job has no adapter") }
            let index = try await cluster.submit(.index(Wire.IndexSpec(adapter: adapter, method: .gradcos, projectionDim: 0)), on: coordinator)
            #expect(try await followEvents(of: index.id, on: coordinator).last?.kind == .done, "\(cluster.logs)")
            await coordinator.close()

            // A paid, attributed inference: tokens, usage, attribution, then the fee split, FINAL last. The fee is
            // paid from the writer's account, which an operator credits first.
            let treasurer = try cluster.store.createContributor(displayName: "treasurer", role: .operator).contributor.id
            _ = try cluster.store.deposit(10_000, to: cluster.contributor, by: treasurer, idempotencyKey: "flywheel")
            _ = try await writer.call(.adapterLoad(Wire.AdapterLoad(adapter: adapter)))
            var frames: [Message] = []
            for try await frame in try await writer.stream(.infer(Wire.Infer(
                adapter: adapter, prompt: "Braised beef", maxTokens: 12, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [],
                method: .gradcos, topRecords: 3, fee: 1_000, idempotencyKey: "")))
            {
                frames.append(frame)
            }
            let tokens = frames.filter { if case .token = $0 { true } else { false } }.count
            guard case .inferEnd(let end) = frames[tokens], case .attribution(let attribution) = frames[tokens + 1],
                case .rewardSplit(let split) = frames[tokens + 2], frames.count == tokens + 3
            else { throw ProcessFailure("the inference's frames: \(frames.map(\.type))") }
            #expect(Int(end.completionTokens) == tokens)
            #expect(abs(attribution.contributors.reduce(0) { $0 + $1.share } - 1) < 1e-9)
            #expect(attribution.top.count == 3 && attribution.inference == split.inference)
            #expect(split.fee == 1_000 && split.contributorPool + split.owner + split.protocolShare == split.fee)
            #expect(split.payouts.reduce(0) { $0 + $1.paid } + split.forfeited <= split.contributorPool)

            // Curation against the held-out records flags at most 3 records, and the store keeps the flags.
            guard case .curationReport(let report) = try await writer.call(.curate(Wire.Curate(
                adapter: adapter, evaluation: Wire.VersionRef(datanet: heldOut.datanet.id, number: evaluation.number), method: .datainf,
                maxFlags: 3, points: 5, apply: true)))
            else { throw ProcessFailure("Curate was not answered with CurationReport") }
            #expect(report.evaluated == 9 && report.applied && report.flagged.count <= 3)
            let contributors = Set(report.flagged.map(\.contributor))
            let stored = try contributors.flatMap { try cluster.store.penalties(of: ContributorID($0)) }
            #expect(Set(stored.map(\.record.rawValue)) == Set(report.flagged.map(\.record)))

            // The ledger's hash chain holds, checked by the engine.
            guard case .ledgerVerification(let verification) = try await writer.call(.ledgerVerify(Wire.LedgerVerify(anchors: [])))
            else { throw ProcessFailure("LedgerVerify was not answered with LedgerVerification") }
            #expect(verification.broken == nil && verification.checked > 0 && verification.head?.seq == split.ledgerHead.seq)
            #expect(verification.deposits == 10_000 && verification.balances == 10_000)
            await mallory.close()
            await writer.close()
        }
    }

    /// A new contributor, signed up over the wire and connected with the token it was given.
    func signUp(_ name: String, port: Int) async throws -> TributaryConnection {
        let anonymous = try await TributaryConnection.connect(host: "127.0.0.1", port: port)
        defer { Task { await anonymous.close() } }
        guard case .signedUp(let signed) = try await anonymous.call(.signUp(Wire.SignUp(displayName: name))) else {
            throw ProcessFailure("SignUp was not answered with SignedUp")
        }
        return try await TributaryConnection.connect(host: "127.0.0.1", port: port, token: signed.token)
    }

    /// Approves every pending record of `datanet` and publishes its next version.
    func approveAndPublish(_ datanet: Int64, on owner: TributaryConnection) async throws -> Wire.DatanetVersion {
        guard case .recordListing(let pending) = try await owner.call(.recordList(Wire.RecordList(datanet: datanet, status: .pending, after: 0, limit: 1000)))
        else { throw ProcessFailure("RecordList was not answered with RecordListing") }
        for record in pending.records {
            _ = try await owner.call(.review(Wire.Review(record: record.id, decision: .approve, note: nil)))
        }
        guard case .versionInfo(let version) = try await owner.call(.publish(Wire.Publish(datanet: datanet))) else {
            throw ProcessFailure("Publish was not answered with VersionInfo")
        }
        return version.version
    }
}
