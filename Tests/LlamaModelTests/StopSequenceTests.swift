import Testing
import TensorCore
import Tokenizers

@testable import LlamaModel

/// Stop sequences: the output ends just before the first one, text that might begin one is held back, and
/// nothing after it is ever released.
@Suite struct StopSequenceTests {
    /// The output a stop sequence leaves of `text`: everything before the earliest occurrence of any of them.
    static func expectedOutput(_ text: String, stops: [String]) -> (output: String, stopped: Bool) {
        let bytes = Array(text.utf8)
        let starts = stops.compactMap { stop -> Int? in
            let needle = Array(stop.utf8)
            guard bytes.count >= needle.count else { return nil }
            return (0...(bytes.count - needle.count)).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }
        }
        guard let cut = starts.min() else { return (text, false) }
        return (String(decoding: bytes[..<cut], as: UTF8.self), true)
    }

    @Test func theFilterReleasesExactlyTheTextBeforeTheFirstStopAndNeverTooEarly() {
        var random = SeededRandom(seed: 31)
        let alphabet = ["a", "b", "é", "日", " ", "👋"]
        func word(_ count: Int) -> String { (0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] }.joined() }
        var stoppedCases = 0
        for _ in 0..<500 {
            let pieces = (0..<Int.random(in: 1...30, using: &random)).map { _ in word(Int.random(in: 0...3, using: &random)) }
            let stops = (0..<Int.random(in: 1...3, using: &random)).map { _ in word(Int.random(in: 1...4, using: &random)) }
            let expected = Self.expectedOutput(pieces.joined(), stops: stops)
            var filter = StopSequenceFilter(stops)
            var released = ""
            var stopped = false
            for piece in pieces where !stopped {
                let step = filter.append(piece)
                released += step.released
                stopped = step.stopped
                #expect(expected.output.hasPrefix(released), "released \(released.debugDescription) too early for \(stops)")
            }
            if !stopped { released += filter.flush() }
            #expect(released == expected.output && stopped == expected.stopped, "\(pieces) with \(stops)")
            if stopped { stoppedCases += 1 }
        }
        #expect(stoppedCases > 100 && stoppedCases < 490)
    }

    @Test func withoutStopSequencesEveryPieceGoesStraightThrough() {
        var filter = StopSequenceFilter([])
        #expect(filter.append("abc") == ("abc", false))
        #expect(filter.flush() == "")
    }

    @Test func generationEndsBeforeTheStopSequenceWithItsReason() throws {
        let config = LlamaConfig(
            vocabularySize: 258, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 2, maxPositions: 128,
            bosTokenID: 256, eosTokenIDs: [257])
        let generator = TextGenerator(
            model: LlamaModel(config: config, weights: LlamaWeights(random: config, seed: 32, standardDeviation: 0.5)), tokenizer: try ByteTokenizer(vocabularySize: 258, specialTokens: [256: "<bos>", 257: "<eos>"]),
            promptPrefix: [256], stopTokens: [])
        let free = try generator.generate(prompt: "stop here", options: GenerationOptions(maxNewTokens: 60))
        let characters = Array(free.text)
        try #require(characters.count > 30)
        let stop = String(characters[20..<22])
        var pieces: [StreamedPiece] = []
        let stopped = try generator.generate(prompt: "stop here", options: GenerationOptions(maxNewTokens: 60, stopSequences: [stop])) {
            pieces.append($0)
        }
        let expected = Self.expectedOutput(free.text, stops: [stop])
        #expect(expected.stopped && stopped.text == expected.output && stopped.stopReason == .stopSequence)
        #expect(pieces.map(\.text).joined() == stopped.text)
        #expect(pieces.allSatisfy { $0.token != nil } && pieces.count == stopped.tokens.count)
        #expect(stopped.tokens == Array(free.tokens.prefix(stopped.tokens.count)) && stopped.tokens.count < 60)
    }

    @Test func badStopSequencesAreRefusedByName() {
        func error(_ stops: [String]) -> GenerationError? {
            do {
                try GenerationOptions(stopSequences: stops).validate()
                return nil
            } catch {
                return error
            }
        }
        #expect(error(["\n", "END"]) == nil)
        #expect(error([""]) == .invalidStopSequence(""))
        let long = String(repeating: "x", count: GenerationOptions.stopSequenceMaxBytes + 1)
        #expect(error([long]) == .invalidStopSequence(long))
        #expect(error(Array(repeating: "x", count: GenerationOptions.stopSequenceLimit + 1)) == .tooManyStopSequences(17))
    }
}
