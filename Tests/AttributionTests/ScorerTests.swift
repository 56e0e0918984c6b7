import Attribution
import TensorCore
import Testing

@Suite("Scorers")
struct ScorerTests {
    /// Awkward sizes: 37 records, blocks of 5, 3, 7, 2 and 11 columns (lora_A / lora_B widths differ).
    static let blockWidths = [5, 3, 7, 2, 11]

    /// Expected q x n scores: per query, sum over checkpoints of weight_c x the reference score.
    static func expected(_ kind: ScorerKind, _ problem: ScoringProblem, damping: Double = 0.1) -> [Double] {
        let queryCount = problem.queries[0].shape[0]
        var total = [Double](repeating: 0, count: queryCount * problem.checkpoints[0].recordCount)
        for (checkpoint, queries) in zip(problem.checkpoints, problem.queries) {
            let weight = kind == .tracIn ? Double(checkpoint.learningRate) : 1 / Double(problem.checkpoints.count)
            let rows = Reference.matrix(checkpoint.rows)
            for (q, query) in Reference.matrix(queries).enumerated() {
                let scores = Reference.scores(kind, rows, query, blocks: problem.blocks.ranges, damping: damping)
                for (k, score) in scores.enumerated() { total[q * rows.count + k] += weight * score }
            }
        }
        return total
    }

    @Test("every scorer equals its Float64 reference, for one query (GEMV) and a batch (GEMM)",
          arguments: ScorerKind.allCases, [1, 4])
    func scorerMatchesReference(kind: ScorerKind, queryCount: Int) throws {
        let problem = try ScoringProblem(
            seed: 11, records: 37, blockWidths: Self.blockWidths, queries: queryCount, learningRates: [2e-3, 7e-4])
        let scorer = try AttributionScorer(kind: kind, checkpoints: problem.checkpoints)
        let scores = try scorer.scores(queries: problem.queries)
        #expect(scores.shape == [queryCount, 37])
        #expect(closeRelative(scores.scalars, Self.expected(kind, problem)))
    }

    @Test("DataInf equals its definition at another damping")
    func dataInfDamping() throws {
        let problem = try ScoringProblem(seed: 5, records: 53, blockWidths: [9, 4, 6], queries: 3, learningRates: [1e-3])
        let scorer = try AttributionScorer(kind: .dataInf, checkpoints: problem.checkpoints, damping: 0.5)
        #expect(closeRelative(try scorer.scores(queries: problem.queries).scalars, Self.expected(.dataInf, problem, damping: 0.5)))
        // And differs from the default damping's scores: the damping reaches the result.
        let other = try AttributionScorer(kind: .dataInf, checkpoints: problem.checkpoints)
        #expect(!closeRelative(try other.scores(queries: problem.queries).scalars, Self.expected(.dataInf, problem, damping: 0.5)))
    }

    @Test("TracIn is the learning-rate-weighted sum of per-checkpoint Grad-Dot")
    func tracInWeightsByLearningRate() throws {
        let rates: [Float] = [3e-3, 1e-3, 2.5e-4]
        let problem = try ScoringProblem(seed: 21, records: 29, blockWidths: Self.blockWidths, queries: 2, learningRates: rates)
        let tracIn = try AttributionScorer(kind: .tracIn, checkpoints: problem.checkpoints).scores(queries: problem.queries)
        var expected = [Double](repeating: 0, count: tracIn.count)
        for (checkpoint, query) in zip(problem.checkpoints, problem.queries) {
            let single = try AttributionScorer(kind: .gradDot, checkpoints: [checkpoint]).scores(queries: [query]).scalars
            for i in expected.indices { expected[i] += Double(checkpoint.learningRate) * Double(single[i]) }
        }
        #expect(closeRelative(tracIn.scalars, expected))
        // Moving the learning rates moves the result.
        let uniform = try problem.checkpoints.map { try CheckpointGradients(rows: $0.rows, blocks: $0.blocks, learningRate: 1e-3) }
        let unweighted = try AttributionScorer(kind: .tracIn, checkpoints: uniform).scores(queries: problem.queries)
        #expect(!closeRelative(unweighted.scalars, expected))
    }

    @Test("Grad-Cos is invariant to scaling training rows and queries")
    func gradCosScaleInvariance() throws {
        let problem = try ScoringProblem(seed: 8, records: 41, blockWidths: Self.blockWidths, queries: 3, learningRates: [1e-3])
        var random = SeededRandom(seed: 99)
        let rows = problem.checkpoints[0].rows
        let scaledRows = rows.scalingRows(by: random.uniformTensor(shape: [41], in: 0.01..<50))
        let scaledQueries = problem.queries[0].scalingRows(by: random.uniformTensor(shape: [3], in: 0.01..<50))
        let original = try AttributionScorer(kind: .gradCos, checkpoints: problem.checkpoints).scores(queries: problem.queries)
        let scaled = try AttributionScorer(
            kind: .gradCos, checkpoints: [CheckpointGradients(rows: scaledRows, blocks: problem.blocks, learningRate: 1e-3)]
        ).scores(queries: [scaledQueries])
        #expect(closeRelative(scaled.scalars, original.scalars.map(Double.init), tolerance: 1e-5))
        #expect(original.scalars.allSatisfy { abs($0) <= 1.0001 })
    }

