import Attribution
import TensorCore
import Testing

/// A toy problem where the harmful record is known: least-squares regression y = w* . x with no
/// noise, one planted record whose label is wrong. The model is fitted on all records, so the
/// planted one pulls w away from w* and raises the validation loss.
struct PlantedRegression {
    static let (features, trainCount, validationCount, planted) = (6, 48, 20, 7)
    let checkpoint: CheckpointGradients
    let validation: Tensor
    let records: [RecordInfo]

    init(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let d = Self.features
        let truth = (0..<d).map { _ in Double(random.normal()) }
        func sample() -> [Double] { (0..<d).map { _ in Double(random.normal()) } }
        let train = (0..<Self.trainCount).map { _ in sample() }
        var labels = train.map { Reference.dot($0[...], truth[...]) }
        labels[Self.planted] = -3 * labels[Self.planted] + 8
        // Fit: w = (X^T X)^-1 X^T y.
        let gram = (0..<d).map { a in (0..<d).map { b in train.reduce(0) { $0 + $1[a] * $1[b] } } }
        let moment = (0..<d).map { a in zip(train, labels).reduce(0) { $0 + $1.0[a] * $1.1 } }
        let w = Reference.solve(gram, moment)
        // Per-record gradient of 0.5 (w . x - y)^2 with respect to w: (w . x - y) x.
        func gradients(_ xs: [[Double]], _ ys: [Double]) -> Tensor {
            Tensor(shape: [xs.count, d], scalars: zip(xs, ys).flatMap { x, y in
                x.map { Float((Reference.dot(x[...], w[...]) - y) * $0) }
            })
        }
        checkpoint = try CheckpointGradients(
            rows: gradients(train, labels), blocks: GradientBlocks([0..<2, 2..<6]), learningRate: 1e-2)
        let held = (0..<Self.validationCount).map { _ in sample() }
        validation = gradients(held, held.map { Reference.dot($0[...], truth[...]) })
        let honest = ["alice", "bob", "carol"]
        records = (0..<Self.trainCount).map { row in
            let contributor = row == Self.planted || row % 12 == 1 ? "mallory" : honest[row % 3]
            return RecordInfo(id: "record-\(row)", contributor: contributor, datanet: "toy", datanetVersion: 1)
        }
    }
}

@Suite("Curation")
struct CurationTests {
    @Test("flags the planted harmful record and its contributor", arguments: [ScorerKind.gradDot, .tracIn, .dataInf, .fisher, .gradCos])
    func flagsPlantedRecord(kind: ScorerKind) throws {
        let toy = try PlantedRegression(seed: 31)
        let scorer = try AttributionScorer(kind: kind, checkpoints: [toy.checkpoint])
        let report = try Curation.curate(scorer: scorer, validation: [toy.validation], table: RecordTable(toy.records))
        #expect(report.validationInfluence.first?.row == PlantedRegression.planted)
        #expect(report.harmfulRecords.first?.record.id == "record-\(PlantedRegression.planted)")
        #expect(report.contributors.count == 4)
        if kind == .gradCos {
            // A cosine forgets the planted record's large loss, so its harm weighs like anyone's.
            #expect(report.selfInfluence == nil)
        } else {
            #expect(report.harmfulContributors.first?.contributor == "mallory")
            #expect(report.contributors.first?.contributor == "mallory")
            #expect(report.selfInfluence?.first?.row == PlantedRegression.planted)
        }
        // Fisher's damped Newton direction also finds bob's clean records slightly net harmful on this toy.
        if kind != .gradCos && kind != .fisher {
            #expect(report.harmfulContributors.map(\.contributor) == ["mallory"])
        }
    }

    @Test("mean and sum over validation queries equal the per-query scores' mean and sum", arguments: [ScorerKind.dataInf, .gradCos])
    func aggregation(kind: ScorerKind) throws {
        let toy = try PlantedRegression(seed: 32)
        let scorer = try AttributionScorer(kind: kind, checkpoints: [toy.checkpoint])
        let perQuery = Reference.matrix(try scorer.scores(queries: [toy.validation]))
        let sums = (0..<PlantedRegression.trainCount).map { k in perQuery.reduce(0) { $0 + $1[k] } }
        for aggregation in ValidationAggregation.allCases {
            let report = try Curation.curate(scorer: scorer, validation: [toy.validation], table: RecordTable(toy.records), aggregation: aggregation)
            let divisor = aggregation == .mean ? Double(PlantedRegression.validationCount) : 1
            let byRow = report.validationInfluence.sorted { $0.row < $1.row }.map { Float($0.score) }
            #expect(closeRelative(byRow, sums.map { $0 / divisor }))
            let contributorTotal = report.contributors.reduce(0) { $0 + $1.netInfluence }
            #expect(abs(contributorTotal - byRow.reduce(0) { $0 + Double($1) }) < 1e-3 * sums.map(abs).max()!)
        }
    }

    @Test("bad input is refused")
    func badInput() throws {
        let toy = try PlantedRegression(seed: 33)
        let scorer = try AttributionScorer(kind: .gradDot, checkpoints: [toy.checkpoint])
        #expect(throws: AttributionInputError("3 records for an index of 48 rows: the record table must list the index's rows in order")) {
            try Curation.curate(scorer: scorer, validation: [toy.validation], table: RecordTable(Array(toy.records.prefix(3))))
        }
        #expect(throws: AttributionInputError("the validation set holds no queries")) {
            try Curation.curate(scorer: scorer, validation: [Tensor(zeros: [0, 6])], table: RecordTable(toy.records))
        }
    }
}
