import Foundation
import TensorCore

/// What to generate: how many tokens at most, how to choose them, where to stop.
public struct GenerationOptions: Sendable, Equatable {
    /// The most tokens to generate (a stop token is not counted).
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    /// Tokens that end generation and are not emitted; nil: the model's end-of-sequence ids.
    public var stopTokens: Set<Int>?
    /// The most positions (prompt plus generated tokens) the sequence may fill; nil: the
    /// model's `max_position_embeddings`. It cannot exceed that.
    public var contextLength: Int?
    /// Texts that end generation once the output contains one; the output stops before it (as the OpenAI API
    /// and vLLM do). Applied by ``TextGenerator``, which sees text; ``LlamaModel/generate`` sees tokens only.
    public var stopSequences: [String]

    /// At most this many stop sequences, each of at most `stopSequenceMaxBytes` UTF-8 bytes.
    public static let stopSequenceLimit = 16
    public static let stopSequenceMaxBytes = 256

    public init(
        maxNewTokens: Int = 128, sampling: SamplingParameters = .greedy, stopTokens: Set<Int>? = nil,
        contextLength: Int? = nil, stopSequences: [String] = []
    ) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.stopTokens = stopTokens
        self.contextLength = contextLength
        self.stopSequences = stopSequences
    }

    /// Throws for parameters that cannot generate anything meaningful.
    public func validate() throws(GenerationError) {
        try sampling.validate()
        guard maxNewTokens >= 0 else { throw .invalidMaxNewTokens(maxNewTokens) }
        if let contextLength, contextLength < 1 { throw .invalidContextLength(contextLength, maximum: nil) }
        guard stopSequences.count <= Self.stopSequenceLimit else { throw .tooManyStopSequences(stopSequences.count) }
        for sequence in stopSequences where sequence.isEmpty || sequence.utf8.count > Self.stopSequenceMaxBytes {
            throw .invalidStopSequence(sequence)
        }
    }
}

/// Why generation ended.
public enum StopReason: String, Sendable, Equatable, Codable {
    /// The model chose a stop token.
    case stopToken = "stop_token"
    /// `maxNewTokens` tokens were generated.
    case maxTokens = "max_tokens"
    /// The prompt and the generated tokens fill the context.
    case contextFull = "context_full"
    /// The caller's `shouldStop` asked to stop (a cancelled request).
    case cancelled
    /// The output reached one of the options' stop sequences.
    case stopSequence = "stop_sequence"
}

/// Where the time of a generation went.
public struct GenerationTimings: Sendable, Equatable {
    /// The forward pass over the prompt.
    public var promptSeconds: Double
    /// Everything after it: sampling every token and the forward pass of each but the last.
    public var generationSeconds: Double

    public init(promptSeconds: Double = 0, generationSeconds: Double = 0) {
        self.promptSeconds = promptSeconds
        self.generationSeconds = generationSeconds
    }

    public var totalSeconds: Double { promptSeconds + generationSeconds }
}

/// The tokens a model generated for a prompt.
public struct TokenGeneration: Sendable, Equatable {
    /// The generated ids, without the prompt and without the stop token.
    public var tokens: [Int]
    public var stopReason: StopReason
    /// The stop token chosen, when `stopReason` is `.stopToken`.
    public var stopToken: Int?
    public var promptTokenCount: Int
    public var timings: GenerationTimings

    /// Generated tokens per second after the prompt (0 when nothing was timed).
    public var tokensPerSecond: Double {
        timings.generationSeconds > 0 ? Double(tokens.count) / timings.generationSeconds : 0
    }
}