    @Test("self-influence is each record scored against itself", arguments: [ScorerKind.gradDot, .tracIn, .dataInf, .fisher])
    func selfInfluence(kind: ScorerKind) throws {
        let problem = try ScoringProblem(seed: 3, records: 23, blockWidths: Self.blockWidths, queries: 1, learningRates: [1e-3, 4e-4])
        let scorer = try AttributionScorer(kind: kind, checkpoints: problem.checkpoints)
        var expected = [Double](repeating: 0, count: 23)
        for checkpoint in problem.checkpoints {
            let weight = kind == .tracIn ? Double(checkpoint.learningRate) : 0.5
            let rows = Reference.matrix(checkpoint.rows)
            for k in rows.indices {
                expected[k] += weight * Reference.scores(kind, rows, rows[k], blocks: problem.blocks.ranges, damping: 0.1)[k]
            }
        }
        let actual = try scorer.selfInfluence()
        #expect(closeRelative(actual.scalars, expected))
        #expect(actual.scalars.allSatisfy { $0 > 0 })  // every P is positive definite
    }

    @Test("self-influence is refused for Grad-Cos, where it is 1 for every record")
    func gradCosSelfInfluence() throws {
        let problem = try ScoringProblem(seed: 3, records: 5, blockWidths: [2, 2], queries: 1, learningRates: [1e-3])
        #expect(throws: AttributionInputError.self) { try AttributionScorer(kind: .gradCos, checkpoints: problem.checkpoints).selfInfluence() }
    }

    @Test("bad input is refused with an error naming it")
    func badInput() throws {
        #expect(throws: AttributionInputError("gradient block 1 starts at column 4, expected 3: blocks must tile the columns in order")) {
            try GradientBlocks([0..<3, 4..<6])
        }
        let blocks = try GradientBlocks(uniform: 3, count: 2)
        #expect(throws: AttributionInputError("checkpoint gradients have 5 columns but the blocks cover 6")) {
            try CheckpointGradients(rows: Tensor(zeros: [4, 5]), blocks: blocks, learningRate: 1e-3)
        }
        #expect(throws: AttributionInputError.self) { try CheckpointGradients(rows: Tensor(zeros: [4, 6]), blocks: blocks, learningRate: 0) }

        var random = SeededRandom(seed: 1)
        var rows = random.normalTensor(shape: [4, 6])
        rows[2, 4] = .nan
        let poisoned = try CheckpointGradients(rows: rows, blocks: blocks, learningRate: 1e-3)
        #expect(throws: AttributionInputError("checkpoint 0, record row 2, block 1 holds a non-finite gradient")) {
            try AttributionScorer(kind: .gradDot, checkpoints: [poisoned])
        }
        let zeroBlock = try CheckpointGradients(
            rows: Tensor(shape: [2, 6], scalars: [1, 2, 3, 0, 0, 0, 4, 5, 6, 0, 0, 0]), blocks: blocks, learningRate: 1e-3)
        #expect(throws: AttributionInputError("checkpoint 0, block 1: every gradient entry is zero, so lambda = 0 and datainf is undefined")) {
            try AttributionScorer(kind: .dataInf, checkpoints: [zeroBlock])
        }

        let good = try CheckpointGradients(rows: random.normalTensor(shape: [4, 6]), blocks: blocks, learningRate: 1e-3)
        let scorer = try AttributionScorer(kind: .fisher, checkpoints: [good])
        #expect(throws: AttributionInputError("query matrix 0 has shape [2, 5]; expected [q, 6] with q > 0 and one q for all checkpoints")) {
            try scorer.scores(queries: [Tensor(zeros: [2, 5])])
        }
        #expect(throws: AttributionInputError("2 query matrices for 1 checkpoints: give one per checkpoint")) {
            try scorer.scores(queries: [Tensor(zeros: [2, 6]), Tensor(zeros: [2, 6])])
        }
        let otherShape = try CheckpointGradients(rows: Tensor(shape: [5, 6], repeating: 1), blocks: blocks, learningRate: 1e-3)
        #expect(throws: AttributionInputError.self) { try AttributionScorer(kind: .tracIn, checkpoints: [good, otherShape]) }
    }
}
