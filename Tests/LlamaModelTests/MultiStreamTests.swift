import Testing
import TensorCore
@testable import LlamaModel

@Suite struct MultiStreamTests {
    /// Streams with their own adapters (or none), prompts of different lengths, then decoding steps:
    /// the batched pass gives each stream the logits of running it alone.
    @Test func batchedStreamsEqualEachStreamAlone() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        let peft = try LoRAAdapter(folder: fixture("lora-all-linear"), model: model.config)
        var other = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 3, targets: [.query, .value, .down]), model: model.config, seed: 5)
        var random = SeededRandom(seed: 6)
        for layer in other.pairs.indices {
            for target in other.pairs[layer].keys { other.pairs[layer][target]!.b = random.normalTensor(shape: other.pairs[layer][target]!.b.shape) }
        }
        let adapters: [LoRAAdapter?] = [peft, nil, other]
        let prompts = [[1, 2, 3, 4, 5], [7, 8, 9], [250, 11, 12, 13, 14, 15, 16]]
        var batchedCaches = prompts.map { KVCache(config: model.config, capacity: $0.count + 4) }
        var aloneCaches = batchedCaches
        var steps = prompts
        for step in 0..<5 {
            let batched = try model.forward(streams: steps, caches: &batchedCaches, adapters: adapters)
            var row = 0
            for stream in steps.indices {
                let alone = try model.forward(steps[stream], cache: &aloneCaches[stream], adapter: adapters[stream])
                for position in 0..<steps[stream].count {
                    let expected = (0..<model.config.vocabularySize).map { alone[position, $0] }
                    let error = worstRelativeError(batched.slice(0, row..<row + 1), [expected])
                    #expect(error <= 1e-5, "step \(step), stream \(stream), position \(position): \(error)")
                    row += 1
                }
                #expect(batchedCaches[stream].count == aloneCaches[stream].count)
            }
            #expect(row == batched.shape[0])
            steps = steps.indices.map { [(step * 31 + $0 * 17) % model.config.vocabularySize] }
        }
        // The adapters matter: stream 0 alone without its adapter differs.
        var bare = KVCache(config: model.config)
        let without = try model.forward(prompts[0], cache: &bare)
        var adapted = KVCache(config: model.config)
        #expect(worstRelativeError(try model.forward(prompts[0], cache: &adapted, adapter: peft), (0..<prompts[0].count).map { r in (0..<model.config.vocabularySize).map { without[r, $0] } }) > 1e-3)
    }

    /// Lockstep generation gives every stream what it gets alone, streams ending at different steps.
    @Test func lockstepGenerationEqualsEachStreamAlone() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-sharded"))
        let peft = try LoRAAdapter(folder: fixture("lora-all-linear"), model: model.config)
        let prompts = [[1, 2, 3], [40, 41, 42, 43, 44], [9], [100, 7]]
        let adapters: [LoRAAdapter?] = [peft, nil, peft, nil]
        for options in [
            GenerationOptions(maxNewTokens: 12, stopTokens: []),
            GenerationOptions(maxNewTokens: 9, sampling: SamplingParameters(temperature: 0.9, topK: 20, seed: 3), stopTokens: []),
            GenerationOptions(maxNewTokens: 20, contextLength: 16),
        ] {
            var streamed: [[Int]] = Array(repeating: [], count: prompts.count)
            let together = try model.generate(prompts: prompts, adapters: adapters, options: options) { streamed[$0].append($1) }
            for stream in prompts.indices {
                var alone = options
                alone.sampling.seed += UInt64(stream)
                let expected = try model.generate(prompt: prompts[stream], options: alone, adapter: adapters[stream])
                #expect(together[stream].tokens == expected.tokens, "stream \(stream), \(options)")
                #expect(together[stream].stopReason == expected.stopReason && together[stream].stopToken == expected.stopToken)
                #expect(streamed[stream] == expected.tokens)
            }
        }
        let ends = try model.generate(prompts: prompts, adapters: adapters, options: GenerationOptions(maxNewTokens: 20, contextLength: 16))
        #expect(Set(ends.map(\.tokens.count)).count > 1, "the streams end at different steps")
    }

    @Test func badStreamsAreRefused() throws {
        let model = try LlamaModel(folder: fixture("tiny-llama-tied"))
        var caches = [KVCache(config: model.config, capacity: 2), KVCache(config: model.config, capacity: 2)]
        #expect(throws: ModelInputError.emptyInput) { try model.forward(streams: [[1], []], caches: &caches, adapters: [nil, nil]) }
        #expect(throws: ModelInputError.contextOverflow(positions: 3, capacity: 2)) {
            try model.forward(streams: [[1], [1, 2, 3]], caches: &caches, adapters: [nil, nil])
        }
        #expect(caches.allSatisfy { $0.count == 0 }, "a refused pass leaves the caches as they were")
    }
}
