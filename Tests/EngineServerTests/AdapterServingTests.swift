import Foundation
import LlamaModel
import Store
import TensorCore
import Testing
import TributaryClient
import WireProtocol

/// Several LoRA adapters resident on one base, each request naming its own (the mixed-adapter decode workload).
@Suite struct AdapterServingTests {
    /// A registered adapter whose latest checkpoint is a PEFT folder of a random adapter (non-zero B).
    func registerAdapter(_ name: String, seed: UInt64, on server: TestServer, model: LlamaModel, version: DatanetVersionRef)
        throws -> (id: AdapterID, adapter: LoRAAdapter)
    {
        var adapter = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, targets: LoRATarget.allCases), model: model.config, seed: seed)
        var random = SeededRandom(seed: seed + 1)
        for layer in adapter.pairs.indices {
            for target in adapter.pairs[layer].keys {
                adapter.pairs[layer][target]!.b = random.normalTensor(shape: adapter.pairs[layer][target]!.b.shape, standardDeviation: 0.5)
            }
        }
        let folder = server.directory.appendingPathComponent("adapters/\(name)").path
        try adapter.save(to: folder)
        let registered = try server.store.registerAdapter(
            NewAdapter(name: name, baseModelHash: String(repeating: "0", count: 64), trainedOn: [version]), owner: server.contributor)
        _ = try server.store.addCheckpoint(
            to: registered.id, by: server.contributor, step: 10, location: folder, contentHash: String(repeating: "1", count: 64))
        return (registered.id, adapter)
    }

    @Test func residentAdaptersServeConcurrentRequestsEachWithItsOwn() async throws {
        let generator = try randomGenerator()
        let server = try await TestServer.start(generator: generator)
        let datanet = try server.store.createDatanet(NewDatanet(name: "base-data", license: "MIT"), owner: server.contributor)
        let record = try server.store.contribute(.text("training text"), to: datanet.id, by: server.contributor)
        try server.store.review(record.id, by: server.contributor, .approve)
        let version = try server.store.publishVersion(of: datanet.id, by: server.contributor).ref
        let first = try registerAdapter("first", seed: 11, on: server, model: generator.model, version: version)
        let second = try registerAdapter("second", seed: 22, on: server, model: generator.model, version: version)

        let connection = try await server.connect()
        let unloaded = await #expect(throws: ServerError.self) { _ = try await connection.call(inferRequest("x", maxTokens: 3, adapter: first.id.rawValue)) }
        #expect(unloaded?.errorCode == .notFound)
        for id in [first.id, second.id] {
            guard case .adapterState(let state) = try await connection.call(.adapterLoad(Wire.AdapterLoad(adapter: id.rawValue))) else {
                Issue.record("expected ADAPTER_STATE")
                return
            }
            #expect(state.loaded && state.residentBytes > 0)
        }
        guard case .adapterListing(let listing) = try await connection.call(.adapterList(Wire.AdapterList(owner: nil))) else {
            Issue.record("expected ADAPTER_LISTING")
            return
        }
        #expect(listing.adapters.map(\.name) == ["first", "second"] && listing.adapters.allSatisfy(\.loaded))

        // Three streams at once: base, first, second; each equals in-process generation with its adapter.
        let prompt = "mixed adapters"
        async let base = collect(try await connection.stream(inferRequest(prompt, maxTokens: 24)))
        async let withFirst = collect(try await connection.stream(inferRequest(prompt, maxTokens: 24, adapter: first.id.rawValue)))
        async let withSecond = collect(try await connection.stream(inferRequest(prompt, maxTokens: 24, adapter: second.id.rawValue)))
        let served = try await [base, withFirst, withSecond].map { $0.tokens.map { Int($0.token) } }
        let expected = try [nil, first.adapter, second.adapter].map {
            try generator.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 24), adapter: $0).tokens
        }
        #expect(served == expected)
        #expect(Set(expected).count == 3, "the adapters change the output")

        guard case .adapterState(let dropped) = try await connection.call(.adapterUnload(Wire.AdapterUnload(adapter: first.id.rawValue))) else {
            Issue.record("expected ADAPTER_STATE")
            return
        }
        #expect(!dropped.loaded)
        await #expect(throws: ServerError.self) { _ = try await connection.call(inferRequest("x", maxTokens: 3, adapter: first.id.rawValue)) }
        await connection.close()
        try await server.stop()
    }
}
