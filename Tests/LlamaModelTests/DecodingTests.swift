import Foundation
import Testing
import TensorCore
import Tokenizers
@testable import LlamaModel

/// Greedy decoding against transformers' `generate` and a cache-free argmax chain, seeded sampling
/// against transformers' warpers and by empirical frequencies, streaming text, and validation.
/// Fixtures: Tests/LlamaModelTests/make_generation_fixtures.py.
private struct ExpectedGeneration: Decodable {
    struct Run: Decodable {
        let prompt: [Int]
        let free: [Int]
        let eos: Int
        let with_eos: [Int]
    }
    let max_new_tokens: Int
    let runs: [Run]
}

private func expectedGeneration(_ name: String) throws -> ExpectedGeneration {
    try JSONDecoder().decode(
        ExpectedGeneration.self, from: Data(contentsOf: URL(fileURLWithPath: fixture(name) + "/expected_generation.json")))
}

private struct SamplingCases: Decodable {
    struct Case: Decodable {
        let logits: [Float]
        let temperature: Float
        let top_k: Int?
        let top_p: Float
        let probabilities: [Double]
    }
    let cases: [Case]
}

private let models = ["tiny-llama-sharded", "tiny-llama-tied"]

/// The greedy continuation by calling the model on the whole growing sequence each step (no cache).
private func argmaxChain(_ model: LlamaModel, prompt: [Int], count: Int) throws -> [Int] {
    var sequence = prompt
    for _ in 0..<count {
        let logits = try model.logits(sequence)
        let last = Array(logits.scalars.suffix(model.config.vocabularySize))
        sequence.append(Sampler.argmax(last))
    }
    return Array(sequence.dropFirst(prompt.count))
}

@Suite struct GreedyDecodingTests {
    @Test(arguments: models)
    func greedyWithTheCacheEqualsTheArgmaxChainWithout(name: String) throws {
        let model = try LlamaModel(folder: fixture(name))
        for run in try expectedGeneration(name).runs {
            let generated = try model.generate(prompt: run.prompt, options: GenerationOptions(maxNewTokens: 12, stopTokens: []))
            #expect(generated.tokens == (try argmaxChain(model, prompt: run.prompt, count: 12)))
            #expect(generated.stopReason == .maxTokens && generated.promptTokenCount == run.prompt.count)
        }
    }

    @Test(arguments: models)
    func greedyEqualsTransformersGenerate(name: String) throws {
        let model = try LlamaModel(folder: fixture(name))
        let reference = try expectedGeneration(name)
        for run in reference.runs {
            let free = try model.generate(
                prompt: run.prompt, options: GenerationOptions(maxNewTokens: reference.max_new_tokens, stopTokens: []))
            #expect(free.tokens == run.free)
            // transformers' output ends with the eos token; ours stops before it and names it.
            let stopped = try model.generate(
                prompt: run.prompt, options: GenerationOptions(maxNewTokens: reference.max_new_tokens, stopTokens: [run.eos]))
            #expect(stopped.tokens + [run.eos] == run.with_eos)
            #expect(stopped.stopReason == .stopToken && stopped.stopToken == run.eos)
        }
    }

