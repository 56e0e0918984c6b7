import Attribution
import Foundation
import LlamaModel
import SampleCorpus
import Store
import Testing
import Training

@testable import Serving

/// The committed built-in base model.
let baseModelFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../models/tributary-base").standardized.path

/// A fresh store and work folder with two contributors, each owning a published datanet of one domain.
struct Flywheel {
    let folder: URL
    let store: Store
    let runner: JobRunner
    let owners: [CorpusDomain: ContributorID]
    let versions: [CorpusDomain: DatanetVersionRef]

    init(domains: [CorpusDomain] = [.recipes, .forecasts], recordsPerDomain: Int = 8) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("serving-\(UUID().uuidString)")
        store = try Store(directory: folder.appendingPathComponent("store"))
        runner = JobRunner(
            store: store, model: try LlamaModel(folder: baseModelFolder), modelFolder: baseModelFolder,
            workFolder: folder.appendingPathComponent("work").path)
        var owners: [CorpusDomain: ContributorID] = [:]
        var versions: [CorpusDomain: DatanetVersionRef] = [:]
        let corpus = SampleCorpus(seed: 11)
        for domain in domains {
            let owner = try store.createContributor(displayName: "\(domain.rawValue) contributor").contributor.id
            let datanet = try store.createDatanet(NewDatanet(name: "\(domain.rawValue)-notes", license: "CC-BY-4.0"), owner: owner)
            for record in corpus.records(domain, count: recordsPerDomain, contributor: "\(owner.rawValue)", maxBytes: 160) {
                let stored = try store.contribute(.text(bytes: Array(record.text.utf8)), to: datanet.id, by: owner)
                _ = try store.review(stored.id, by: owner, .approve)
            }
            owners[domain] = owner
            versions[domain] = try store.publishVersion(of: datanet.id, by: owner).ref
        }
        self.owners = owners
        self.versions = versions
    }

    func trainJob(name: String, steps: Int, checkpointEvery: Int) -> TrainJob {
        TrainJob(
            adapterName: name, versions: versions.keys.sorted().map { versions[$0]! }, rank: 4, alpha: 8, learningRate: 3e-3,
            steps: steps, batchSize: 4, sequenceLength: 256, seed: 5, checkpointEvery: checkpointEvery)
    }

    func submit(_ spec: JobSpecification, by owner: ContributorID) throws -> Job {
        try store.submitJob(NewJob(kind: spec.kind, specification: try spec.encoded()), by: owner)
    }

    func remove() { try? FileManager.default.removeItem(at: folder) }
}

@Suite("Serving: jobs under their lease, and inference to the ledger")
struct ServingTests {
    @Test("A training job trains on the store's versions, records checkpoints, and its index job indexes every record")
    func trainThenIndex() throws {
        let flywheel = try Flywheel()
        defer { flywheel.remove() }
        let owner = flywheel.owners[.recipes]!
        let train = try flywheel.submit(.train(flywheel.trainJob(name: "two-domains", steps: 4, checkpointEvery: 2)), by: owner)
        let trained = try flywheel.runner.run(try flywheel.store.startJob(train.id, engine: "engine-a", leaseDuration: 600))
        #expect(trained.state == .succeeded, "\(trained.error ?? "")")
        let adapter = try #require(try flywheel.store.adapters(owner: owner).first)
        #expect(try flywheel.store.checkpoints(of: adapter.id).map(\.step) == [2, 4])
        let kinds = try flywheel.store.jobEvents(of: train.id).map(\.kind)
        #expect(kinds.filter { $0 == .progress }.count == 4)
        #expect(kinds.filter { $0 == .checkpoint }.count == 2)
        #expect(kinds.last == .done)

        let index = try flywheel.submit(.index(IndexJob(adapter: adapter.id)), by: owner)
        let indexed = try flywheel.runner.run(try flywheel.store.startJob(index.id, engine: "engine-b", leaseDuration: 600))
        #expect(indexed.state == .succeeded, "\(indexed.error ?? "")")
        let location = try #require(try flywheel.store.adapter(adapter.id).gradientIndexLocation)
        let built = try GradientIndex(folder: location)
        #expect(built.records.count == 16)
        #expect(built.checkpoints.count == 2)
    }

