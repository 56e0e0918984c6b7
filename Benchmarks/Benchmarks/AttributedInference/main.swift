// What attribution and a fee split add to one inference on the engine server: the built-in base with a LoRA
// adapter trained and indexed by the store's own jobs (two domains, 16 records each, 2 checkpoints), then INFER
// over loopback with method off, and with grad-cos, tracin and a fee (ATTRIBUTION and REWARD_SPLIT, the
// inference recorded and its fee split on the ledger), one request at a time. Prints median latencies and ratios.
//
// Run: cd Benchmarks && swift run -c release AttributedInference [path/to/models/tributary-base]
import Attribution
import EngineServer
import Foundation
import LlamaModel
import Logging
import SampleCorpus
import Serving
import Store
import TributaryClient
import WireProtocol

let (recordsPerDomain, newTokens, runs) = (16, 32, 25)

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func run() async throws {
    let modelFolder = CommandLine.arguments.dropFirst().first ?? "../models/tributary-base"
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attributed-inference-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = try Store(directory: directory)
    let generator = try TextGenerator(folder: modelFolder)

    // The fixture, as engines make it: published datanets, a train job, an index job.
    let owner = try store.createContributor(displayName: "owner")
    var versions: [DatanetVersionRef] = []
    let corpus = SampleCorpus(seed: 11)
    for domain in [CorpusDomain.recipes, .forecasts] {
        let datanet = try store.createDatanet(NewDatanet(name: "\(domain.rawValue)-notes", license: "MIT"), owner: owner.contributor.id)
        for record in corpus.records(domain, count: recordsPerDomain, contributor: "x", maxBytes: 160) {
            let stored = try store.contribute(.text(bytes: Array(record.text.utf8)), to: datanet.id, by: owner.contributor.id)
            try store.review(stored.id, by: owner.contributor.id, .approve)
        }
        versions.append(try store.publishVersion(of: datanet.id, by: owner.contributor.id).ref)
    }
    let runner = JobRunner(store: store, model: generator.model, modelFolder: modelFolder, workFolder: directory.path)
    func runJob(_ spec: JobSpecification) throws -> Job {
        let job = try store.submitJob(NewJob(kind: spec.kind, specification: try spec.encoded()), by: owner.contributor.id)
        return try runner.run(try store.startJob(job.id, engine: "bench", leaseDuration: 600))
    }
    _ = try runJob(.train(TrainJob(
        adapterName: "bench", versions: versions, rank: 8, alpha: 16, learningRate: 3e-3, steps: 8, batchSize: 8, seed: 5,
        checkpointEvery: 4)))
    let adapter = try store.adapters(owner: owner.contributor.id)[0].id
    let indexed = try runJob(.index(IndexJob(adapter: adapter)))
    guard indexed.state == .succeeded else { fatalError("the index job failed: \(indexed.error ?? "")") }

    var logger = Logger(label: "bench")
    logger.logLevel = .warning
    let engine = Engine(store: store, generator: generator, computeThreads: 1)
    let server = try await EngineServer.bind(ServerConfiguration(host: "127.0.0.1", port: 0), engine: engine, logger: logger)
    let serving = Task { try await server.run() }
    let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: server.localPort, token: owner.token)
    _ = try await connection.call(.adapterLoad(Wire.AdapterLoad(adapter: adapter.rawValue)))

    let prompt = String(corpus.records(.forecasts, count: 1, contributor: "x", maxBytes: 160)[0].text.prefix(40))
    func latency(_ method: Wire.AttributionMethod, fee: Int64) async throws -> Double {
        var seconds: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            for try await _ in try await connection.stream(.infer(Wire.Infer(
                adapter: adapter.rawValue, prompt: prompt, maxTokens: UInt32(newTokens), temperature: 0, topK: 0, topP: 1, seed: 0,
                stop: [], method: method, topRecords: 5, fee: fee, idempotencyKey: "")))
            {}
            let elapsed = ContinuousClock.now - start
            seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        return median(seconds)
    }
    _ = try await latency(.off, fee: 0)  // warm-up
    let plain = try await latency(.off, fee: 0)
    print("records \(2 * recordsPerDomain), checkpoints 2, new tokens \(newTokens), runs \(runs), median latency per request:")
    print(String(format: "  method off           %8.2f ms", plain * 1e3))
    for (name, method, fee) in [("gradcos", Wire.AttributionMethod.gradcos, Int64(0)), ("gradcos + fee", .gradcos, 1_000_000), ("tracin + fee", .tracin, 1_000_000)] {
        let attributed = try await latency(method, fee: fee)
        print("  " + name.padding(toLength: 20, withPad: " ", startingAt: 0)
            + String(format: " %8.2f ms  (%.2fx of off; attribution and settlement %.2f ms)", attributed * 1e3, attributed / plain, (attributed - plain) * 1e3))
    }

    // In process, where the attribution's time goes: opening the adapter's index (rows, checkpoints, adapters)
    // against the whole attribution of one 32-token output.
    let indexFolder = try store.adapter(adapter).gradientIndexLocation!
    let pipeline = InferencePipeline(store: store, generator: generator)
    let completion = try generator.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: newTokens)).tokens
    func seconds(_ body: () throws -> Void) rethrows -> Double {
        var samples: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            try body()
            let elapsed = ContinuousClock.now - start
            samples.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        return median(samples)
    }
    let open = try seconds {
        _ = try Attributor(
            index: try GradientIndex(folder: indexFolder), model: generator.model,
            adapterFolder: (indexFolder as NSString).deletingLastPathComponent)
    }
    let whole = try seconds {
        _ = try pipeline.attribute(adapter: adapter, prompt: prompt, completion: completion, method: .gradCos, topRecords: 5)
    }
    print(String(format: "in process: grad-cos attribution %.2f ms, of which opening the index %.2f ms", whole * 1e3, open * 1e3))
    await connection.close()
    server.shutdown()
    try await serving.value
}

try await run()
