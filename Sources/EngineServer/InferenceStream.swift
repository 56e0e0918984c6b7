import Attribution
import Foundation
import LlamaModel
import Store
import WireProtocol

/// One INFER: tokens stream back as TOKEN frames (one credit each) while generation runs on the compute pool,
/// then INFER_END carries the usage. A CANCEL stops generation after its current token and still ends with
/// INFER_END (stop reason `cancelled`). With a method other than `off` the output is then attributed, recorded
/// and (for a fee) paid through the adapter's gradient index: ATTRIBUTION, then for a fee REWARD_SPLIT.
///
/// A fee is charged to the connection's contributor: their balance must cover it before a token is generated
/// (recording checks it again, in the transaction that debits it). The request's idempotency key, when not empty,
/// makes a retry on any connection get the original inference and split, charged once.
struct InferenceStream {
    let engine: Engine
    let request: Wire.Infer
    let replier: Replier
    let contributor: ContributorID?
    /// The inference's request id in the store: unique to this connection and request, so that a paid output
    /// is recorded, and paid, once.
    let storeRequestID: String

    /// The request's idempotency key; nil when it sent none (the empty string).
    private var idempotencyKey: String? { request.idempotencyKey.isEmpty ? nil : request.idempotencyKey }
    /// Whose account the inference is recorded against: the caller, when it pays or names a key.
    private var payer: ContributorID? { request.fee > 0 || idempotencyKey != nil ? contributor : nil }

