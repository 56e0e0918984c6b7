import Testing
import TensorCore
@testable import LlamaModel
@testable import Training

@Suite struct DropoutTests {
    @Test func masksHaveInvertedDropoutStatisticsAndAreSeeded() throws {
        let dropout = LoRADropout(probability: 0.3, seed: 11)
        let mask = try #require(dropout.mask(layer: 1, target: .value, shape: [200, 301]))
        let values = mask.scalars
        let dropped = Double(values.filter { $0 == 0 }.count) / Double(values.count)
        #expect(abs(dropped - 0.3) < 0.01, "dropped \(dropped)")  // 5 standard deviations
        #expect(values.allSatisfy { $0 == 0 || $0 == 1 / Float(0.7) }, "kept elements are scaled by 1 / (1 - p)")
        let mean = values.reduce(0, +) / Float(values.count)
        #expect(abs(mean - 1) < 0.02, "the mask keeps the expectation: mean \(mean)")

        #expect(dropout.mask(layer: 1, target: .value, shape: [200, 301]) == mask, "seeded")
        #expect(dropout.mask(layer: 1, target: .key, shape: [200, 301]) != mask, "each target its own mask")
        #expect(dropout.mask(layer: 0, target: .value, shape: [200, 301]) != mask, "each layer its own mask")
        #expect(LoRADropout(probability: 0.3, seed: 12).mask(layer: 1, target: .value, shape: [200, 301]) != mask)
        #expect(LoRADropout(probability: 0, seed: 11).mask(layer: 1, target: .value, shape: [4, 4]) == nil)
    }

    /// PEFT: result = base(x) + lora_B(lora_A(dropout(x))) * scaling, against a Float64 reference.
    @Test func applyDropsOutOnlyTheInputOfLoraA() throws {
        let model = randomModel(seed: 31)
        let adapter = try randomAdapter(model, seed: 32)
        var random = SeededRandom(seed: 33)
        let x = random.normalTensor(shape: [5, model.config.hiddenSize])
        let mask = try #require(LoRADropout(probability: 0.5, seed: 34).mask(layer: 1, target: .query, shape: x.shape))
        let weight = model.weights.layers[1].query, pair = adapter.pairs[1][.query]!
        let y = try #require(adapter.apply(x, weight: weight, layer: 1, target: .query, dropoutMask: mask)).output
        let s = Double(adapter.config.scaling)
        for row in 0..<x.shape[0] {
            let dropped = (0..<x.shape[1]).map { Double(x[row, $0]) * Double(mask[row, $0]) }
            let down = (0..<pair.a.shape[0]).map { r in (0..<x.shape[1]).reduce(0.0) { $0 + dropped[$1] * Double(pair.a[r, $1]) } }
            for column in 0..<weight.shape[0] {
                let base = (0..<x.shape[1]).reduce(0.0) { $0 + Double(x[row, $1]) * Double(weight[column, $1]) }
                let lora = (0..<down.count).reduce(0.0) { $0 + down[$1] * Double(pair.b[column, $1]) }
                #expect(abs(Double(y[row, column]) - (base + s * lora)) <= 1e-4 * max(1, abs(base + s * lora)))
            }
        }
    }

    @Test func zeroProbabilityLeavesTrainingBitIdentical() throws {
        let model = randomModel(seed: 1)
        let adapter = try randomAdapter(model, seed: 2)
        let plain = try model.backward(batch, mode: .lora(adapter))
        let zero = try model.backward(batch, mode: .lora(adapter), dropout: LoRADropout(probability: 0, seed: 9))
        let half = try model.backward(batch, mode: .lora(adapter), dropout: LoRADropout(probability: 0.5, seed: 9))
        #expect(zero.loss == plain.loss && half.loss != plain.loss)
        for layer in adapter.pairs.indices {
            for target in adapter.pairs[layer].keys {
                #expect(zero.gradients.lora![layer][target]!.a == plain.gradients.lora![layer][target]!.a)
                #expect(zero.gradients.lora![layer][target]!.b == plain.gradients.lora![layer][target]!.b)
            }
        }
    }

    /// With the masks fixed by the seed, dA and dB are the gradients of the dropped-out loss; the
    /// earlier layers' gradients also check that dX goes back through the mask.
    @Test func gradientsWithAFixedMaskMatchFiniteDifferences() throws {
        let model = randomModel(seed: 1)
        let adapter = try randomAdapter(model, seed: 2)
        let dropout = LoRADropout(probability: 0.4, seed: 5)
        let gradients = try #require(try model.backward(batch, mode: .lora(adapter), dropout: dropout).gradients.lora)
        var random = SeededRandom(seed: 6)
        for matrix in ["A", "B"] {
            for target in [LoRATarget.query, .output, .gate, .down] {
                let directions = adapter.pairs.map { random.normalTensor(shape: (matrix == "A" ? $0[target]!.a : $0[target]!.b).shape) }
                let grads = gradients.map { matrix == "A" ? $0[target]!.a : $0[target]!.b }
                try expectDirectionalDerivative("lora_\(matrix) \(target) with dropout", gradient: grads, direction: directions) { step in
                    var moved = adapter
                    for layer in moved.pairs.indices {
                        if matrix == "A" { BLAS.axpy(step, directions[layer], &moved.pairs[layer][target]!.a) }
                        else { BLAS.axpy(step, directions[layer], &moved.pairs[layer][target]!.b) }
                    }
                    return try model.backward(batch, mode: .lora(moved), dropout: dropout).loss
                }
            }
        }
    }

    @Test func inferenceNeverDropsOut() throws {
        let model = randomModel(seed: 1)
        var adapter = try randomAdapter(model, seed: 2)
        let tokens = [3, 1, 4, 1, 5]
        let without = try model.logits(tokens, adapter: adapter)
        adapter.config.dropout = 0.5
        #expect(try model.logits(tokens, adapter: adapter) == without)
    }

    @Test func outOfRangeProbabilityIsRefused() throws {
        let model = randomModel(seed: 1)
        #expect(throws: LoRAError.invalidDropout(1)) {
            try LoRAAdapter(config: LoRAConfig(rank: 2, dropout: 1), model: model.config, seed: 0)
        }
    }
}