    @Test func theConfigsEndOfSequenceStopsByDefault() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        let eos = try #require(model.config.eosTokenIDs.first)
        // The second prompt's free run reaches eos (257) at its third token.
        let run = try expectedGeneration("tiny-llama-sharded").runs[1]
        let at = try #require(run.free.firstIndex(of: eos))
        let generated = try model.generate(prompt: run.prompt, options: GenerationOptions(maxNewTokens: 12))
        #expect(generated.tokens == Array(run.free[..<at]))
        #expect(generated.stopReason == .stopToken && generated.stopToken == eos)
    }

    @Test func limitsEndGenerationWithTheirReason() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        let run = try expectedGeneration("tiny-llama-tied").runs[1]
        let prompt = run.prompt
        func generate(_ options: GenerationOptions) throws -> TokenGeneration {
            try model.generate(prompt: prompt, options: options)
        }
        let five = try generate(GenerationOptions(maxNewTokens: 5, stopTokens: []))
        #expect(five.tokens == Array(run.free.prefix(5)) && five.stopReason == .maxTokens)
        let three = try generate(GenerationOptions(maxNewTokens: 10, stopTokens: [], contextLength: prompt.count + 3))
        #expect(three.tokens == Array(run.free.prefix(3)) && three.stopReason == .contextFull)
        let none = try generate(GenerationOptions(maxNewTokens: 10, stopTokens: [], contextLength: prompt.count))
        #expect(none.tokens.isEmpty && none.stopReason == .contextFull)
        let zero = try generate(GenerationOptions(maxNewTokens: 0))
        #expect(zero.tokens.isEmpty && zero.stopReason == .maxTokens)
        // The model's own context (max_position_embeddings 64) ends a long run.
        let full = try generate(GenerationOptions(maxNewTokens: 1000, stopTokens: []))
        #expect(full.tokens.count == model.config.maxPositions - prompt.count && full.stopReason == .contextFull)
        #expect(Array(full.tokens.prefix(12)) == run.free)
        #expect(full.timings.promptSeconds > 0 && full.timings.generationSeconds > 0 && full.tokensPerSecond > 0)
        // Both limits at once: the token limit is the reason given.
        let both = try generate(GenerationOptions(maxNewTokens: 3, stopTokens: [], contextLength: prompt.count + 3))
        #expect(both.stopReason == .maxTokens)
    }

    @Test func badRequestsAreRefusedByName() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        func error(_ options: GenerationOptions, prompt: [Int] = [256, 72]) -> GenerationError? {
            do {
                _ = try model.generate(prompt: prompt, options: options)
                return nil
            } catch {
                return error
            }
        }
        func sampling(_ temperature: Float = 1, topK: Int? = nil, topP: Float = 1) -> GenerationOptions {
            GenerationOptions(sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP))
        }
        #expect(error(GenerationOptions(), prompt: []) == .emptyPrompt)
        #expect(error(sampling(-0.5)) == .invalidTemperature(-0.5))
        #expect(error(sampling(.infinity)) == .invalidTemperature(.infinity))
        if case .invalidTemperature(let value)? = error(sampling(.nan)) { #expect(value.isNaN) } else { Issue.record("NaN temperature accepted") }
        #expect(error(sampling(topK: 0)) == .invalidTopK(0))
        #expect(error(sampling(topK: -3)) == .invalidTopK(-3))
        #expect(error(sampling(topP: 0)) == .invalidTopP(0))
        #expect(error(sampling(topP: 1.5)) == .invalidTopP(1.5))
        #expect(error(sampling(topP: -0.1)) == .invalidTopP(-0.1))
        if case .invalidTopP(let value)? = error(sampling(topP: .nan)) { #expect(value.isNaN) } else { Issue.record("NaN top-p accepted") }
        // Greedy decoding still refuses nonsense it would ignore.
        #expect(error(sampling(0, topK: 0)) == .invalidTopK(0))
        #expect(error(GenerationOptions(maxNewTokens: -1)) == .invalidMaxNewTokens(-1))
        #expect(error(GenerationOptions(contextLength: 0)) == .invalidContextLength(0, maximum: nil))
        #expect(error(GenerationOptions(contextLength: 65)) == .invalidContextLength(65, maximum: 64))
        #expect(error(GenerationOptions(), prompt: Array(repeating: 65, count: 65)) == .promptTooLong(tokens: 65, context: 64))
        #expect(error(GenerationOptions(), prompt: [256, 300]) == .model(.tokenOutOfRange(position: 1, token: 300, vocabularySize: 300)))
        #expect(GenerationError.invalidTopK(0).description == "top-k must be at least 1, got 0")
        #expect(GenerationError.invalidTopP(2).description.contains("(0, 1]"))
        #expect(GenerationError.invalidTemperature(-1).description.contains(">= 0"))
    }
}

@Suite struct SamplingTests {
    let model: LlamaModel
    let prompt: [Int]

    init() throws {
        model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        prompt = try expectedGeneration("tiny-llama-sharded").runs[0].prompt
    }