    func run() async throws {
        let method = ScorerKind(request.method)
        let prompt = try InferencePrompt(request, template: engine.chatTemplate)
        try await checkAttribution(method)
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
                seed: request.seed),
            stopSequences: request.stop)
        try options.validate()

        // Pieces wait here for credits: at most one per position of the context, so a slow reader holds a
        // bounded amount while generation finishes and frees its compute thread.
        let pieces = StreamedPieceQueue(flushInterval: engine.tokenFlushInterval, pacedOn: replier.eventLoop)
        let stream = replier.stream
        let bucket = ComputeBucket(contributor)
        async let generation: (promptText: String, promptTokens: [Int], result: GenerationResult) = {
            defer { pieces.finish() }
            return try await engine.generate(
                for: bucket, prompt: prompt, options: options, adapter: adapter, shouldStop: { stream.isCancelled },
                onPiece: { pieces.push($0) })
        }()
        var sent: UInt32 = 0
        var lastTokens: [Message] = []
        do {
            while true {
                let (batch, isLast) = await pieces.next()
                let tokens = batch.map { piece -> Message in
                    // A piece without a token flushes text held back at the end: it has no id.
                    defer { sent += 1 }
                    return .token(Wire.Token(index: sent, token: piece.token.map { UInt32($0) } ?? UInt32.max, text: piece.text))
                }
                if isLast {
                    lastTokens = tokens
                    break
                }
                try await replier.send(streamed: tokens)
            }
        } catch {
            // Cancelled (by CANCEL or by the connection closing): generation stops after its current token.
            stream.cancel()
        }
        let (promptText, promptTokens, result) = try await generation
        engine.statistics.tokensGenerated(result.tokens.count)
        let end = Message.inferEnd(Wire.InferEnd(
            stopReason: Wire.StopReason(result.stopReason), promptTokens: UInt32(result.promptTokenCount),
            completionTokens: UInt32(result.tokens.count),
            promptUs: UInt64((result.timings.promptSeconds * 1e6).rounded()),
            generationUs: UInt64((result.timings.generationSeconds * 1e6).rounded())))
        // A cancelled output is neither attributed nor paid: INFER_END is then the last frame.
        let isFinal = method == nil || request.adapter == nil || result.stopReason == .cancelled
        do {
            // The last tokens and INFER_END in one write.
            try await replier.send(streamed: lastTokens, then: end, final: isFinal)
        } catch {
            // Cancelled while the last tokens waited for credits: INFER_END still goes out.
            try await replier.send(streamed: [], then: end, final: isFinal)
        }
        guard !isFinal, let method, let adapterID = request.adapter else { return }
        try await settle(result, prompt: promptText, promptTokens: promptTokens, adapter: AdapterID(adapterID), method: method)
    }

    /// Refuses, before any generation, an attribution or fee this engine cannot honour, or the caller cannot pay.
    private func checkAttribution(_ method: ScorerKind?) async throws {
        guard (0...MoneyBounds.maximumFee).contains(request.fee) else {
            throw RequestFailure(
                .invalidArgument, "fee must be 0 to \(MoneyBounds.maximumFee) micro-units, got \(request.fee)")
        }
        if let key = idempotencyKey {
            guard key.utf8.count <= MoneyBounds.maximumKeyBytes, !key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw RequestFailure(
                    .invalidArgument, "idempotency_key must be at most \(MoneyBounds.maximumKeyBytes) bytes, without control characters")
            }
            guard contributor != nil else {
                throw RequestFailure(.unauthenticated, "an idempotency key is the caller's: connect with a contributor token")
            }
        }
        guard let method else {
            guard request.fee == 0 else {
                throw RequestFailure(.invalidArgument, "a fee is split by attribution: send a method other than off")
            }
            return
        }
        guard let adapter = request.adapter else {
            throw RequestFailure(.invalidArgument, "attribution (method \(method.rawValue)) needs an adapter: the base model has no training records")
        }
        if request.fee > 0, contributor == nil {
            throw RequestFailure(.unauthenticated, "a fee is charged to the caller: connect with a contributor token")
        }
        let indexed = try await engine.withStore { try $0.adapter(AdapterID(adapter)).gradientIndexLocation != nil }
        guard indexed else {
            throw RequestFailure(.failedPrecondition, "adapter \(adapter) has no gradient index: run an index job for it first")
        }
        if let payer {
            // A retry under a recorded key passes (it is charged once, already); otherwise the balance must cover it.
            let (fee, key) = (request.fee, idempotencyKey)
            _ = try await engine.withStore {
                try $0.authorizePayment(of: fee, by: payer, on: AdapterID(adapter), idempotencyKey: key)
            }
        }
    }

    /// Attributes the output on the compute pool, records it (and splits its fee), then ATTRIBUTION and, for a
    /// fee, REWARD_SPLIT; the last one is FINAL.
    private func settle(
        _ result: GenerationResult, prompt: String, promptTokens: [Int], adapter: AdapterID, method: ScorerKind
    ) async throws {
        let pipeline = engine.pipeline
        let (request, requestID, payer, key) = (request, storeRequestID, payer, idempotencyKey)
        let bucket = ComputeBucket(contributor)
        let (attribution, receipt) = try await engine.withCompute(for: bucket) {
            try pipeline.settle(
                requestID: requestID, adapter: adapter, prompt: prompt, promptTokens: promptTokens, output: result.text,
                completion: result.tokens, method: method, fee: request.fee, payer: payer, idempotencyKey: key)
        }
        let reply = Message.attribution(try await engine.wireAttribution(
            attribution.listing(top: Int(request.topRecords)), method: request.method, inference: receipt.inference.id))
        guard request.fee > 0 else {
            try await replier.finish(reply)
            return
        }
        try await replier.send(reply)
        try await replier.finish(.rewardSplit(Wire.RewardSplit(receipt)))
    }
}

extension Engine {
    /// The wire's attribution, with the index's datanet names resolved to the store's ids.
    func wireAttribution(
        _ attribution: OutputAttribution, method: Wire.AttributionMethod, inference: InferenceID?, allScores: [Float]? = nil
    ) async throws -> Wire.Attribution {
        let names = Set(attribution.datanets.map(\.name))
        let ids = try await withStore { store in
            try Dictionary(uniqueKeysWithValues: names.map { ($0, try store.datanet(named: $0).id.rawValue) })
        }
        return try Wire.Attribution(attribution, method: method, inference: inference, datanetIDs: ids, allScores: allScores)
    }
}