/// Generation that cannot start or go on, with what is wrong.
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    case emptyPrompt
    case invalidTemperature(Float)
    case invalidTopK(Int)
    case invalidTopP(Float)
    case invalidMaxNewTokens(Int)
    case invalidContextLength(Int, maximum: Int?)
    case promptTooLong(tokens: Int, context: Int)
    case tooManyStopSequences(Int)
    case invalidStopSequence(String)
    case model(ModelInputError)

    public var description: String {
        switch self {
        case .emptyPrompt: "the prompt has no tokens"
        case .invalidTemperature(let value): "temperature must be a finite number >= 0 (0 is greedy), got \(value)"
        case .invalidTopK(let value): "top-k must be at least 1, got \(value)"
        case .invalidTopP(let value): "top-p must lie in (0, 1], got \(value)"
        case .invalidMaxNewTokens(let value): "the maximum number of new tokens must be >= 0, got \(value)"
        case .invalidContextLength(let value, let maximum):
            "the context length must lie in 1...\(maximum.map(String.init) ?? "max_position_embeddings"), got \(value)"
        case .promptTooLong(let tokens, let context): "the prompt's \(tokens) tokens do not fit the context of \(context)"
        case .tooManyStopSequences(let count):
            "at most \(GenerationOptions.stopSequenceLimit) stop sequences are allowed, got \(count)"
        case .invalidStopSequence(let sequence):
            "a stop sequence must have 1 to \(GenerationOptions.stopSequenceMaxBytes) UTF-8 bytes, got \(sequence.utf8.count): \(sequence.debugDescription.prefix(80))"
        case .model(let error): error.description
        }
    }
}

extension LlamaModel {
    /// Generates tokens after `prompt`: one forward pass over the prompt into a KV cache, then one
    /// per generated token, choosing each by `options.sampling` until a stop token, the token
    /// limit or the end of the context. `onToken` sees each emitted token as soon as it is chosen
    /// (never the stop token). With `adapter`, every step runs through its LoRA layers.
    /// `shouldStop` is asked after each emitted token; true ends generation as `.cancelled`.
    public func generate(
        prompt: [Int], options: GenerationOptions = GenerationOptions(), adapter: LoRAAdapter? = nil,
        onToken: (Int) -> Void = { _ in }, shouldStop: () -> Bool = { false }
    ) throws(GenerationError) -> TokenGeneration {
        try generate(
            prompts: [prompt], adapters: [adapter], options: options, onToken: { _, token in onToken(token) },
            shouldStop: { _ in shouldStop() })[0]
    }

