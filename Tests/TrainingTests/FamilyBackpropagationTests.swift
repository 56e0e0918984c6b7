import Testing
import TensorCore
@testable import LlamaModel
@testable import Training

/// A small random model with every family's part at once: a bias on every linear layer, Qwen3's q/k norms and a
/// sliding window shorter than the batch's sequences (so the window masks something in every layer).
func randomFamilyModel(seed: UInt64, window: Int = 3) -> LlamaModel {
    let config = LlamaConfig(
        vocabularySize: 37, hiddenSize: 16, intermediateSize: 23, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
        maxPositions: 32, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, biasTargets: Set(LoRATarget.allCases), queryKeyNorm: true,
        slidingWindow: window)
    return LlamaModel(config: config, weights: LlamaWeights(random: config, seed: seed, standardDeviation: 0.4, normRange: 0.5..<1.5))
}

@Suite struct FamilyBackpropagationTests {
    /// Full mode: the new parameter kinds (biases, q/k norms) and the projections whose gradients pass through
    /// the q/k norms and the windowed softmax, each against central differences.
    @Test func fullGradientsOfBiasesAndHeadNormsMatchFiniteDifferences() throws {
        let model = randomFamilyModel(seed: 21)
        let gradients = try #require(try model.backward(batch, mode: .full).gradients.full)
        var random = SeededRandom(seed: 22)
        typealias Accessor = (name: String, get: (LlamaWeights) -> [Tensor], set: (inout LlamaWeights, [Tensor]) -> Void)
        var kinds: [Accessor] = [
            ("query norm", { $0.layers.map { $0.queryNorm! } }, { w, t in for l in t.indices { w.layers[l].queryNorm = t[l] } }),
            ("key norm", { $0.layers.map { $0.keyNorm! } }, { w, t in for l in t.indices { w.layers[l].keyNorm = t[l] } }),
            ("input norm", { $0.layers.map(\.inputNorm) }, { w, t in for l in t.indices { w.layers[l].inputNorm = t[l] } }),
            ("embedding", { [$0.embedding] }, { $0.embedding = $1[0] }),
        ]
        for target in LoRATarget.allCases {
            kinds.append(("\(target) bias", { $0.layers.map { $0.bias(target)! } }, { w, t in for l in t.indices { w.layers[l].biases[target] = t[l] } }))
            kinds.append(("\(target)", { $0.layers.map { $0[target] } }, { w, t in for l in t.indices { w.layers[l].update(target) { $0 = t[l] } } }))
        }
        for kind in kinds {
            let directions = kind.get(model.weights).map { random.normalTensor(shape: $0.shape) }
            try expectDirectionalDerivative(kind.name, gradient: kind.get(gradients), direction: directions) { step in
                var moved = model.weights
                kind.set(&moved, zip(kind.get(model.weights), directions).map { weight, direction in
                    var sum = weight
                    BLAS.axpy(step, direction, &sum)
                    return sum
                })
                return try LlamaModel(config: model.config, weights: moved).backward(batch, mode: .full).loss
            }
        }
    }

    /// LoRA mode through a model with biases, q/k norms and a window: dA and dB of every target.
    @Test func loraGradientsThroughBiasHeadNormsAndWindowMatchFiniteDifferences() throws {
        let model = randomFamilyModel(seed: 23)
        let adapter = try randomAdapter(model, seed: 24)
        let gradients = try #require(try model.backward(batch, mode: .lora(adapter)).gradients.lora)
        var random = SeededRandom(seed: 25)
        for matrix in ["A", "B"] {
            for target in LoRATarget.allCases {
                let directions = adapter.pairs.map { random.normalTensor(shape: (matrix == "A" ? $0[target]!.a : $0[target]!.b).shape) }
                let grads = gradients.map { matrix == "A" ? $0[target]!.a : $0[target]!.b }
                try expectDirectionalDerivative("lora_\(matrix) \(target)", gradient: grads, direction: directions) { step in
                    var moved = adapter
                    for layer in moved.pairs.indices {
                        if matrix == "A" { BLAS.axpy(step, directions[layer], &moved.pairs[layer][target]!.a) }
                        else { BLAS.axpy(step, directions[layer], &moved.pairs[layer][target]!.b) }
                    }
                    return try model.backward(batch, mode: .lora(moved)).loss
                }
            }
        }
    }

    /// The window matters (a wider one changes the loss), and the training pass's loss is the inference forward's
    /// cross-entropy: one layer forward for both.
    @Test func trainingLossIsTheInferenceForwardsCrossEntropy() throws {
        let model = randomFamilyModel(seed: 26)
        let sequence = batch[1]
        let loss = try model.backward([sequence], mode: .full).loss
        let logits = try model.logits(sequence.tokens)
        let entropy = try Kernels.crossEntropy(logits: logits, targets: sequence.shiftedTargets)
        #expect(abs(entropy.losses.scalars.reduce(0, +) / Float(entropy.count) - loss) <= 1e-6 * (1 + loss))
        var wider = model.config
        wider.slidingWindow = 32
        let unwindowed = try LlamaModel(config: wider, weights: model.weights).backward([sequence], mode: .full).loss
        #expect(abs(unwindowed - loss) > 1e-4, "a window of 3 over 9 tokens must change the loss")
    }

    /// Inference through the KV cache sees the same window as the whole sequence: a prompt longer than the
    /// decode-kernel limit (BLAS attention with cached positions), then decoding steps (the decode kernel).
    @Test func cachedChunksAndDecodingStepsEqualTheWholeSequence() throws {
        let model = randomFamilyModel(seed: 27, window: 4)
        var random = SeededRandom(seed: 28)
        let tokens = (0..<24).map { _ in Int(random.next() % 37) }
        let whole = try model.logits(tokens)
        var cache = KVCache(config: model.config, capacity: tokens.count)
        var rows = try model.forward(Array(tokens[0..<10]), cache: &cache).scalars
        rows += try model.forward(Array(tokens[10..<20]), cache: &cache).scalars
        for token in tokens[20...] { rows += try model.forward([token], cache: &cache).scalars }
        let worst = zip(rows, whole.scalars).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-4 * (1 + whole.scalars.map(abs).max()!), "worst difference \(worst)")
    }
}
