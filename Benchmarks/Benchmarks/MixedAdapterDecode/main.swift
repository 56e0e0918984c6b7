// The 'mixed-adapter decode' workload of shared/reference/WORKLOADS.md: 8 streams, each with its own
// LoRA adapter (r=8, q,k,v,o), greedy, 32-token prompts, 128 new tokens each, decoded in lockstep
// (one base GEMM per layer for all streams, each stream's LoRA on its own row), against the same 8
// streams on the base alone, and, for scale, the 8 adapted streams decoded one after another.
//
// Run: cd Benchmarks && swift run -c release MixedAdapterDecode [path/to/reference-llama.json]
import Foundation
import LlamaModel
import TensorCore

let (streams, promptLength, newTokens, runs) = (8, 32, 128, 3)

func run() throws {
    let configPath = CommandLine.arguments.dropFirst().first ?? "../../shared/reference/reference-llama.json"
    let config = try LlamaConfig(contentsOf: configPath)

    // Random weights from a fixed seed: weights do not change speed.
    var random = SeededRandom(seed: 0)
    func matrix(_ rows: Int, _ cols: Int) -> Tensor { random.normalTensor(shape: [rows, cols], standardDeviation: 0.02) }
    let (h, i, v) = (config.hiddenSize, config.intermediateSize, config.vocabularySize)
    let (qWidth, kvWidth) = (config.headCount * config.headDimension, config.keyValueHeadCount * config.headDimension)
    let layers = (0..<config.layerCount).map { _ in
        LlamaLayerWeights(
            inputNorm: Tensor(shape: [h], repeating: 1), query: matrix(qWidth, h), key: matrix(kvWidth, h), value: matrix(kvWidth, h),
            output: matrix(h, qWidth), postAttentionNorm: Tensor(shape: [h], repeating: 1), gate: matrix(i, h), up: matrix(i, h),
            down: matrix(h, i))
    }
    let embedding = matrix(v, h)
    let model = LlamaModel(
        config: config,
        weights: LlamaWeights(embedding: embedding, layers: layers, finalNorm: Tensor(shape: [h], repeating: 1),
                              head: config.tieWordEmbeddings ? embedding : matrix(v, h)))
    let adapters: [LoRAAdapter?] = try (0..<streams).map { stream in
        var adapter = try LoRAAdapter(
            config: LoRAConfig(rank: 8, alpha: 16, targets: [.query, .key, .value, .output]), model: config, seed: UInt64(stream + 1))
        for layer in adapter.pairs.indices {
            for target in adapter.pairs[layer].keys { adapter.pairs[layer][target]!.b = matrix(adapter.pairs[layer][target]!.b.shape[0], 8) }
        }
        return adapter
    }
    let prompts = (0..<streams).map { _ in (0..<promptLength).map { _ in Int(random.next() % UInt64(v)) } }
    let options = GenerationOptions(maxNewTokens: newTokens, stopTokens: [])

    /// Generated tokens per second of `body` (prompt passes included), the best of `runs` after a warm-up.
    func rate(_ body: () throws -> [TokenGeneration]) rethrows -> Double {
        _ = try body()
        var best = 0.0
        for _ in 0..<runs {
            let start = ContinuousClock.now
            let generated = try body().reduce(0) { $0 + $1.tokens.count }
            precondition(generated == streams * newTokens, "every stream runs to its token limit")
            let elapsed = ContinuousClock.now - start
            best = max(best, Double(generated) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18))
        }
        return best
    }

    let adapted = try rate { try model.generate(prompts: prompts, adapters: adapters, options: options) }
    let base = try rate { try model.generate(prompts: prompts, adapters: Array(repeating: nil, count: streams), options: options) }
    let oneByOne = try rate { try zip(prompts, adapters).map { try model.generate(prompt: $0, options: options, adapter: $1) } }
    print("mixed-adapter decode, reference model, \(streams) streams x \(newTokens) new tokens, prompts of \(promptLength), \(BLASRuntime.threads) BLAS threads, best of \(runs):")
    print(String(format: "  8 adapters, lockstep        %7.0f tokens/s", adapted))
    print(String(format: "  base alone, lockstep        %7.0f tokens/s", base))
    print(String(format: "  8 adapters, one by one      %7.0f tokens/s", oneByOne))
    print(String(format: "  adapters / base             %7.2fx  (lockstep / one by one: %.2fx)", adapted / base, adapted / oneByOne))
}

try run()