    func sample(_ parameters: SamplingParameters, tokens: Int = 20) throws -> [Int] {
        try model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: tokens, sampling: parameters, stopTokens: [])).tokens
    }

    @Test func theSameSeedGivesTheSameTokens() throws {
        let parameters = SamplingParameters(temperature: 1.2, topK: 50, topP: 0.95, seed: 42)
        let first = try sample(parameters)
        #expect(try sample(parameters) == first)
        let others = try (1...4).map { try sample(SamplingParameters(temperature: 1.2, topK: 50, topP: 0.95, seed: UInt64($0))) }
        #expect(others.contains { $0 != first }, "other seeds give other tokens")
        #expect(first != (try sample(.greedy)), "sampling at temperature 1.2 leaves the greedy path")
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func topKOneAndATinyTopPAreGreedy(seed: UInt64) throws {
        let greedy = try sample(.greedy)
        #expect(try sample(SamplingParameters(temperature: 1, topK: 1, seed: seed)) == greedy)
        #expect(try sample(SamplingParameters(temperature: 3, topK: 1, seed: seed)) == greedy)
        #expect(try sample(SamplingParameters(temperature: 1, topP: 1e-6, seed: seed)) == greedy)
        #expect(try sample(SamplingParameters(temperature: 0.5, topK: 40, topP: 1e-6, seed: seed)) == greedy)
    }

    @Test func argmaxTakesTheLowestIDAmongTies() {
        #expect(Sampler.argmax([1, 3, 3, 2]) == 1)
        #expect(Sampler.argmax([-1, -1]) == 0)
        var sampler = try! Sampler(.greedy)
        #expect(sampler.next([0.5, 2, 2, -4]) == 1)
    }

    /// The kept distribution equals transformers' Temperature, TopK and TopP warpers followed by
    /// softmax, ties at the top-k boundary and in the nucleus included.
    @Test func distributionEqualsTransformersWarpers() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("sampling_distributions.json")))
        let cases = try JSONDecoder().decode(SamplingCases.self, from: data).cases
        #expect(cases.count >= 30)
        for item in cases {
            let sampler = try Sampler(SamplingParameters(temperature: item.temperature, topK: item.top_k, topP: item.top_p))
            let ours = sampler.distribution(item.logits)
            let worst = zip(ours, item.probabilities).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "T=\(item.temperature) k=\(String(describing: item.top_k)) p=\(item.top_p): \(ours) vs \(item.probabilities)")
            // The same tokens are kept, exactly.
            #expect(ours.map { $0 > 0 } == item.probabilities.map { $0 > 0 })
        }
    }

    /// The filtered distribution worked out by hand for one logits vector.
    static func handFiltered(_ logits: [Double], temperature: Double, topK: Int?, topP: Double) -> [Double] {
        var scaled = logits.map { $0 / temperature }
        if let topK {
            let threshold = scaled.sorted(by: >)[topK - 1]
            scaled = scaled.map { $0 >= threshold ? $0 : -.infinity }
        }
        let maximum = scaled.max()!
        var probabilities = scaled.map { exp($0 - maximum) }
        let total = probabilities.reduce(0, +)
        probabilities = probabilities.map { $0 / total }
        if topP < 1 {
            // Most probable first, higher id first among equals (torch's ascending sort, reversed).
            let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && $0 > $1) }
            var before = 0.0
            var kept = Set<Int>()
            for index in order where kept.isEmpty || before < topP {
                kept.insert(index)
                before += probabilities[index]
            }
            probabilities = probabilities.indices.map { kept.contains($0) ? probabilities[$0] : 0 }
            let keptTotal = probabilities.reduce(0, +)
            probabilities = probabilities.map { $0 / keptTotal }
        }
        return probabilities
    }

    @Test(arguments: [(Float(1), Int?.none, Float(1)), (0.7, 5, 0.9), (1, nil, 0.8), (1.5, 3, 1), (0.5, nil, 0.97)])
    func frequenciesMatchTheFilteredDistribution(temperature: Float, topK: Int?, topP: Float) throws {
        let logits: [Float] = [2.0, 1.0, 0.5, 0.5, -1.0, 3.0, 0.0, 0.5, -2.0, 1.5, 2.5, -0.5]
        let expected = Self.handFiltered(logits.map(Double.init), temperature: Double(temperature), topK: topK, topP: Double(topP))
        var sampler = try Sampler(SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: 2024))
        let ours = sampler.distribution(logits)
        #expect(zip(ours, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(ours) vs \(expected)")
        let draws = 100_000
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<draws { counts[sampler.next(logits)] += 1 }
        for (token, probability) in expected.enumerated() {
            let frequency = Double(counts[token]) / Double(draws)
            if probability == 0 {
                #expect(counts[token] == 0, "token \(token) is filtered out but was drawn \(counts[token]) times")
            } else {
                // Five standard deviations of a binomial frequency.
                let tolerance = 5 * (probability * (1 - probability) / Double(draws)).squareRoot()
                #expect(abs(frequency - probability) <= tolerance, "token \(token): \(frequency) vs \(probability) ± \(tolerance)")
            }
        }
    }
}

