// The 'decode' workload of shared/reference/WORKLOADS.md for Tributary, timed as
// Benchmarks/peer/decode.py times transformers' generate: the model folder is loaded, one untimed
// warm-up generation runs (first touch of the mapped weights, BLAS and worker start-up), then each
// timed run is one whole `LlamaModel.generate` call, the prompt's forward pass included; the best
// counts. decode.py runs this and the peer and prints the ratio.
//
// Run: cd Benchmarks && swift run -c release Decode --model DIR --prompt TEXT [--max-tokens 128] [--runs 3] [--json]
import ArgumentParser
import Foundation
import LlamaModel
import TensorCore

@main
struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Greedy decode of one stream: one untimed warm-up generation, then the best of --runs timed ones.")

    @Option(help: "A Hugging Face model folder.")
    var model: String

    @Option(help: "The prompt text (tokenized as tributary-engine generate does).")
    var prompt: String

    @Option(help: "New tokens per generation (stop tokens are ignored, so every run generates them all).")
    var maxTokens = 128

    @Option(help: "Timed generations; the fastest counts.")
    var runs = 3

    @Flag(help: "Copy every matrix to 64-byte-aligned memory first (the loader did before issue 19), to compare with weights used in place.")
    var alignedCopy = false

    @Flag(help: "One JSON object: tokens_per_second (the best run), run_seconds, tokens, prompt_tokens, threads.")
    var json = false

    func validate() throws {
        guard maxTokens >= 1, runs >= 1 else { throw ValidationError("--max-tokens and --runs must be at least 1") }
    }

    func run() throws {
        let generator = try TextGenerator(folder: model)
        var model = generator.model
        if alignedCopy {
            let weights = model.weights
            model.weights.embedding = weights.embedding.cacheLineAligned()
            model.weights.head = model.config.tieWordEmbeddings ? model.weights.embedding : weights.head.cacheLineAligned()
            for index in weights.layers.indices {
                var layer = weights.layers[index]
                for keyPath in [\LlamaLayerWeights.query, \.key, \.value, \.output, \.gate, \.up, \.down] {
                    layer[keyPath: keyPath] = layer[keyPath: keyPath].cacheLineAligned()
                }
                model.weights.layers[index] = layer
            }
        }
        let prompt = generator.promptPrefix + generator.tokenizer.promptTokens(self.prompt)
        let options = GenerationOptions(maxNewTokens: maxTokens, stopTokens: [])
        _ = try model.generate(prompt: prompt, options: options)
        var seconds: [Double] = [], tokens: [Int] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let generation = try model.generate(prompt: prompt, options: options)
            let elapsed = ContinuousClock.now - start
            seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            tokens = generation.tokens
        }
        let rate = Double(maxTokens) / seconds.min()!
        if json {
            let report: [String: Any] = [
                "tokens_per_second": rate, "run_seconds": seconds, "tokens": tokens, "prompt_tokens": prompt.count,
                "threads": BLASRuntime.threads, "aligned_copy": alignedCopy,
                "weight_bytes_mapped": generator.model.weights.mappedBytes,
                "weight_bytes_alignment_copied": generator.model.weights.alignmentCopyBytes,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "greedy decode, %d prompt tokens, %d new tokens, %d BLAS threads, best of %d: %.0f tokens/s",
                         prompt.count, maxTokens, BLASRuntime.threads, runs, rate))
        }
    }
}