    @Test("An attempt that loses its lease mid-training stops; the retry on another engine resumes from the last checkpoint and ends with the uninterrupted run's weights")
    func retryResumesFromCheckpoint() throws {
        let flywheel = try Flywheel()
        defer { flywheel.remove() }
        let owner = flywheel.owners[.forecasts]!
        let steps = 24
        let straight = try flywheel.submit(.train(flywheel.trainJob(name: "straight", steps: steps, checkpointEvery: 3)), by: owner)
        #expect(try flywheel.runner.run(try flywheel.store.startJob(straight.id, engine: "engine-a", leaseDuration: 600)).state == .succeeded)

        let interrupted = try flywheel.submit(.train(flywheel.trainJob(name: "interrupted", steps: steps, checkpointEvery: 3)), by: owner)
        let first = try flywheel.store.startJob(interrupted.id, engine: "engine-a", leaseDuration: 600)
        let store = flywheel.store
        // The engine goes silent right after its first checkpoint: the coordinator expires its lease. A thread
        // of its own polls, so that the training on this one cannot starve it.
        let expired = DispatchSemaphore(value: 0)
        let later = Date().addingTimeInterval(3600)
        Thread.detachNewThread {
            while (try? store.job(interrupted.id).checkpoint) == nil { usleep(500) }
            _ = try? store.expireLeases(retry: RetryPolicy(base: 0), now: later)
            expired.signal()
        }
        let firstEnd = Result { try flywheel.runner.run(first, retry: RetryPolicy(base: 0)) }
        expired.wait()
        #expect(throws: StoreError.self) { try firstEnd.get() }
        let requeued = try store.job(interrupted.id)
        #expect(requeued.state == .queued)
        let checkpoint = try #require(requeued.checkpoint)
        #expect(!checkpoint.hasSuffix("checkpoint-\(steps)"))

        let second = try store.startJob(interrupted.id, engine: "engine-b", leaseDuration: 600, now: later)
        #expect(second.attempt == 2)
        #expect(try flywheel.runner.run(second).state == .succeeded)
        let resumedSteps = try store.jobEvents(of: interrupted.id).filter { $0.kind == .progress && $0.attempt == 2 }.count
        #expect(resumedSteps < steps)

        let adapters = try store.adapters(owner: owner)
        let config = flywheel.runner.model.config
        let weights = try adapters.map { try LoRAAdapter(folder: flywheel.runner.adapterFolder($0.id), model: config) }
        #expect(weights.count == 2)
        for (layer, pairs) in weights[0].pairs.enumerated() {
            for (target, pair) in pairs {
                let other = weights[1].pairs[layer][target]!
                #expect(pair.a.scalars == other.a.scalars && pair.b.scalars == other.b.scalars, "layer \(layer) \(target)")
            }
        }
    }

    @Test("A cancelled running job stops at its next step and ends cancelled")
    func cancellation() throws {
        let flywheel = try Flywheel(domains: [.football], recordsPerDomain: 4)
        defer { flywheel.remove() }
        let owner = flywheel.owners[.football]!
        let job = try flywheel.submit(.train(flywheel.trainJob(name: "cancelled", steps: 3, checkpointEvery: 0)), by: owner)
        let lease = try flywheel.store.startJob(job.id, engine: "engine-a", leaseDuration: 600)
        _ = try flywheel.store.cancelJob(job.id, by: owner)
        #expect(try flywheel.runner.run(lease).state == .cancelled)
        #expect(try flywheel.store.jobEvents(of: job.id).filter { $0.kind == .progress }.isEmpty)
    }

