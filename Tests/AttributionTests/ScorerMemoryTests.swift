import Foundation
import LlamaModel
import TensorCore
import Testing
import Training
@testable import Attribution

/// Issue 19: DataInf and Fisher keep a D_l x D_l matrix per LoRA matrix; on an exact (unprojected) index of a real
/// model that is many GB. The scorer estimates it before allocating and refuses with an error naming the fix.
@Suite struct ScorerMemoryTests {
    /// Seeded rows of `recordCount` records in blocks of the given widths.
    func checkpoint(recordCount: Int, widths: [Int], seed: UInt64) throws -> CheckpointGradients {
        var random = SeededRandom(seed: seed)
        var ranges: [Range<Int>] = [], start = 0
        for width in widths {
            ranges.append(start..<start + width)
            start += width
        }
        return try CheckpointGradients(
            rows: random.normalTensor(shape: [recordCount, start], standardDeviation: 1), blocks: GradientBlocks(ranges), learningRate: 1)
    }

    @Test func estimateCountsOneMatrixPerBlockAndCheckpoint() {
        let widths = [40, 24, 40]
        let dataInf = ScorerMemoryEstimate(kind: .dataInf, blockWidths: widths, recordCount: 7, checkpointCount: 2)
        #expect(dataInf.preconditioners == Double(2 * (40 * 40 + 24 * 24 + 40 * 40) * 4))
        #expect(dataInf.norms == Double(2 * 3 * 7 * 4))
        #expect(dataInf.scratch == Double(7 * 40 * 4))
        let fisher = ScorerMemoryEstimate(kind: .fisher, blockWidths: widths, recordCount: 7, checkpointCount: 2)
        #expect(fisher.scratch == Double(4 * 40 * 40 * 4))
        let gradDot = ScorerMemoryEstimate(kind: .gradDot, blockWidths: widths, recordCount: 7, checkpointCount: 2)
        #expect(gradDot.preconditioners == 0 && gradDot.scratch == 0)
        // Shapes no machine holds: estimated in Double, no overflow trap.
        let huge = ScorerMemoryEstimate(kind: .fisher, blockWidths: [Int.max / 2], recordCount: .max, checkpointCount: .max)
        #expect(huge.bytes > 1e30)
    }

    @Test(arguments: [ScorerKind.dataInf, .fisher])
    func aScorerOverTheLimitIsRefusedBeforeItAllocates(kind: ScorerKind) throws {
        let gradients = try checkpoint(recordCount: 6, widths: [48, 32, 48], seed: 91)
        // 2 x 48^2 + 32^2 floats = 22,528 bytes of matrices: over 16 KiB.
        let budget = MemoryBudget(bytes: 16 << 10)
        #expect {
            _ = try AttributionScorer(kind: kind, checkpoints: [gradients], memoryLimit: budget)
        } throws: { error in
            let message = (error as? AttributionInputError)?.message ?? ""
            return message.contains(kind.rawValue) && message.contains("--memory-limit-mib")
                && message.contains("--projection factored --dim") && message.contains("grad-dot")
        }
        // Under a limit that holds them, the same scorer is built and scores.
        let scorer = try AttributionScorer(kind: kind, checkpoints: [gradients], memoryLimit: MemoryBudget(bytes: 1 << 20))
        #expect(try scorer.scores(queries: [gradients.rows.slice(0, 0..<2)]).shape == [2, 6])
        // Scorers that keep no matrix fit the small limit.
        for light in [ScorerKind.gradDot, .tracIn, .gradCos] {
            _ = try AttributionScorer(kind: light, checkpoints: [gradients], memoryLimit: budget)
        }
    }

    @Test func theSuggestedProjectionFitsTheLimit() throws {
        // 3 blocks of 600 columns: 4.1 MiB of matrices; with 1 MiB, k = 256 fits (3 x 256^2 x 4 = 768 KiB), 512 does not.
        let gradients = try checkpoint(recordCount: 4, widths: [600, 600, 600], seed: 92)
        #expect {
            _ = try AttributionScorer(kind: .dataInf, checkpoints: [gradients], memoryLimit: MemoryBudget(mebibytes: 1))
        } throws: { error in
            ((error as? AttributionInputError)?.message ?? "").contains("--projection factored --dim 256`")
        }
    }

    @Test func attributorAppliesItsLimitToEveryScorer() throws {
        let folder = try temporaryFolder()
        let model = try tinyLlama()
        let adapter = try randomAdapter(model, LoRAConfig(rank: 8, alpha: 8, targets: [.query, .value]), seed: 93)
        try adapter.save(to: "\(folder)/adapter")
        let records = randomRecords(5, seed: 94, vocabularySize: model.config.vocabularySize)
        let index = try GradientIndex.build(
            folder: "\(folder)/index", model: model, adapterFolder: "\(folder)/adapter", records: records,
            projection: .none, checkpoints: .all)
        let small = try Attributor(index: index, model: model, adapterFolder: "\(folder)/adapter", memoryLimit: MemoryBudget(bytes: 64 << 10))
        let query = records[1].sequence
        #expect(throws: AttributionInputError.self) { try small.attribute([query], method: .dataInf, topK: 2) }
        #expect(throws: AttributionInputError.self) { try small.curate(validation: [query], method: .fisher) }
        #expect(try small.attribute([query], method: .gradDot, topK: 2)[0].records.count == 2)
        let roomy = try Attributor(index: index, model: model, adapterFolder: "\(folder)/adapter", memoryLimit: MemoryBudget(mebibytes: 64))
        #expect(try roomy.attribute([query], method: .dataInf, topK: 2)[0].records.count == 2)
    }

    @Test func attributeCommandRefusesByNameAndExitsCleanly() throws {
        let commands = IndexCommandTests()
        let folder = try temporaryFolder()
        let model = try tinyLlama()
        let records = randomRecords(4, seed: 95, vocabularySize: model.config.vocabularySize)
        try commands.writeRecords(records, to: "\(folder)/data.jsonl")
        let train = try commands.engine([
            "train", "--model", fixture("tiny-llama"), "--data", "\(folder)/data.jsonl", "--out", "\(folder)/adapter",
            "--steps", "1", "--batch-size", "2", "--rank", "16", "--targets", "q,v", "--seq-len", "64",
        ])
        #expect(train.status == 0, "\(train.error)")
        let index = try commands.engine([
            "index", "--model", fixture("tiny-llama"), "--adapter", "\(folder)/adapter", "--data", "\(folder)/data.jsonl",
            "--out", "\(folder)/index",
        ])
        #expect(index.status == 0, "\(index.error)")
        let query = ["--prompt-tokens", "1,2,3", "--completion-tokens", "4,5,6"]
        // DataInf (the default) keeps 2 layers x (3 x 384^2 + 192^2) floats = 3.8 MB: over 1 MiB.
        let refused = try commands.engine(["attribute", "--index", "\(folder)/index", "--memory-limit-mib", "1"] + query)
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.error.contains("--projection factored --dim") && refused.error.contains("--memory-limit-mib"), "\(refused.error)")
        #expect(!refused.error.contains("Fatal error"))
        let light = try commands.engine(["attribute", "--index", "\(folder)/index", "--memory-limit-mib", "1", "--method", "graddot"] + query)
        #expect(light.status == 0, "\(light.error)")
        let bad = try commands.engine(["attribute", "--index", "\(folder)/index", "--memory-limit-mib", "0"] + query)
        #expect(bad.status != 0 && bad.error.contains("--memory-limit-mib"))
    }
}