/// A tokenizer for the tests' streaming: the first tokens of a known greedy run stand for pieces
/// of multi-byte characters.
private struct FragmentTokenizer: GenerationTokenizer {
    let bytes: [Int: [UInt8]]
    func promptTokens(_ text: String) -> [Int] { text.utf8.map(Int.init) }
    func textBytes(ofToken id: Int) -> [UInt8] { bytes[id] ?? [] }
}

@Suite struct StreamingTests {
    @Test func charactersSplitAcrossAppendsComeOutWhole() {
        let text = "héllo 👋🏽 日本 ok"
        var decoder = UTF8StreamDecoder()
        var pieces: [String] = []
        for byte in text.utf8 { pieces.append(decoder.append([byte])) }
        #expect(!decoder.hasPendingBytes && decoder.finish() == "")
        #expect(pieces.joined() == text)
        #expect(!pieces.joined().contains("\u{FFFD}"))
        // 👋 is 4 bytes: three empty pieces, then the whole character.
        let wave = text.utf8.count - "🏽 日本 ok".utf8.count - 4
        #expect(Array(pieces[wave..<wave + 4]) == ["", "", "", "👋"])
    }

    @Test func invalidBytesAreRepairedAsStringDecodingDoes() {
        var decoder = UTF8StreamDecoder()
        #expect(decoder.append([0xE2]) == "" && decoder.append([0x82]) == "")
        #expect(decoder.append([0x41]) == "\u{FFFD}A", "a sequence that cannot finish is repaired at once")
        #expect(decoder.append([0xC0, 0x80, 0x42]) == String(decoding: [0xC0, 0x80, 0x42] as [UInt8], as: UTF8.self))
        #expect(decoder.append([0xED]) == "" && decoder.append([0xA0]) == "\u{FFFD}\u{FFFD}", "no surrogates")
        #expect(decoder.append([0xF0, 0x9F]) == "" && decoder.hasPendingBytes)
        #expect(decoder.finish() == "\u{FFFD}" && !decoder.hasPendingBytes)
    }

