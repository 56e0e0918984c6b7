import Testing
import TensorCore
@testable import LlamaModel
@testable import Training

/// A small random Llama: awkward sizes, grouped-query attention, untied or tied head.
func randomModel(seed: UInt64, tied: Bool = false) -> LlamaModel {
    let config = LlamaConfig(
        vocabularySize: 37, hiddenSize: 16, intermediateSize: 23, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
        maxPositions: 32, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, tieWordEmbeddings: tied)
    return LlamaModel(config: config, weights: LlamaWeights(random: config, seed: seed, standardDeviation: 0.4, normRange: 0.5..<1.5))
}

/// An adapter on every target with non-zero B, so that dA is not trivially zero.
func randomAdapter(_ model: LlamaModel, seed: UInt64) throws -> LoRAAdapter {
    var adapter = try LoRAAdapter(config: LoRAConfig(rank: 3, alpha: 5, targets: LoRATarget.allCases), model: model.config, seed: seed)
    var random = SeededRandom(seed: seed + 1)
    for layer in adapter.pairs.indices {
        for target in adapter.pairs[layer].keys.sorted() {
            adapter.pairs[layer][target]!.b = random.normalTensor(shape: adapter.pairs[layer][target]!.b.shape, standardDeviation: 0.3)
        }
    }
    return adapter
}

let batch = [
    TrainingSequence(prompt: [1, 5, 9], completion: [20, 3, 36, 0]),
    TrainingSequence(text: [7, 7, 30, 12, 2, 19, 25, 11, 4]),
]

/// Central differences of `loss` along `direction` against <gradient, direction>; `loss(step)`
/// evaluates at parameters + step * direction / |direction|.
func expectDirectionalDerivative(
    _ what: String, gradient: [Tensor], direction unnormalized: [Tensor], loss: (Float) throws -> Float,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let length = unnormalized.reduce(Float(0)) { $0 + BLAS.dot($1.reshaped([$1.count]), $1.reshaped([$1.count])) }.squareRoot()
    let direction = unnormalized.map { tensor -> Tensor in
        var unit = tensor
        BLAS.scale(&unit, by: 1 / length)
        return unit
    }
    let analytic = zip(gradient, direction).reduce(Double(0)) { $0 + Double(BLAS.dot($1.0.reshaped([$1.0.count]), $1.1.reshaped([$1.1.count]))) }
    let h: Float = 3e-3  // small enough for the curvature, large enough for Float32 losses
    let numeric = (Double(try loss(h / length)) - Double(try loss(-h / length))) / Double(2 * h)
    #expect(abs(analytic - numeric) <= 1e-2 * max(abs(numeric), 5e-2), "\(what): analytic \(analytic), finite differences \(numeric)", sourceLocation: sourceLocation)
}

@Suite struct BackpropagationTests {
    @Test func loraGradientsMatchFiniteDifferences() throws {
        let model = randomModel(seed: 1)
        let adapter = try randomAdapter(model, seed: 2)
        let result = try model.backward(batch, mode: .lora(adapter))
        let gradients = try #require(result.gradients.lora)
        var random = SeededRandom(seed: 3)
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

    @Test(arguments: [false, true])
    func fullGradientsOfEveryParameterKindMatchFiniteDifferences(tied: Bool) throws {
        let model = randomModel(seed: 4, tied: tied)
        let result = try model.backward(batch, mode: .full)
        let gradients = try #require(result.gradients.full)
        var random = SeededRandom(seed: 5)
        typealias Accessor = (name: String, get: (LlamaWeights) -> [Tensor], set: (inout LlamaWeights, [Tensor]) -> Void)
        var kinds: [Accessor] = [
            ("embedding", { [$0.embedding] }, { w, t in w.embedding = t[0]; if tied { w.head = t[0] } }),
            ("final norm", { [$0.finalNorm] }, { $0.finalNorm = $1[0] }),
            ("input norm", { $0.layers.map(\.inputNorm) }, { w, t in for l in t.indices { w.layers[l].inputNorm = t[l] } }),
            ("post-attention norm", { $0.layers.map(\.postAttentionNorm) }, { w, t in for l in t.indices { w.layers[l].postAttentionNorm = t[l] } }),
        ]
        if !tied { kinds.append(("lm head", { [$0.head] }, { $0.head = $1[0] })) }
        for target in LoRATarget.allCases {
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

    /// Packed sequences attend only to themselves: the batch's per-example gradients add up.
    @Test func packingEqualsSequencesOneByOne() throws {
        let model = randomModel(seed: 6)
        let adapter = try randomAdapter(model, seed: 7)
        let together = try model.backward(batch, mode: .lora(adapter), reduction: .sumOfSequenceMeans)
        let apart = try batch.map { try model.backward([$0], mode: .lora(adapter)) }
        #expect(zip(together.sequenceLosses, apart.map(\.loss)).allSatisfy { abs($0 - $1) <= 1e-5 * (1 + abs($1)) })
        #expect(together.tokenCounts == [4, 8])
        for layer in 0..<model.config.layerCount {
            for target in LoRATarget.allCases {
                let sum = apart.reduce(Tensor(zeros: adapter.pairs[layer][target]!.a.shape)) { partial, result in
                    var total = partial
                    BLAS.axpy(1, result.gradients.lora![layer][target]!.a, &total)
                    return total
                }
                let packed = together.gradients.lora![layer][target]!.a
                let worst = zip(packed.scalars, sum.scalars).map { abs($0 - $1) }.max()!
                #expect(worst <= 1e-5 * (1 + sum.scalars.map(abs).max()!), "layer \(layer) \(target)")
            }
        }
    }

    @Test func lossIsTheMeanOverScoredTokensAsTransformersComputesIt() throws {
        let model = randomModel(seed: 8)
        let result = try model.backward(batch, mode: .full)
        let counts = result.tokenCounts.map(Float.init)
        let expected = zip(result.sequenceLosses, counts).reduce(Float(0)) { $0 + $1.0 * $1.1 } / counts.reduce(0, +)
        #expect(abs(result.loss - expected) <= 1e-5)
        // The prompt is not scored: its first target is the first completion token.
        #expect(batch[0].shiftedTargets == [-100, -100, 20, 3, 36, 0, -100])
    }

    @Test func badBatchesAreRefused() throws {
        let model = randomModel(seed: 9)
        #expect(throws: ModelInputError.tokenOutOfRange(position: 1, token: 37, vocabularySize: 37)) {
            try model.backward([TrainingSequence(text: [1, 37])], mode: .full)
        }
        #expect(throws: ModelInputError.emptyInput) { try model.backward([], mode: .full) }
    }
}
