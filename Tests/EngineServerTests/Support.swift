import EngineServer
import Foundation
import LlamaModel
import Logging
import Store
import TensorCore
import Testing
import Tokenizers
import TributaryClient
import WireProtocol

/// A small random byte-level Llama with no stop token, so generation runs to `max_tokens` (or the context).
func randomGenerator(seed: UInt64 = 7, maxPositions: Int = 256) throws -> TextGenerator {
    let config = LlamaConfig(
        vocabularySize: 258, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
        maxPositions: maxPositions, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, bosTokenID: 256, eosTokenIDs: [257])
    let model = LlamaModel(
        config: config, weights: LlamaWeights(random: config, seed: seed, standardDeviation: 0.5, normRange: 0.5..<1.5))
    let tokenizer = try ByteTokenizer(vocabularySize: config.vocabularySize, specialTokens: [256: "<bos>", 257: "<eos>"])
    return TextGenerator(model: model, tokenizer: tokenizer, promptPrefix: [256], stopTokens: [])
}

/// A server on a free loopback port over a fresh store, with one contributor and their token.
struct TestServer {
    let server: EngineServer
    let store: Store
    let directory: URL
    let token: String
    let contributor: ContributorID
    let serving: Task<Void, any Error>

    var port: Int { server.localPort }

    static func start(
        computeThreads: Int = 2, computeLimits: ComputeLimits = ComputeLimits(), generator: TextGenerator? = nil,
        logger: Logger? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TestServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("engine-server-\(UUID().uuidString)")
        let store = try Store(directory: directory)
        let owner = try store.createContributor(displayName: "owner")
        let engine = Engine(store: store, generator: try generator ?? randomGenerator(), computeThreads: computeThreads, computeLimits: computeLimits)
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.drainTimeout = .seconds(5)
        // The suites share two cores: a handshake may wait long on a busy process. The timeout's own tests set theirs.
        configuration.handshakeTimeout = .seconds(120)
        configure(&configuration)
        let logger = logger ?? {
            var logger = Logger(label: "test.engine")
            logger.logLevel = .warning
            return logger
        }()
        let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
        let serving = Task { try await server.run() }
        return TestServer(
            server: server, store: store, directory: directory, token: owner.token, contributor: owner.contributor.id,
            serving: serving)
    }

    func connect(
        token: String? = nil, streamCredits: UInt32 = 64, maxFrameSize: UInt32 = FrameLimits.defaultMaxPayload
    ) async throws -> TributaryConnection {
        try await TributaryConnection.connect(
            host: "127.0.0.1", port: port, token: token ?? self.token, streamCredits: streamCredits, maxFrameSize: maxFrameSize)
    }

    /// Graceful shutdown, waiting for it to finish.
    func stop() async throws {
        server.shutdown()
        try await serving.value
        try? FileManager.default.removeItem(at: directory)
    }
}

func inferRequest(_ prompt: String, maxTokens: UInt32, adapter: Int64? = nil, stop: [String] = []) -> Message {
    .infer(Wire.Infer(
        adapter: adapter, prompt: prompt, maxTokens: maxTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stop: stop,
        method: .off, topRecords: 0, fee: 0, idempotencyKey: ""))
}

/// The resident set size of this process, from /proc/self/status.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
    return kilobytes * 1024
}

/// The tokens and end of one streamed inference.
struct Streamed {
    /// TOKEN frames with a token id.
    var tokens: [Wire.Token] = []
    /// All streamed text, including a last frame without a token id (0xFFFFFFFF) that flushes an unfinished
    /// UTF-8 sequence as U+FFFD.
    var text = ""
    var end: Wire.InferEnd?
}

func collect(_ replies: ReplyStream) async throws -> Streamed {
    var result = Streamed()
    for try await reply in replies {
        switch reply {
        case .token(let token):
            if token.token != UInt32.max { result.tokens.append(token) }
            result.text += token.text
        case .inferEnd(let end): result.end = end
        default: break
        }
    }
    return result
}

/// Suites that measure this process's resident memory, or train a model in it, run one after another: a
/// measurement must not count another test's allocations.
@Suite(.serialized) enum ProcessWideSuites {}
