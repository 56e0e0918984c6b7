import LlamaModel
import TensorCore
import Testing
import Training
@testable import Attribution

/// The exact per-example gradient of record i, from a backward pass of that record alone, in row layout.
func backwardRow(_ model: LlamaModel, _ adapter: LoRAAdapter, _ layout: GradientLayout, _ sequence: TrainingSequence) throws -> [Float] {
    let gradients = try #require(try model.backward([sequence], mode: .lora(adapter)).gradients.lora)
    return layout.blocks.flatMap { block in
        let pair = gradients[block.layer][block.target]!
        return (block.matrix == .a ? pair.a : pair.b).scalars
    }
}

@Suite struct PerExampleGradientsTests {
    @Test(arguments: [false, true])
    func packedRowsEqualOneBackwardPerRecord(rsLoRA: Bool) throws {
        let model = try tinyLlama()
        let config = LoRAConfig(rank: 3, alpha: 7, targets: [.query, .key, .output, .up, .down], useRSLoRA: rsLoRA)
        let adapter = try randomAdapter(model, config, seed: 21)
        let layout = try GradientLayout(adapter: adapter, projection: .none)
        let records = randomRecords(9, seed: 22, vocabularySize: model.config.vocabularySize)
        // A small token budget: several passes, several records in most of them.
        let extractor = GradientExtractor(model: model, adapter: adapter, layout: layout, tokensPerPass: 30)
        let rows = try extractor.rows(for: records.map(\.sequence))
        #expect(rows.shape == [records.count, layout.width])
        #expect(layout.width == layout.blocks.reduce(0) { $0 + $1.shape[0] * $1.shape[1] })
        for (index, record) in records.enumerated() {
            let expected = try backwardRow(model, adapter, layout, record.sequence)
            let error = relativeError(rows.slice(0, index..<index + 1).scalars, expected)
            #expect(error <= 1e-5, "record \(index) (\(record.sequence.tokens.count) tokens): relative error \(error)")
        }
    }

    @Test func rowsDoNotDependOnPacking() throws {
        let model = try tinyLlama()
        let adapter = try randomAdapter(model, LoRAConfig(rank: 2, alpha: 4, targets: [.value, .gate]), seed: 23)
        let layout = try GradientLayout(adapter: adapter, projection: .none)
        let sequences = randomRecords(6, seed: 24, vocabularySize: model.config.vocabularySize).map(\.sequence)
        let packed = try GradientExtractor(model: model, adapter: adapter, layout: layout, tokensPerPass: 4096).rows(for: sequences)
        let alone = try GradientExtractor(model: model, adapter: adapter, layout: layout, tokensPerPass: 1).rows(for: sequences)
        #expect(relativeError(packed.scalars, alone.scalars) <= 1e-5)
    }

    @Test func concurrentPassesGiveTheRowsOfOnePassAtATime() throws {
        let model = try tinyLlama()
        let adapter = try randomAdapter(model, LoRAConfig(rank: 2, alpha: 4, targets: [.query, .value, .down]), seed: 26)
        let layout = try GradientLayout(adapter: adapter, projection: .none)
        let sequences = randomRecords(11, seed: 27, vocabularySize: model.config.vocabularySize).map(\.sequence)
        let serial = try GradientExtractor(model: model, adapter: adapter, layout: layout, tokensPerPass: 25).rows(for: sequences)
        var reported: [Int] = []
        let concurrent = try GradientExtractor(model: model, adapter: adapter, layout: layout, tokensPerPass: 25, concurrentPasses: 3)
            .rows(for: sequences) { reported.append($0) }
        let passes = GradientExtractor.passes(tokenCounts: sequences.map(\.tokens.count), tokensPerPass: 25)
        #expect(passes.count > 3)
        #expect(reported == passes.map(\.upperBound))
        // The same passes; only BLAS's own threading may differ between concurrent calls.
        #expect(relativeError(concurrent.scalars, serial.scalars) <= 1e-6)
    }

    @Test func passesPackConsecutiveSequencesUpToTheTokenBudget() {
        #expect(GradientExtractor.passes(tokenCounts: [3, 4, 2, 9, 1, 1], tokensPerPass: 9) == [0..<3, 3..<4, 4..<6])
        // A sequence longer than the budget gets a pass of its own.
        #expect(GradientExtractor.passes(tokenCounts: [12, 5, 5], tokensPerPass: 8) == [0..<1, 1..<2, 2..<3])
        #expect(GradientExtractor.passes(tokenCounts: [], tokensPerPass: 8).isEmpty)
    }

    @Test func blocksFollowPEFTNamesInLayerTargetMatrixOrder() throws {
        let model = try tinyLlama()
        let adapter = try randomAdapter(model, LoRAConfig(rank: 2, alpha: 4, targets: [.value, .query]), seed: 25)
        let layout = try GradientLayout(adapter: adapter, projection: .none)
        #expect(layout.blocks.map(\.name) == [
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
            "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
            "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
            "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
        ])
        #expect(layout.blocks[0].shape == [2, 24] && layout.blocks[1].shape == [24, 2] && layout.blocks[3].shape == [12, 2])
        #expect(zip(layout.blocks, layout.blocks.dropFirst()).allSatisfy { $0.columns.upperBound == $1.columns.lowerBound })
    }
}
