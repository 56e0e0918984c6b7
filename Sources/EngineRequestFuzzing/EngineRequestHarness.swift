import Attribution
import EngineServer
import Foundation
import LlamaModel
import Logging
import NIOCore
import Serving
import Store
import Synchronization
import TributaryClient
import WireProtocol

/// Who sends a fuzzed request: one byte before each frame picks the connection (its low two bits), so that
/// the same request reaches every authorization path (docs/SECURITY.md).
public enum FuzzCaller: UInt8, CaseIterable, Sendable {
    /// No token: read-only access.
    case anonymous = 0
    /// Contributor 2: owns public datanet 1 and adapter 1 (indexed), may read bob's private datanet 2.
    case alice = 1
    /// Contributor 3: owns private datanet 2 and adapter 2 (not indexed).
    case bob = 2
    /// Contributor 1, the operator: may act on any object.
    case `operator` = 3

    init(byte: UInt8) { self = FuzzCaller(rawValue: byte & 3) ?? .anonymous }
}

/// One request of an input: its caller and message, and from the other bits of the caller byte how it is sent.
public struct FuzzRequest: Sendable {
    public var caller: FuzzCaller
    /// Bit 2: on a narrow connection, opened with the smallest max_frame_size the protocol allows and one stream
    /// credit, so that replies are cut, refused as too large, and paced by credits.
    public var narrow: Bool
    /// Bit 3: sent without waiting for the requests before it to end, so that handlers run at the same time.
    public var concurrent: Bool
    /// Bit 4: CANCEL sent right after it; the request must still end (PROTOCOL.md, "Cancellation").
    public var cancelled: Bool
    public var message: Message

    public init(_ caller: FuzzCaller, narrow: Bool = false, concurrent: Bool = false, cancelled: Bool = false, _ message: Message) {
        self.caller = caller
        self.narrow = narrow
        self.concurrent = concurrent
        self.cancelled = cancelled
        self.message = message
    }

    init(byte: UInt8, _ message: Message) {
        self.init(
            FuzzCaller(byte: byte), narrow: byte & 4 != 0, concurrent: byte & 8 != 0, cancelled: byte & 16 != 0, message)
    }

    /// The byte before its frame in an input.
    var callerByte: UInt8 { caller.rawValue | (narrow ? 4 : 0) | (concurrent ? 8 : 0) | (cancelled ? 16 : 0) }
}

/// The engine's request handlers under fuzzing (``RequestRouter`` and what it calls: authorization, the store,
/// export, inference with attribution, curation, the ledger), driven as a client drives them: over a real
/// connection to a real ``EngineServer`` on loopback, on a real store in a temporary folder (in memory on
/// /dev/shm where there is one), with a tiny random model so that generation and attribution cost little.
///
/// The store is set up once with objects that small ids name (contributors 1 to 3, datanets 1 and 2 with
/// version 1 each, adapters 1 and 2, inference 1 with its ledger entries), so fuzzed requests reach real objects
/// quickly. Requests change it (sign-ups, records, reviews, versions, penalties): inputs are not independent of
/// the ones before them, which a replayed crash input, on a fresh store, may need to be read with.
///
/// A crash in a handler (trap, precondition, overflow, force unwrap) ends this process, where libFuzzer reports
/// it with its input. What a client can see is checked too (``Finding``): a request that never ends, a reply
/// frame that does not decode or is not a reply, a connection the server closes under a well-formed request.
public final class EngineRequestHarness: Sendable {
    /// Requests of one input beyond this many are not sent: a bounded amount of work per input.
    public static let maxRequestsPerInput = 8
    /// A request that has not sent its FINAL frame after this long is a hang.
    public static let requestTimeout: Duration = .seconds(30)

    public let server: EngineServer
    let directory: URL
    let serving: Task<Void, any Error>
    let tokens: [FuzzCaller: String]
    private let connections = Mutex<[ConnectionKey: TributaryConnection]>([:])
    /// Distinct messages of `internal` errors seen: each is written to stderr once (an unmapped error is worth
    /// reading, but it is an answer, not a crash).
    private let internalErrors = Mutex<Set<String>>([])

    private init(server: EngineServer, directory: URL, serving: Task<Void, any Error>, tokens: [FuzzCaller: String]) {
        self.server = server
        self.directory = directory
        self.serving = serving
        self.tokens = tokens
    }

