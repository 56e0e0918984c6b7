import Foundation
import Testing
import TensorCore
@testable import LlamaModel
@testable import Training

@Suite struct LoRATrainerTests {
    /// Records of two patterns, so there is something to learn.
    static let records: [TrainingSequence] = (0..<12).map { index in
        index % 2 == 0
            ? TrainingSequence(text: [1, 2, 3, 4, 5, 6, 7, 8].map { ($0 + index) % 37 })
            : TrainingSequence(prompt: [30, 31], completion: [9, 9, 10, 10, 11])
    }

    func trainer(steps: Int, batchSize: Int = 4, accumulation: Int = 1, dropout: Double = 0, seed: UInt64 = 23) throws -> LoRATrainer {
        let model = randomModel(seed: 21)
        let adapter = try LoRAAdapter(
            config: LoRAConfig(rank: 4, alpha: 8, dropout: dropout, targets: LoRATarget.allCases), model: model.config, seed: 22)
        var options = TrainingOptions(totalSteps: steps)
        options.learningRate = 2e-2
        options.warmupSteps = 2
        options.batchSize = batchSize
        options.gradientAccumulation = accumulation
        options.seed = seed
        return LoRATrainer(model: model, adapter: adapter, records: Self.records, options: options)
    }

    @Test func lossFallsAndScheduleIsFollowed() throws {
        var trainer = try trainer(steps: 25)
        var reports: [StepReport] = []
        while !trainer.isFinished { reports.append(try trainer.trainStep()) }
        #expect(reports.last!.loss < 0.7 * reports.first!.loss, "\(reports.first!.loss) -> \(reports.last!.loss)")
        #expect(reports[0].learningRate == 0 && reports[1].learningRate == 1e-2 && reports[2].learningRate == 2e-2, "warmup")
        #expect(reports.allSatisfy { $0.gradientNorm.isFinite && $0.tokens > 0 })
    }

    @Test(arguments: [0, 0.2])
    func resumingFromACheckpointGivesTheSameAdapter(dropout: Double) throws {
        var straight = try trainer(steps: 6, dropout: dropout)
        while !straight.isFinished { _ = try straight.trainStep() }

        var first = try trainer(steps: 6, dropout: dropout)
        var rate: Float = 0
        for _ in 0..<3 { rate = try first.trainStep().learningRate }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("checkpoint-\(UUID().uuidString)").path
        try first.saveCheckpoint(to: folder, learningRate: rate)
        var resumed = try LoRATrainer(resumingFrom: folder, model: first.model, records: Self.records)
        #expect(resumed.step == 3)
        while !resumed.isFinished { _ = try resumed.trainStep() }
        for layer in straight.adapter.pairs.indices {
            for (target, pair) in straight.adapter.pairs[layer] {
                #expect(resumed.adapter.pairs[layer][target]!.a == pair.a && resumed.adapter.pairs[layer][target]!.b == pair.b, "layer \(layer) \(target)")
            }
        }
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/trainer_state.json"))) as! [String: Any]
        #expect(state["step"] as? Int == 3 && (state["learningRate"] as? Double).map { Float($0) } == rate)
    }

    @Test func accumulatedMicroBatchesGiveTheLossOfOneBatch() throws {
        var whole = try trainer(steps: 1, batchSize: 4)
        var accumulated = try trainer(steps: 1, batchSize: 2, accumulation: 2)
        let a = try whole.trainStep(), b = try accumulated.trainStep()
        #expect(a.tokens == b.tokens)
        #expect(abs(a.loss - b.loss) <= 1e-5 * a.loss)
        #expect(abs(a.gradientNorm - b.gradientNorm) <= 1e-4 * a.gradientNorm)
    }

    @Test(arguments: [0, 0.2])
    func sameSeedSameRun(dropout: Double) throws {
        var one = try trainer(steps: 3, dropout: dropout), two = try trainer(steps: 3, dropout: dropout)
        for _ in 0..<3 { #expect(try one.trainStep().loss == two.trainStep().loss) }
        #expect(one.adapter.pairs[1][.down]!.b == two.adapter.pairs[1][.down]!.b)
    }

    @Test func dropoutMasksChangeWithTheSeedAndTheStep() throws {
        var one = try trainer(steps: 2, dropout: 0.2), other = try trainer(steps: 2, dropout: 0.2, seed: 24)
        #expect(one.dropout(microBatch: 0) != one.dropout(microBatch: 1))
        #expect(one.dropout(microBatch: 0) != other.dropout(microBatch: 0))
        let first = one.dropout(microBatch: 0)
        _ = try one.trainStep()
        _ = try other.trainStep()
        #expect(one.dropout(microBatch: 0) != first, "a new mask every step")
        #expect(try trainer(steps: 1).dropout(microBatch: 0) == nil, "no dropout: no masks")
    }
}