    /// Any bytes, cut anywhere: the pieces joined are the bytes decoded at once.
    @Test func piecesJoinedEqualTheWholeDecoded() {
        var random = SeededRandom(seed: 99)
        let alphabet = Array("aé€👋\u{10FFFF}".utf8) + [0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF]
        for _ in 0..<2000 {
            let bytes = (0..<Int(random.next() % 24)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            var decoder = UTF8StreamDecoder()
            var joined = ""
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + 1 + Int(random.next() % 4))
                joined += decoder.append(Array(bytes[start..<end]))
                start = end
            }
            joined += decoder.finish()
            #expect(joined == String(decoding: bytes, as: UTF8.self), "\(bytes)")
        }
    }

    @Test func generatorStreamsWholeCharactersAndFlushesAnUnfinishedOne() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        let run = try expectedGeneration("tiny-llama-tied").runs[0]
        let first = Array(run.free.prefix(6))
        try #require(Set(first).count == 6)
        // 👋 = F0 9F 91 8B over two tokens, 日 = E6 97 A5 over three, then "é".
        let fragments: [[UInt8]] = [[0xF0, 0x9F], [0x91, 0x8B], [0xE6], [0x97], [0xA5], Array("é".utf8)]
        let tokenizer = FragmentTokenizer(bytes: Dictionary(uniqueKeysWithValues: zip(first, fragments)))
        let generator = TextGenerator(model: model, tokenizer: tokenizer, promptPrefix: [256])
        #expect(generator.promptTokens("Hello") == run.prompt)
        var pieces: [StreamedPiece] = []
        let result = try generator.generate(prompt: "Hello", options: GenerationOptions(maxNewTokens: 6, stopTokens: [])) { pieces.append($0) }
        #expect(result.tokens == first)
        #expect(pieces.map(\.token) == first.map(Optional.some))
        #expect(pieces.map(\.text) == ["", "👋", "", "", "日", "é"])
        #expect(result.text == "👋日é" && result.promptTokenCount == run.prompt.count)

        pieces.removeAll()
        let cut = try generator.generate(prompt: "Hello", options: GenerationOptions(maxNewTokens: 1, stopTokens: [])) { pieces.append($0) }
        #expect(pieces == [StreamedPiece(token: first[0], text: ""), StreamedPiece(token: nil, text: "\u{FFFD}")])
        #expect(cut.text == "\u{FFFD}")
    }

    @Test func byteLevelFolderPrependsBOSAndStopsAtTheGenerationConfigsEOS() throws {
        let generator = try TextGenerator(folder: fixture("tiny-llama-sharded"))
        #expect(generator.tokenizer is ByteTokenizer)
        #expect(generator.promptTokens("Hi é") == [256, 72, 105, 32, 195, 169])
        #expect(generator.defaultStopTokens == [257])
        let run = try expectedGeneration("tiny-llama-sharded").runs[1]
        let prompt = String(decoding: run.prompt.dropFirst().map(UInt8.init), as: UTF8.self)
        var pieces: [StreamedPiece] = []
        let result = try generator.generate(prompt: prompt) { pieces.append($0) }
        #expect(result.tokens == Array(run.free[..<run.free.firstIndex(of: 257)!]))
        #expect(result.stopReason == .stopToken && result.stopToken == 257)
        #expect(pieces.map(\.text).joined() == result.text)
        let bytes = try ByteTokenizer(vocabularySize: 300, specialTokens: [256: "<bos>", 257: "<eos>"])
        #expect(result.text == bytes.decode(result.tokens))
    }
}