    /// Sets up the store, trains and indexes the adapters, and starts the server on a free loopback port.
    public static func start() async throws -> EngineRequestHarness {
        let shm = URL(fileURLWithPath: "/dev/shm")
        let root = FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
        let directory = root.appendingPathComponent("tributary-fuzz-\(UUID().uuidString)")
        let store = try Store(directory: directory)
        let generator = try tinyGenerator(folder: directory.appendingPathComponent("model").path)
        let tokens = try populate(store, generator: generator, directory: directory)

        let engine = Engine(store: store, generator: generator, computeThreads: 1, tokenFlushInterval: .zero)
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.drainTimeout = .seconds(2)
        configuration.allowsSignUp = true
        var logger = Logger(label: "fuzz.engine")
        logger.logLevel = .critical
        let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
        let serving = Task { try await server.run() }
        return EngineRequestHarness(server: server, directory: directory, serving: serving, tokens: tokens)
    }

    /// Closes the connections, drains the server and removes the store.
    public func stop() async throws {
        let open = connections.withLock { connections in
            defer { connections = [:] }
            return Array(connections.values)
        }
        for connection in open { await connection.close() }
        server.shutdown()
        try await serving.value
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - One input

    /// A client-visible bug: the process goes on, but the fuzz target traps on it and the tests fail on it.
    public struct Finding: Error, CustomStringConvertible, Sendable {
        public let request: MessageType
        public let caller: FuzzCaller
        public let problem: String
        public var description: String { "\(request) from \(caller): \(problem)" }
    }

    /// The requests of one input, in order: a caller byte, then one frame (PROTOCOL.md), again until the bytes
    /// end or a frame cannot be read. Frames that do not decode, and messages that are not requests, are
    /// skipped (the decoders have their own fuzzer); at most ``maxRequestsPerInput`` are kept.
    public static func requests(in input: [UInt8]) -> [FuzzRequest] {
        var buffer = ByteBuffer(bytes: input)
        var requests: [FuzzRequest] = []
        while requests.count < maxRequestsPerInput, let byte = buffer.readInteger(as: UInt8.self) {
            guard let frame = try? Frame.read(from: &buffer, maxPayload: FrameLimits.defaultMaxPayload) else { break }
            guard let envelope = try? Envelope(decoding: frame), envelope.message.type.direction == .request else { continue }
            requests.append(FuzzRequest(byte: byte, envelope.message))
        }
        return requests
    }

    /// An input that ``requests(in:)`` reads back as `requests`: for seeds and tests.
    public static func input(_ requests: [FuzzRequest]) -> [UInt8] {
        var buffer = ByteBuffer()
        for request in requests {
            buffer.writeInteger(request.callerByte)
            Envelope(requestID: 1, message: request.message).write(to: &buffer)
        }
        return Array(buffer.readableBytesView)
    }

    /// How a request ended when a client saw nothing wrong: its reply types, or the ERROR it was refused with.
    public struct Answer: Sendable, CustomStringConvertible {
        public let request: MessageType
        public let caller: FuzzCaller
        public let replies: [MessageType]
        public let error: ServerError?
        public var description: String {
            "\(request) from \(caller): " + (error.map { "\($0)" } ?? replies.map { "\($0)" }.joined(separator: ", "))
        }
    }

    /// Sends the input's requests in order, each on its caller's connection, reading each one's replies to its
    /// FINAL frame; a request waits for those before it to end unless it is ``FuzzRequest/concurrent``. ERROR
    /// replies are answers; findings are what a client saw wrong. Both are in the order of the requests.
    public func run(_ input: [UInt8]) async -> (answers: [Answer], findings: [Finding]) {
        let requests = Self.requests(in: input)
        guard !requests.isEmpty else { return ([], []) }
        // Every input starts with the indexed adapter resident and the other one not, whatever the last one did.
        _ = server.engine.unloadAdapter(AdapterID(2))
        _ = try? await server.engine.loadAdapter(AdapterID(1))
        let ended = await withTaskGroup(of: (Int, Result<Answer, HarnessProblem>).self) { group in
            var ended: [(Int, Result<Answer, HarnessProblem>)] = []
            for (index, request) in requests.enumerated() {
                if !request.concurrent {
                    while let result = await group.next() { ended.append(result) }
                }
                group.addTask { (index, await self.send(request)) }
            }
            while let result = await group.next() { ended.append(result) }
            return ended.sorted { $0.0 < $1.0 }
        }
        var answers: [Answer] = []
        var findings: [Finding] = []
        for (index, result) in ended {
            let request = requests[index]
            switch result {
            case .success(let answer): answers.append(answer)
            case .failure(let problem):
                findings.append(Finding(
                    request: request.message.type, caller: request.caller, problem: problem.description))
            }
        }
        return (answers, findings)
    }

    /// One request to its end.
    private func send(_ request: FuzzRequest) async -> Result<Answer, HarnessProblem> {
        let (message, caller, key) = (request.message, request.caller, ConnectionKey(caller: request.caller, narrow: request.narrow))
        let connection: TributaryConnection
        do {
            connection = try await self.connection(for: key)
        } catch {
            return .failure(HarnessProblem("could not connect: \(error)"))
        }
        do {
            let replies = try await withThrowingTaskGroup(of: [MessageType].self) { group in
                group.addTask {
                    var replies: [MessageType] = []
                    let stream = try await connection.stream(message)
                    if request.cancelled { try await connection.cancel(stream.requestID) }
                    for try await reply in stream {
                        guard reply.type.direction == .reply else {
                            throw HarnessProblem("the server answered with \(reply.type), which is not a reply")
                        }
                        replies.append(reply.type)
                    }
                    return replies
                }
                group.addTask {
                    try await Task.sleep(for: Self.requestTimeout)
                    throw HarnessProblem("no FINAL frame after \(Self.requestTimeout)")
                }
                defer { group.cancelAll() }
                return try await group.next() ?? []
            }
            return .success(Answer(request: message.type, caller: caller, replies: replies, error: nil))
        } catch let error as ServerError {
            if error.errorCode == .internal { noteInternalError(message.type, error.message) }
            return .success(Answer(request: message.type, caller: caller, replies: [], error: error))
        } catch let problem as HarnessProblem {
            drop(connection, key)
            return .failure(problem)
        } catch WireError.frameTooLarge(let length, let limit) {
            drop(connection, key)
            return .failure(HarnessProblem(
                "the server sent a \(length)-byte payload to a client that accepts \(limit)"))
        } catch {
            // A reply frame that does not decode, or the server closing a connection under a well-formed request.
            drop(connection, key)
            return .failure(HarnessProblem("the connection failed: \(error)"))
        }
    }

    private struct HarnessProblem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct ConnectionKey: Hashable {
        let caller: FuzzCaller
        let narrow: Bool
    }

    /// The open connection of that caller and kind, or a new one.
    private func connection(for key: ConnectionKey) async throws -> TributaryConnection {
        if let open = connections.withLock({ $0[key] }) { return open }
        let connection = try await TributaryConnection.connect(
            host: "127.0.0.1", port: server.localPort, token: tokens[key.caller] ?? "",
            streamCredits: key.narrow ? 1 : 64,
            maxFrameSize: key.narrow ? FrameLimits.minimumMaxPayload : FrameLimits.defaultMaxPayload,
            clientName: "fuzz-engine-requests")
        // Concurrent requests may have connected at once: one connection per key is kept.
        let existing = connections.withLock { open -> TributaryConnection? in
            if let existing = open[key] { return existing }
            open[key] = connection
            return nil
        }
        guard let existing else { return connection }
        await connection.close()
        return existing
    }

    /// Forgets a connection that failed (unless another already replaced it): the next request opens another.
    private func drop(_ connection: TributaryConnection, _ key: ConnectionKey) {
        connections.withLock { open in
            if open[key] === connection { open[key] = nil }
        }
        Task { await connection.close() }
    }

    private func noteInternalError(_ type: MessageType, _ message: String) {
        let isNew = internalErrors.withLock { $0.insert("\(type): \(message)").inserted }
        if isNew { FileHandle.standardError.write(Data("fuzz-engine-requests: internal error on \(type): \(message)\n".utf8)) }
    }

    // MARK: - The store and the model

    /// A byte-level Llama of random weights, small enough that a generation to the end of its 128 positions
    /// and an attribution over a few records take milliseconds; saved as a model folder, as jobs need one.
    static func tinyGenerator(folder: String) throws -> TextGenerator {
        let config = LlamaConfig(
            vocabularySize: 258, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
            maxPositions: 128, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, bosTokenID: 256, eosTokenIDs: [257])
        let model = LlamaModel(
            config: config, weights: LlamaWeights(random: config, seed: 7, standardDeviation: 0.5, normRange: 0.5..<1.5))
        try model.save(to: folder)
        return try TextGenerator(folder: folder)
    }

    /// Contributors 1 (operator), 2 (alice) and 3 (bob); alice's public datanet 1 and bob's private datanet 2
    /// (readable by alice), each with approved, pending and rejected records and version 1; alice's adapter 1,
    /// trained on both versions and indexed, and bob's adapter 2, trained on his and not indexed; inference 1,
    /// attributed on adapter 1 and paid. Returns each caller's token.
    static func populate(_ store: Store, generator: TextGenerator, directory: URL) throws -> [FuzzCaller: String] {
        let `operator` = try store.createContributor(displayName: "operator", role: .operator)
        let alice = try store.createContributor(displayName: "alice")
        let bob = try store.createContributor(displayName: "bob")
        let (aliceID, bobID) = (alice.contributor.id, bob.contributor.id)

        func datanet(_ name: String, owner: ContributorID, visibility: Visibility, texts: [String]) throws -> DatanetVersionRef {
            let datanet = try store.createDatanet(
                NewDatanet(name: name, summary: "fuzzing", tags: ["fuzz"], license: "MIT", visibility: visibility), owner: owner)
            for (index, text) in texts.enumerated() {
                let record = try store.contribute(.text(bytes: Array(text.utf8)), to: datanet.id, by: owner)
                try store.review(record.id, by: owner, index == 1 ? .reject : .approve)
            }
            _ = try store.contribute(.pair(prompt: Array("q: ".utf8), completion: Array("pending".utf8)), to: datanet.id, by: owner)
            return try store.publishVersion(of: datanet.id, by: owner).ref
        }
        let recipes = try datanet(
            "recipes", owner: aliceID, visibility: .public,
            texts: ["Whisk two eggs with flour.", "rejected", "Bake the bread for an hour.", "Salt the water first."])
        let forecasts = try datanet(
            "forecasts", owner: bobID, visibility: .private,
            texts: ["Rain tomorrow in the north.", "rejected", "Sunny spells, light wind.", "Frost overnight."])
        _ = try store.grantRead(on: forecasts.datanet, to: aliceID, by: bobID)

        let runner = JobRunner(
            store: store, model: generator.model, modelFolder: directory.appendingPathComponent("model").path,
            workFolder: directory.path)
        func run(_ spec: JobSpecification, by submitter: ContributorID) throws {
            let job = try store.submitJob(NewJob(kind: spec.kind, specification: try spec.encoded()), by: submitter)
            let ended = try runner.run(try store.startJob(job.id, engine: "fuzz", leaseDuration: 600))
            guard ended.state == .succeeded else { throw SetupError("\(spec.kind) job failed: \(ended.error ?? "")") }
        }
        func train(_ name: String, _ versions: [DatanetVersionRef], by owner: ContributorID) throws {
            try run(
                .train(TrainJob(
                    adapterName: name, versions: versions, rank: 2, alpha: 4, learningRate: 1e-3, steps: 2, batchSize: 2,
                    sequenceLength: 64, seed: 1, checkpointEvery: 1)),
                by: owner)
        }
        try train("indexed", [recipes, forecasts], by: aliceID)
        try run(.index(IndexJob(adapter: AdapterID(1))), by: aliceID)
        try train("unindexed", [forecasts], by: bobID)
        guard try store.adapter(AdapterID(1)).owner == aliceID, try store.adapter(AdapterID(2)).owner == bobID else {
            throw SetupError("the adapters are not ids 1 and 2")
        }

        // Funds for paid inferences: the operator credits alice and bob, once each.
        for contributor in [alice, bob] {
            _ = try store.deposit(
                1_000_000_000, to: contributor.contributor.id, by: `operator`.contributor.id,
                idempotencyKey: "fuzz-setup-\(contributor.contributor.id.rawValue)")
        }
        let pipeline = InferencePipeline(store: store, generator: generator)
        let prompt = "Whisk two"
        _ = try pipeline.settle(
            requestID: "fuzz-setup", adapter: AdapterID(1), prompt: prompt, output: " eggs",
            completion: try pipeline.completionTokens(prompt: prompt, completion: " eggs"), method: .dataInf, fee: 100,
            payer: bob.contributor.id)
        return [.anonymous: "", .alice: alice.token, .bob: bob.token, .operator: `operator`.token]
    }

    struct SetupError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
