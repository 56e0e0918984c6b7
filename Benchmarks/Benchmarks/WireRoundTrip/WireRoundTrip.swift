import ArgumentParser
import EngineServer
import Foundation
import LlamaModel
import Logging
import NIOPosix
import RawLoopback
import Store
import TensorCore
import Tokenizers
import TributaryClient
import WireProtocol

/// Tributary's protocol against gRPC in one run, on loopback in one process:
/// - round trips of a 64-byte and a 64 KiB request, 1 and 16 connections (one request in flight on each):
///   Tributary's ECHO (answered by the connection layer), from a caller on the connection's event loop and from
///   one on Swift's cooperative pool, and INFER with max_tokens 0 (decoded, admitted, routed, prompt tokenized
///   on the compute pool, answered with INFER_END); gRPC a unary echo over grpc-swift-nio-transport;
/// - token streaming: the reference decode workload generated in process and streamed through the server.
@main
struct WireRoundTrip: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Round-trip latency and throughput: Tributary's protocol beside gRPC.")

    @Option(help: "Seconds each measurement runs (after a warm-up of a quarter of it).")
    var seconds = 3.0

    @Option(help: "Rounds of the streaming comparison (in-process and served, alternating).")
    var streamingRounds = 21

    @Option(help: "The reference model config (Hugging Face config.json).")
    var referenceConfig = "../../shared/reference/reference-llama.json"

    @Option(help: "Event-loop threads of Tributary's server (gRPC's server uses its singleton group, one per core).")
    var serverEventLoops = 2

    @Option(help: "The server's token flush interval in microseconds (tributary-engine serve's default: 5000).")
    var tokenFlushMicroseconds = 5000

    @Flag(help: """
        Keep the virtual CPUs awake with a lowest-priority spinning thread while measuring, so that a wake-up \
        does not wait for the hypervisor to schedule a parked CPU (it shows in the raw floor row).
        """)
    var awake = false

    @Flag(help: "Only the token-streaming comparison.")
    var streamingOnly = false

    @Flag(help: "Print one JSON object instead of tables.")
    var json = false

    func run() async throws {
        // As `tributary-engine serve` with 2 compute threads: the cores are shared out among them.
        BLASRuntime.configure(computePools: 2)
        if awake { raw_awake_spinner_start() }
        defer { if awake { raw_awake_spinner_stop() } }
        let rows = streamingOnly ? [] : try await measureRoundTrips()
        report(rows, try await measureStreaming())
    }

    func measureRoundTrips() async throws -> [Row] {
        let tributary = try await startTributary(generator: try echoGenerator())
        let grpc = GRPCEchoServer()
        let serving = Task { try await grpc.server.serve() }
        let grpcPort = try await grpc.port

        var rows: [Row] = []
        for payload in [64, 64 * 1024] {
            for connections in [1, 16] {
                let port = tributary.localPort
                let echo = Self.echoOfPayload(payload)
                rows.append(Row(
                    payload: payload, connections: connections,
                    echo: try await measureTributary(port: port, request: echo, connections: connections, onEventLoop: true),
                    echoFromPool: try await measureTributary(port: port, request: echo, connections: connections, onEventLoop: false),
                    infer: try await measureTributary(port: port, request: Self.inferOfPayload(payload), connections: connections, onEventLoop: true),
                    grpc: try await measureGRPC(port: grpcPort, payload: payload, connections: connections),
                    floor: connections == 1 ? try measureFloor(payload: payload) : nil))
            }
        }
        tributary.shutdown()
        grpc.server.beginGracefulShutdown()
        _ = try? await serving.value
        return rows
    }

    // MARK: - Round trips

    struct Measurement: Codable {
        var requests: Int
        var requestsPerSecond: Double
        var p50Microseconds: Double
        var p99Microseconds: Double
    }

    struct Row: Codable {
        var payload: Int
        var connections: Int
        /// ECHO, each connection's loop on that connection's event loop.
        var echo: Measurement
        /// ECHO, each connection's loop on Swift's cooperative pool.
        var echoFromPool: Measurement
        /// INFER with max_tokens 0, on the connection's event loop.
        var infer: Measurement
        var grpc: Measurement
        /// Raw loopback TCP between two C threads (one connection only): what any protocol's round trip costs at least.
        var floor: Measurement?
    }

    /// Runs `connections` loops of one request at a time (loop i on `executors[i]`, when given): a warm-up,
    /// then `seconds` measured.
    func measure(
        connections: Int, executors: [any TaskExecutor]? = nil, request: @escaping @Sendable (Int) async throws -> Void
    ) async throws -> Measurement {
        let clock = ContinuousClock()
        let warmUp = clock.now + .seconds(seconds / 4)
        let end = warmUp + .seconds(seconds)
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for connection in 0..<connections {
                group.addTask(executorPreference: executors?[connection]) {
                    var latencies: [Duration] = []
                    latencies.reserveCapacity(200_000)
                    while true {
                        let start = clock.now
                        guard start < end else { break }
                        try await request(connection)
                        if start >= warmUp { latencies.append(clock.now - start) }
                    }
                    return latencies
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        return summary(latencies.map { Double($0.components.attoseconds) / 1e12 + Double($0.components.seconds) * 1e6 })
    }

    func summary(_ microseconds: [Double]) -> Measurement {
        let sorted = microseconds.sorted()
        return Measurement(
            requests: sorted.count, requestsPerSecond: Double(sorted.count) / seconds,
            p50Microseconds: sorted[sorted.count / 2], p99Microseconds: sorted[sorted.count * 99 / 100])
    }

    /// The same round trips between two C threads over a loopback socket, no protocol at all.
    func measureFloor(payload: Int) throws -> Measurement {
        var latencies = [Double](repeating: 0, count: 2_000_000)
        let count = raw_loopback_round_trips(Int32(payload), seconds / 4, seconds, &latencies, latencies.count)
        guard count > 0 else { throw CommandFailure("the raw loopback ping-pong failed") }
        return summary(Array(latencies.prefix(count)))
    }

    func measureTributary(port: Int, request: Message, connections count: Int, onEventLoop: Bool) async throws -> Measurement {
        var connections: [TributaryConnection] = []
        for _ in 0..<count { connections.append(try await TributaryConnection.connect(host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton)) }
        let all = connections
        let expected = request.type == .echo ? MessageType.echoed : .inferEnd
        let result = try await measure(connections: count, executors: onEventLoop ? all.map(\.executor) : nil) { index in
            let reply = try await all[index].call(request)
            guard reply.type == expected else { throw CommandFailure("expected \(expected), got \(reply.type)") }
        }
        for connection in connections { await connection.close() }
        return result
    }

    func measureGRPC(port: Int, payload: Int, connections count: Int) async throws -> Measurement {
        let clients = try (0..<count).map { _ in try GRPCEchoClient(port: port) }
        let bytes = [UInt8](repeating: UInt8(ascii: "a"), count: payload)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { try await client.client.runConnections() } }
            let result = try await measure(connections: count) { index in
                guard try await clients[index].echo(bytes) == payload else { throw CommandFailure("short echo") }
            }
            for client in clients { client.client.beginGracefulShutdown() }
            try await group.waitForAll()
            return result
        }
    }

    /// An ECHO whose payload is exactly `bytes` long: 4 bytes of length, the rest echoed.
    static func echoOfPayload(_ bytes: Int) -> Message {
        .echo(Wire.Echo(payload: [UInt8](repeating: UInt8(ascii: "a"), count: bytes - 4)))
    }

    /// An INFER whose payload is exactly `bytes` long: the fixed fields take 46 bytes, the prompt the rest.
    static func inferOfPayload(_ bytes: Int) -> Message {
        let message = Message.infer(Wire.Infer(
            adapter: nil, prompt: String(repeating: "a", count: bytes - 46), maxTokens: 0, temperature: 0, topK: 0, topP: 1,
            seed: 0, stop: [], method: .off, topRecords: 0, fee: 0, idempotencyKey: ""))
        return message
    }

    // MARK: - Token streaming

    struct Streaming: Codable {
        var blasThreads: Int
        var tokens: Int
        var inProcessSeconds: Double
        var servedSeconds: Double
        /// The server's own generation time (INFER_END's prompt and generation times): the served total less
        /// this is what the wire added after the compute.
        var servedComputeSeconds: Double
        /// The median over rounds of each round's served time against its own in-process time (the two run back
        /// to back, so drifts of the machine's speed cancel), with the quartiles.
        var overheadPercent: Double
        var overheadQuartilesPercent: [Double]
        /// A distribution-free 95% confidence interval of that median (order statistics of the sorted ratios):
        /// whether one run can tell its overhead from a target.
        var overheadMedianInterval95Percent: [Double]
    }

    /// The decode workload (prompt 32 tokens, 128 new, greedy) on the reference model, in process and through
    /// the server over one connection, in pairs whose order alternates; medians.
    func measureStreaming() async throws -> Streaming {
        let config = try LlamaConfig(contentsOf: referenceConfig)
        let generator = try Self.randomGenerator(config: config, seed: 1)
        let server = try await startTributary(generator: generator)
        let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: server.localPort, group: MultiThreadedEventLoopGroup.singleton)
        let prompt = String(repeating: "x", count: 31)  // + the beginning-of-sequence token: 32
        let options = GenerationOptions(maxNewTokens: 128)
        let request = Message.infer(Wire.Infer(
            adapter: nil, prompt: prompt, maxTokens: 128, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], method: .off,
            topRecords: 0, fee: 0, idempotencyKey: ""))
        let clock = ContinuousClock()
        var local: [Double] = []
        var served: [Double] = []
        var servedCompute: [Double] = []
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.attoseconds) / 1e18 + Double(duration.components.seconds)
        }
        func inProcess() throws -> Double {
            let start = clock.now
            let result = try generator.generate(prompt: prompt, options: options)
            precondition(result.tokens.count == 128 && result.promptTokenCount == 32)
            return seconds(clock.now - start)
        }
        /// The served total, and the server's own generation time from INFER_END. The request is sent and its
        /// replies read on the connection's event loop, as a latency-minded client runs them, and the clock is
        /// read there: a caller on another thread would add its own two hops to and from that loop.
        func overWire() async throws -> (Double, Double) {
            try await withTaskExecutorPreference(connection.executor) {
                let sent = clock.now
                var tokens = 0
                var end: Wire.InferEnd?
                for try await reply in try await connection.stream(request) {
                    if case .token(let token) = reply, token.token != UInt32.max { tokens += 1 }
                    if case .inferEnd(let value) = reply { end = value }
                }
                let total = seconds(clock.now - sent)
                precondition(tokens == 128 && end != nil)
                return (total, Double(end!.promptUs + end!.generationUs) / 1e6)
            }
        }
        for round in 0...streamingRounds {
            // Which runs first alternates, so that whatever favours a position in the pair cancels out.
            var pair: (local: Double, served: (Double, Double))
            if round % 2 == 0 {
                pair.local = try inProcess()
                pair.served = try await overWire()
            } else {
                pair.served = try await overWire()
                pair.local = try inProcess()
            }
            if round > 0 {  // the first round warms both
                local.append(pair.local)
                served.append(pair.served.0)
                servedCompute.append(pair.served.1)
            }
        }
        await connection.close()
        server.shutdown()
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        let overheads = zip(served, local).map { ($0 / $1 - 1) * 100 }.sorted()
        return Streaming(
            blasThreads: BLASRuntime.threads, tokens: 128, inProcessSeconds: median(local), servedSeconds: median(served),
            servedComputeSeconds: median(servedCompute), overheadPercent: median(overheads),
            overheadQuartilesPercent: [overheads[overheads.count / 4], overheads[overheads.count * 3 / 4]],
            overheadMedianInterval95Percent: Self.medianInterval95(overheads))
    }

    /// The ranks n/2 ∓ 1.96·√n/2 (and + 1 above) of `sorted`, 1-based and rounded: the normal approximation of
    /// the binomial interval for a median, which assumes nothing about the distribution.
    static func medianInterval95(_ sorted: [Double]) -> [Double] {
        let n = Double(sorted.count)
        let spread = 1.96 * n.squareRoot() / 2
        let lower = Int((n / 2 - spread).rounded()), upper = Int((1 + n / 2 + spread).rounded())
        return [sorted[max(lower, 1) - 1], sorted[min(upper, sorted.count) - 1]]
    }

    // MARK: - Setup and output

    func startTributary(generator: TextGenerator) async throws -> EngineServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wire-bench-\(UUID().uuidString)")
        let engine = Engine(
            store: try Store(directory: directory), generator: generator, computeThreads: 2,
            tokenFlushInterval: .microseconds(tokenFlushMicroseconds))
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.eventLoopThreads = serverEventLoops
        configuration.maxFramePayload = 1 << 20
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
        Task { try await server.run() }
        return server
    }

    /// A byte-level model whose context takes a 64 KiB prompt (requests with max_tokens 0 never run it).
    func echoGenerator() throws -> TextGenerator {
        let config = LlamaConfig(
            vocabularySize: 258, hiddenSize: 16, intermediateSize: 16, layerCount: 1, headCount: 2, maxPositions: 70_000,
            bosTokenID: 256, eosTokenIDs: [257])
        return try Self.randomGenerator(config: config, seed: 2)
    }

    /// Random weights (speed does not depend on them) and the byte tokenizer.
    static func randomGenerator(config: LlamaConfig, seed: UInt64) throws -> TextGenerator {
        let model = LlamaModel(config: config, weights: LlamaWeights(random: config, seed: seed))
        let v = config.vocabularySize
        let specials = [256, 257].filter { $0 < v }
        let tokenizer = try ByteTokenizer(vocabularySize: v, specialTokens: Dictionary(uniqueKeysWithValues: specials.map { ($0, "<\($0)>") }))
        // No stop token: every run generates exactly the tokens asked for.
        return TextGenerator(model: model, tokenizer: tokenizer, promptPrefix: v > 256 ? [256] : [0], stopTokens: [])
    }

    func report(_ rows: [Row], _ streaming: Streaming) {
        if json {
            struct Report: Codable { var awake: Bool; var roundTrips: [Row]; var streaming: Streaming }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try! encoder.encode(Report(awake: awake, roundTrips: rows, streaming: streaming)), as: UTF8.self))
            return
        }
        print(awake ? "virtual CPUs kept awake by a lowest-priority spinner\n" : "virtual CPUs left to park when idle\n")
        print("| request | connections | path | req/s | p50 us | p99 us | req/s vs gRPC |")
        print("|---|---:|---|---:|---:|---:|---:|")
        for row in rows {
            let size = row.payload >= 1024 ? "\(row.payload / 1024) KiB" : "\(row.payload) B"
            let paths = [
                ("Tributary ECHO, caller on the event loop", row.echo), ("Tributary ECHO, caller on the cooperative pool", row.echoFromPool),
                ("Tributary INFER max_tokens 0, caller on the event loop", row.infer), ("gRPC echo", row.grpc),
            ] + (row.floor.map { [("raw loopback TCP, two C threads (the floor)", $0)] } ?? [])
            for (path, measured) in paths {
                print("| \(size) | \(row.connections) | \(path) " + String(
                    format: "| %.0f | %.0f | %.0f | %.2fx |", measured.requestsPerSecond,
                    measured.p50Microseconds, measured.p99Microseconds, measured.requestsPerSecond / row.grpc.requestsPerSecond))
            }
        }
        print(String(
            format: "\nstreaming %d tokens, %d BLAS threads, token flush %d us: in process %.1f ms, served %.1f ms (of which the server's generation %.1f ms), overhead %.1f%% (median of paired rounds; its 95%% interval %.1f%% to %.1f%%; quartiles %.1f%% to %.1f%%)",
            streaming.tokens, streaming.blasThreads, tokenFlushMicroseconds, streaming.inProcessSeconds * 1000, streaming.servedSeconds * 1000,
            streaming.servedComputeSeconds * 1000, streaming.overheadPercent, streaming.overheadMedianInterval95Percent[0],
            streaming.overheadMedianInterval95Percent[1], streaming.overheadQuartilesPercent[0], streaming.overheadQuartilesPercent[1]))
    }
}

struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
