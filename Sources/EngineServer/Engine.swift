import Foundation
import LlamaModel
import NIOPosix
import ProtocolServer
import Serving
import Store
import Synchronization
import TensorCore

/// What a server serves: the store, one base model with the LoRA adapters resident on it (several at once,
/// each request naming its own), and two bounded thread pools so that neither compute nor SQLite ever runs
/// on an event loop or on Swift's cooperative threads.
public final class Engine: Sendable {
    public let store: Store
    public let generator: TextGenerator
    /// The base model folder's chat template, for INFER's `chat` field.
    public let chatTemplate: EngineChatTemplate
    /// Generation, attribution and adapter loading: a fixed number of threads, fed by `computeQueue`.
    let compute: NIOThreadPool
    /// Work waiting for `compute`, bounded per contributor and in all, and served in turns.
    let computeQueue: ComputeQueue
    /// Store reads and writes (SQLite waits on fsync): apart from compute so a long generation never delays them.
    let storage: NIOThreadPool
    let statistics = ServerStatistics()
    /// How often a generation may wake its connection to send the tokens chosen since (see `StreamedPieceQueue`).
    let tokenFlushInterval: Duration
    private let resident = Mutex<[AdapterID: LoRAAdapter]>([:])

    /// `computeThreads`: how many generations run at once. `computeLimits`: how much compute work may wait
    /// or run before more is refused with `overloaded`. `tokenFlushInterval`: streamed tokens chosen within it
    /// of each other go out together (zero: each at once).
    public init(
        store: Store, generator: TextGenerator, chatTemplate: EngineChatTemplate = .absent, computeThreads: Int = 2,
        computeLimits: ComputeLimits = ComputeLimits(), tokenFlushInterval: Duration = .milliseconds(5)
    ) {
        precondition(computeThreads >= 1, "at least one compute thread")
        self.store = store
        self.generator = generator
        self.chatTemplate = chatTemplate
        self.tokenFlushInterval = tokenFlushInterval
        compute = NIOThreadPool(numberOfThreads: computeThreads)
        computeQueue = ComputeQueue(pool: compute, threads: computeThreads, limits: computeLimits)
        storage = NIOThreadPool(numberOfThreads: 2)
    }

    func start() {
        compute.start()
        storage.start()
    }

    func shutdown() async {
        try? await compute.shutdownGracefully()
        try? await storage.shutdownGracefully()
    }

    /// Runs a store call on the storage pool.
    func withStore<T: Sendable>(_ body: @escaping @Sendable (Store) throws -> T) async throws -> T {
        let store = store
        return try await storage.runIfActive { try body(store) }
    }

    /// The contributor a token names; nil for the empty token (read-only access).
    func authenticate(token: String) async throws -> ContributorID? {
        guard !token.isEmpty else { return nil }
        return try await withStore { try $0.authenticate(token: token).id }
    }

    /// Runs attribution (or other long compute) on the compute pool, in `bucket`'s turn (see ``ComputeQueue``).
    func withCompute<T: Sendable>(
        for bucket: ComputeBucket, isCancelled: @escaping @Sendable () -> Bool = { false },
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await computeQueue.run(for: bucket, isCancelled: isCancelled, body)
    }

    /// Attribution, inference records and fee splits on this engine's store and model.
    var pipeline: InferencePipeline { InferencePipeline(store: store, generator: generator) }

    // MARK: - Resident adapters

    func residentAdapter(_ id: AdapterID) -> LoRAAdapter? { resident.withLock { $0[id] } }
    var residentAdapterIDs: Set<AdapterID> { resident.withLock { Set($0.keys) } }

    /// Makes the adapter's latest checkpoint (a PEFT adapter folder) resident; returns its size in bytes.
    /// Loading is compute work of `bucket`'s.
    public func loadAdapter(_ id: AdapterID, for bucket: ComputeBucket = .local) async throws -> Int {
        let location = try await withStore { store -> String in
            guard let latest = try store.checkpoints(of: id).last else {
                throw StoreError.invalidAdapter("adapter \(id) has no checkpoint to load")
            }
            return latest.location
        }
        let config = generator.model.config
        let adapter = try await withCompute(for: bucket) { try LoRAAdapter(folder: location, model: config) }
        resident.withLock { $0[id] = adapter }
        return adapter.residentBytes
    }

    /// Drops a resident adapter; false when it was not resident.
    public func unloadAdapter(_ id: AdapterID) -> Bool { resident.withLock { $0.removeValue(forKey: id) != nil } }

    // MARK: - Inference

    /// Generates on the compute pool in `bucket`'s turn, handing each piece to `onPiece` (on a compute thread)
    /// as it is chosen; `shouldStop` is asked after every token. A chat prompt is rendered and tokenized there too;
    /// the prompt's text (for chat, the rendered template) and the ids generation ran on come back with the result.
    func generate(
        for bucket: ComputeBucket, prompt: InferencePrompt, options: GenerationOptions, adapter: LoRAAdapter?,
        shouldStop: @escaping @Sendable () -> Bool, onPiece: @escaping @Sendable (StreamedPiece) -> Void
    ) async throws -> (promptText: String, promptTokens: [Int], result: GenerationResult) {
        let generator = generator
        return try await computeQueue.run(for: bucket) {
            let (text, tokens) = try prompt.tokens(for: generator)
            return (text, tokens, try generator.generate(promptTokens: tokens, options: options, adapter: adapter, onPiece: onPiece, shouldStop: shouldStop))
        }
    }
}

extension LoRAAdapter {
    /// The bytes of its A and B matrices.
    var residentBytes: Int {
        pairs.reduce(0) { total, layer in
            layer.values.reduce(total) { $0 + ($1.a.shape.reduce(1, *) + $1.b.shape.reduce(1, *)) * MemoryLayout<Float>.size }
        }
    }
}