    /// Generates after several prompts at once, stream i through `adapters[i]` (nil: the base), in
    /// lockstep: one batched forward pass (`forward(streams:)`) over every stream still running per
    /// step, so the base weights are read once for all of them. Each stream stops on its own and
    /// gives what `generate(prompt:)` gives it alone; stream i samples with seed `sampling.seed + i`.
    /// `onToken` sees (stream, token) as each is chosen. Timings: the batched prompt pass, then the
    /// time until the stream ended. `shouldStop(stream)` is asked after each token of that stream; true ends the
    /// stream as `.cancelled`.
    public func generate(
        prompts: [[Int]], adapters: [LoRAAdapter?], options: GenerationOptions = GenerationOptions(),
        onToken: (Int, Int) -> Void = { _, _ in }, shouldStop: (Int) -> Bool = { _ in false }
    ) throws(GenerationError) -> [TokenGeneration] {
        precondition(prompts.count == adapters.count, "one adapter (or nil) per prompt")
        try options.validate()
        let context = options.contextLength ?? config.maxPositions
        guard context <= config.maxPositions else { throw .invalidContextLength(context, maximum: config.maxPositions) }
        var samplers: [Sampler] = [], limits: [Int] = [], caches: [KVCache] = []
        for (stream, prompt) in prompts.enumerated() {
            guard !prompt.isEmpty else { throw .emptyPrompt }
            guard prompt.count <= context else { throw .promptTooLong(tokens: prompt.count, context: context) }
            if let (position, token) = prompt.enumerated().first(where: { $0.element < 0 || $0.element >= config.vocabularySize }) {
                throw .model(.tokenOutOfRange(position: position, token: token, vocabularySize: config.vocabularySize))
            }
            var sampling = options.sampling
            sampling.seed &+= UInt64(stream)
            samplers.append(try Sampler(sampling))
            // The tokens that may be generated; the last of them is never fed back. A stream that may generate
            // none never runs, and needs no cache.
            limits.append(min(options.maxNewTokens, context - prompt.count))
            caches.append(limits[stream] > 0 ? KVCache(config: config, capacity: prompt.count + limits[stream] - 1) : .empty)
        }
        let stops = options.stopTokens ?? Set(config.eosTokenIDs)
        var results = prompts.map {
            TokenGeneration(
                tokens: [], stopReason: options.maxNewTokens == 0 ? .maxTokens : .contextFull, stopToken: nil,
                promptTokenCount: $0.count, timings: GenerationTimings())
        }
        // The streams still running.
        var running = prompts.indices.filter { limits[$0] > 0 }
        guard !running.isEmpty else { return results }

        /// One batched pass of the running streams; their caches move into the batch and back, never copied.
        func step(_ tokens: [[Int]]) throws(GenerationError) -> Tensor {
            var batchCaches = running.map { stream in
                var cache = KVCache.empty
                swap(&cache, &caches[stream])
                return cache
            }
            defer { for (index, stream) in running.enumerated() { swap(&caches[stream], &batchCaches[index]) } }
            do {
                return try forward(streams: tokens, caches: &batchCaches, adapters: running.map { adapters[$0] })
            } catch {
                throw .model(error)
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        var logits = try step(running.map { prompts[$0] })
        // The logits row of each running stream's last position.
        var lastRows = running.reduce(into: [Int]()) { $0.append(($0.last ?? -1) + prompts[$1].count) }
        let promptEnd = clock.now
        for stream in running { results[stream].timings.promptSeconds = Self.seconds(promptEnd - start) }

        while !running.isEmpty {
            var next: [(stream: Int, token: Int)] = []
            for (index, stream) in running.enumerated() {
                let last = logits.slice(0, lastRows[index]..<lastRows[index] + 1)
                let token = last.withUnsafePointer { samplers[stream].next(UnsafeBufferPointer(start: $0, count: config.vocabularySize)) }
                if stops.contains(token) {
                    results[stream].stopReason = .stopToken
                    results[stream].stopToken = token
                } else {
                    results[stream].tokens.append(token)
                    onToken(stream, token)
                    if shouldStop(stream) {
                        results[stream].stopReason = .cancelled
                    } else if results[stream].tokens.count == options.maxNewTokens {
                        results[stream].stopReason = .maxTokens
                    } else if results[stream].tokens.count == limits[stream] {
                        results[stream].stopReason = .contextFull
                    } else {
                        next.append((stream, token))
                        continue
                    }
                }
                results[stream].timings.generationSeconds = Self.seconds(clock.now - promptEnd)
            }
            running = next.map(\.stream)
            guard !running.isEmpty else { break }
            logits = try step(next.map { [$0.token] })
            lastRows = Array(running.indices)
        }
        return results
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}

/// Turns a stream of bytes into text without splitting a character: a multi-byte UTF-8 sequence
/// cut between two appends is held back until it is complete. Bytes that can never form a
/// character become U+FFFD at once, as `String(decoding:as:)` repairs them, so the pieces joined
/// equal `String(decoding: allBytes, as: UTF8.self)`.
public struct UTF8StreamDecoder: Sendable, Equatable {
    private var pending: [UInt8] = []

    public init() {}

    /// The text that `bytes` completes (perhaps empty).
    public mutating func append(_ bytes: [UInt8]) -> String {
        pending += bytes
        guard !pending.isEmpty else { return "" }
        let cut = pending.count - Self.incompleteSuffixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Whatever is still held, repaired (U+FFFD) since no byte will complete it.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Whether bytes are held back waiting for the rest of a character.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// The length of the tail of `bytes` that starts a valid multi-byte sequence without ending it.
    static func incompleteSuffixLength(_ bytes: [UInt8]) -> Int {
        // A sequence is at most 4 bytes, so an unfinished one starts within the last 3.
        for length in 1...min(3, bytes.count) {
            let lead = bytes[bytes.count - length]
            guard lead & 0xC0 == 0x80 else {
                let needed = switch lead {
                case 0xC2...0xDF: 2
                case 0xE0...0xEF: 3
                case 0xF0...0xF4: 4
                default: 0
                }
                guard length < needed else { return 0 }
                // The bytes after the lead must be the continuation bytes valid in their places.
                for offset in 1..<length {
                    let byte = bytes[bytes.count - length + offset]
                    let range: ClosedRange<UInt8> = switch (offset, lead) {
                    case (1, 0xE0): 0xA0...0xBF
                    case (1, 0xED): 0x80...0x9F
                    case (1, 0xF0): 0x90...0xBF
                    case (1, 0xF4): 0x80...0x8F
                    default: 0x80...0xBF
                    }
                    guard range.contains(byte) else { return 0 }
                }
                return length
            }
        }
        return 0
    }
}