@Suite struct TextGeneratorFolderTests {
    /// A copy of a tiny model folder with a small byte-level BPE tokenizer.json: ids 0...255 are
    /// the bytes, 256/257 the specials "<bos>"/"<eos>", 258... merges spelling "Hello".
    static func folderWithTokenizer(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("llama-bpe-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: fixture("tiny-llama-tied")), to: target)
        var vocab: [String: Int] = [:]
        for byte in 0..<256 { vocab[String(ByteLevelMapping.characters[byte])] = byte }
        let merges = [["H", "e"], ["l", "l"], ["He", "ll"], ["Hell", "o"], ["Ġ", "w"]]
        for (index, merge) in merges.enumerated() { vocab[merge[0] + merge[1]] = 258 + index }
        func added(_ id: Int, _ content: String) -> [String: Any] {
            ["id": id, "content": content, "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false]
        }
        var json: [String: Any] = [
            "version": "1.0",
            "added_tokens": [added(256, "<bos>"), added(257, "<eos>")],
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": "<bos>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [],
                "special_tokens": ["<bos>": ["id": "<bos>", "ids": [256], "tokens": ["<bos>"]]],
            ],
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "ignore_merges": false, "vocab": vocab, "merges": merges],
        ]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: target.appendingPathComponent("tokenizer.json"))
        return target.path
    }

    @Test func aFolderWithTokenizerJSONUsesItsBPEAndTemplate() throws {
        let generator = try TextGenerator(folder: Self.folderWithTokenizer())
        #expect(generator.tokenizer is BPETokenizer)
        #expect(generator.promptPrefix.isEmpty)
        #expect(generator.promptTokens("Hello") == [256, 261], "the template adds <bos>; nothing else is prepended")
        #expect(generator.promptTokens("Hello world!") == [256, 261, 262] + Array("orld!".utf8).map(Int.init))
        var pieces: [String] = []
        let result = try generator.generate(prompt: "Hello", options: GenerationOptions(maxNewTokens: 10, stopTokens: [])) {
            pieces.append($0.text)
        }
        let tokenizer = generator.tokenizer as! BPETokenizer
        #expect(result.tokens.count == 10 && result.promptTokenCount == 2)
        #expect(pieces.joined() == result.text && result.text == tokenizer.decode(result.tokens))
        // The model sees the same ids as when given them directly.
        let direct = try generator.model.generate(prompt: [256, 261], options: GenerationOptions(maxNewTokens: 10, stopTokens: []))
        #expect(direct.tokens == result.tokens)
    }

    @Test func aBadTokenizerJSONIsNamed() throws {
        let folder = try Self.folderWithTokenizer { $0["normalizer"] = ["type": "NFKC"] }
        do {
            _ = try TextGenerator(folder: folder)
            Issue.record("loaded a tokenizer with an NFKC normalizer")
        } catch {
            #expect(error.path == folder + "/tokenizer.json")
            #expect(error.message.contains("\"normalizer.type\"") && error.message.contains("NFKC"), "\(error)")
        }
        let large = try Self.folderWithTokenizer { json in
            var tokens = json["added_tokens"] as! [[String: Any]]
            tokens.append(["id": 400, "content": "<big>", "special": true])
            json["added_tokens"] = tokens
        }
        #expect(throws: ModelLoadError.self) { try TextGenerator(folder: large) }
    }
}

@Suite struct SamplerSelectionTests {
    /// Quickselect's k-th largest equals sorting's, ties and all.
    @Test func kthLargestEqualsSorting() {
        var random = SeededRandom(seed: 5)
        for _ in 0..<300 {
            let count = 1 + Int(random.next() % 60)
            let values = (0..<count).map { _ in Float(Int(random.next() % 9)) - 4 + (random.next() % 3 == 0 ? 0.5 : 0) }
            let rank = 1 + Int(random.next() % UInt64(count))
            #expect(Sampler.largest(values, rank: rank) == values.sorted(by: >)[rank - 1], "\(values) rank \(rank)")
        }
    }

    /// On a large vocabulary the shortcuts keep exactly what a plain sort over every token keeps.
    @Test(arguments: [(Int?.none, Float(0.9)), (50, 0.95), (1000, 0.5), (nil, 0.999), (7, 1)])
    func filteringALargeVocabularyMatchesAFullSort(topK: Int?, topP: Float) throws {
        var random = SeededRandom(seed: 11)
        let logits = (0..<32_000).map { _ in 3 * random.normal() }
        let sampler = try Sampler(SamplingParameters(temperature: 0.8, topK: topK, topP: topP))
        let distribution = sampler.distribution(logits)
        let kept = Set(distribution.indices.filter { distribution[$0] > 0 })
        // The plain computation: everything sorted ascending, then the same rules.
        let scaled = logits.map { $0 / 0.8 }
        var order = scaled.indices.sorted { scaled[$0] < scaled[$1] || (scaled[$0] == scaled[$1] && $0 < $1) }
        if let topK { order = order.filter { scaled[$0] >= scaled[order[order.count - topK]] } }
        let maximum = order.map { scaled[$0] }.max()!
        let weights = order.map { exp(Double(scaled[$0] - maximum)) }
        var removed = 0
        if topP < 1 {
            let limit = (1 - Double(topP)) * weights.reduce(0, +)
            var cumulative = 0.0
            while removed < order.count - 1 {
                cumulative += weights[removed]
                guard cumulative <= limit else { break }
                removed += 1
            }
        }
        #expect(kept == Set(order[removed...]), "kept \(kept.count) vs \(order.count - removed)")
    }
}