    @Test("A bad specification fails the attempt with a message naming it")
    func badSpecification() throws {
        let flywheel = try Flywheel(domains: [.astronomy], recordsPerDomain: 2)
        defer { flywheel.remove() }
        let owner = flywheel.owners[.astronomy]!
        let job = try flywheel.store.submitJob(NewJob(kind: .train, specification: Data(#"{"train":{}}"#.utf8), maxAttempts: 1), by: owner)
        let ended = try flywheel.runner.run(try flywheel.store.startJob(job.id, engine: "engine-a", leaseDuration: 600))
        #expect(ended.state == .failed)
        #expect(ended.error?.contains("specification") == true)
    }

    @Test("A job out of bounds, or over the engine's memory budget, fails its attempt with a message before it touches a file")
    func boundsAndBudget() throws {
        let flywheel = try Flywheel(domains: [.astronomy], recordsPerDomain: 2)
        defer { flywheel.remove() }
        let owner = flywheel.owners[.astronomy]!
        let work = flywheel.runner.workFolder
        let config = flywheel.runner.model.config
        // A sane job fits the default budget with room to spare; an absurd one does not fit any machine.
        let sane = flywheel.trainJob(name: "sane", steps: 2, checkpointEvery: 0)
        #expect(try MemoryEstimate.training(sane, model: config).bytes < Double(1 << 30))
        var absurd = sane
        absurd.rank = 1024
        absurd.batchSize = 4096
        absurd.sequenceLength = 65_536
        absurd.targets = ["all-linear"]
        #expect(try MemoryEstimate.training(absurd, model: config).bytes > Double(UInt64(1) << 40))

        // Out of bounds, written to the store by other means than JobSubmit: refused by the runner too.
        var outOfBounds = sane
        outOfBounds.rank = 0
        let bad = try flywheel.submit(.train(outOfBounds), by: owner)
        let refused = try flywheel.runner.run(try flywheel.store.startJob(bad.id, engine: "engine-a", leaseDuration: 600))
        #expect(refused.state == .queued && refused.error == "rank: 0 is out of range 1 to 1024")

        // Within bounds, over this engine's budget: refused with the estimate, on every engine with that budget.
        let small = JobRunner(
            store: flywheel.store, model: flywheel.runner.model, modelFolder: baseModelFolder, workFolder: work, memoryBudget: 1 << 20)
        let big = try flywheel.submit(.train(absurd), by: owner)
        let over = try small.run(try flywheel.store.startJob(big.id, engine: "engine-a", leaseDuration: 600))
        #expect(over.state == .queued)
        #expect(over.error?.hasPrefix("training rank 1024, batch 4096 of 65536 tokens needs about ") == true, "\(over.error ?? "")")
        #expect(over.error?.hasSuffix("more than this engine's memory budget of 1.0 MiB") == true, "\(over.error ?? "")")
        #expect(!FileManager.default.fileExists(atPath: work), "nothing was written to the work folder")
        #expect(try flywheel.store.adapters(owner: owner).isEmpty)
    }

    @Test("Inference is attributed to its domain's contributor, recorded, and its fee split on the ledger")
    func inferenceSettles() throws {
        let flywheel = try Flywheel(recordsPerDomain: 6)
        defer { flywheel.remove() }
        let owner = flywheel.owners[.recipes]!
        let train = try flywheel.submit(.train(flywheel.trainJob(name: "settled", steps: 6, checkpointEvery: 3)), by: owner)
        #expect(try flywheel.runner.run(try flywheel.store.startJob(train.id, engine: "e", leaseDuration: 600)).state == .succeeded)
        let adapter = try #require(try flywheel.store.adapters(owner: owner).first).id
        let index = try flywheel.submit(.index(IndexJob(adapter: adapter)), by: owner)
        #expect(try flywheel.runner.run(try flywheel.store.startJob(index.id, engine: "e", leaseDuration: 600)).state == .succeeded)

        let pipeline = InferencePipeline(store: flywheel.store, generator: try TextGenerator(folder: baseModelFolder))
        // A training record's own text, as a prompt and completion: its contributor must dominate.
        let text = SampleCorpus(seed: 11).records(.forecasts, count: 1, contributor: "x", maxBytes: 160)[0].text
        let split = text.index(text.startIndex, offsetBy: 30)
        let completion = Array(text[split...].utf8).map(Int.init)
        // The fee is paid from an account an operator credited.
        let payer = try flywheel.store.createContributor(displayName: "Payer").contributor.id
        let treasurer = try flywheel.store.createContributor(displayName: "Treasurer", role: .operator).contributor.id
        _ = try flywheel.store.deposit(1_500_000, to: payer, by: treasurer, idempotencyKey: "fund")
        let (attribution, receipt) = try pipeline.settle(
            requestID: "req-1", adapter: adapter, prompt: String(text[..<split]), output: String(text[split...]),
            completion: completion, method: .gradCos, fee: 1_000_000, payer: payer)
        #expect(attribution.contributors.first?.name == "\(flywheel.owners[.forecasts]!.rawValue)")
        #expect(abs(attribution.contributors.reduce(0) { $0 + $1.share } - 1) < 1e-9)
        #expect(receipt.inference.fee == 1_000_000)
        #expect(receipt.entries.reduce(0) { $0 + $1.signedAmount } == 0)
        #expect(receipt.entries.filter { !$0.kind.isDebit }.reduce(0) { $0 + $1.amount } == 1_000_000)
        #expect(try flywheel.store.balance(of: .contributor(payer)) == 500_000)
        let ownerShare = receipt.entries.filter { $0.kind == .ownerShare }.reduce(0) { $0 + $1.amount }
        let forecasts = try flywheel.store.balance(of: .contributor(flywheel.owners[.forecasts]!))
        let recipes = try flywheel.store.balance(of: .contributor(flywheel.owners[.recipes]!))
        #expect(forecasts > recipes - ownerShare)
        #expect(throws: StoreError.self) {
            try pipeline.settle(
                requestID: "req-1", adapter: adapter, prompt: "x", output: String(text[split...]), completion: completion,
                method: .gradCos, fee: 1, payer: payer)
        }
        #expect(try flywheel.store.verifyLedger().isValid)

        // Given the ids generation ran on (a rendered chat's), attribution scores those, not the text encoded again.
        let prompt = String(text[..<split])
        let encoded = pipeline.generator.promptPrefix + pipeline.generator.tokenizer.promptTokens(prompt)
        func scores(_ prompt: String, _ tokens: [Int]?) throws -> [Float] {
            try pipeline.scoredAttribution(
                adapter: adapter, prompt: prompt, promptTokens: tokens, completion: completion, method: .gradCos, topRecords: 3
            ).scores
        }
        let fromText = try scores(prompt, nil)
        #expect(try scores("not what ran", encoded) == fromText)
        #expect(try scores(prompt, Array(encoded.dropFirst(8))) != fromText)
    }
}
