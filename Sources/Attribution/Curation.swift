import TensorCore

/// A record's place in a curation ranking.
public struct CuratedRecord: Sendable, Equatable, Codable {
    public var row: Int
    public var record: RecordInfo
    /// Self-influence, or net influence on the validation set, by the ranking it appears in.
    public var score: Double
}

/// A contributor's net influence on the validation set: the sum over their records.
public struct CuratedContributor: Sendable, Equatable, Codable {
    public var contributor: String
    public var netInfluence: Double
    public var records: Int
    /// How many of their records are flagged harmful.
    public var harmfulRecords: Int

    enum CodingKeys: String, CodingKey {
        case contributor, records
        case netInfluence = "net_influence"
        case harmfulRecords = "harmful_records"
    }
}

/// How a record's influences on the validation queries combine into its net influence.
public enum ValidationAggregation: String, Sendable, Codable, CaseIterable {
    case sum, mean
}

/// Curation of an index: which records look anomalous and which hurt the validation loss.
public struct CurationReport: Sendable, Equatable, Codable {
    public var scorer: ScorerKind
    public var aggregation: ValidationAggregation
    /// Records flagged when their net influence is below this (0: any net harm).
    public var harmfulThreshold: Double
    /// Every record by self-influence, highest first (nil for grad-cos, where it is constant).
    public var selfInfluence: [CuratedRecord]?
    /// Every record by net influence on the validation set, most harmful (lowest) first.
    public var validationInfluence: [CuratedRecord]
    /// The records whose net influence is below the threshold, most harmful first.
    public var harmfulRecords: [CuratedRecord]
    /// Every contributor by net influence, most harmful first.
    public var contributors: [CuratedContributor]
    /// The contributors whose net influence is below the threshold.
    public var harmfulContributors: [CuratedContributor]

    enum CodingKeys: String, CodingKey {
        case scorer, aggregation, contributors
        case harmfulThreshold = "harmful_threshold"
        case selfInfluence = "self_influence"
        case validationInfluence = "validation_influence"
        case harmfulRecords = "harmful_records"
        case harmfulContributors = "harmful_contributors"
    }
}

public enum Curation {
    /// Ranks the index's records by self-influence and by net influence on a held-out validation
    /// set, and flags records and contributors whose net influence is below `harmfulThreshold`
    /// (negative: on balance they raise the validation loss).
    ///
    /// `validation[c]` holds the validation queries' gradients at checkpoint c (v x D). Every scorer
    /// but grad-cos is linear in the query gradient, so the sum over validation queries is the
    /// score of their summed gradient: one pass over the index instead of v.
    public static func curate(
        scorer: AttributionScorer, validation: [Tensor], table: RecordTable,
        aggregation: ValidationAggregation = .mean, harmfulThreshold: Float = 0
    ) throws(AttributionInputError) -> CurationReport {
        guard table.count == scorer.recordCount else {
            throw AttributionInputError("\(table.count) records for an index of \(scorer.recordCount) rows: the record table must list the index's rows in order")
        }
        guard harmfulThreshold.isFinite else { throw AttributionInputError("harmful threshold must be finite, got \(harmfulThreshold)") }
        let validationCount = validation.first.map { $0.rank == 2 ? $0.shape[0] : 0 } ?? 0
        guard validationCount > 0 else { throw AttributionInputError("the validation set holds no queries") }
        let scale: Float = aggregation == .mean ? 1 / Float(validationCount) : 1

        let net: Tensor
        if scorer.kind == .gradCos {
            let scores = try scorer.scores(queries: validation)  // q x n, checked there
            var combined = Tensor(zeros: [scorer.recordCount])
            BLAS.gemv(scores.transposed(), Tensor(shape: [validationCount], repeating: scale), into: &combined)
            net = combined
        } else {
            let combined = validation.map { queries in
                queries.rank == 2 && queries.shape[0] == validationCount
                    ? BLAS.matmul(Tensor(shape: [1, validationCount], repeating: scale), queries) : queries
            }
            net = try scorer.scores(queries: combined).reshaped([scorer.recordCount])
        }
        let netScores = net.scalars
        try table.check(netScores)
        func curated(_ row: Int, _ scores: [Float]) -> CuratedRecord {
            CuratedRecord(row: row, record: table.records[row], score: Double(scores[row]))
        }
        let byHarm = Shares.topIndices(of: netScores.map { -$0 }, count: netScores.count).map { curated($0, netScores) }
        let harmful = byHarm.filter { $0.score < Double(harmfulThreshold) }

        let totals = RecordTable.groupTotals(netScores, groupOfRow: table.contributorOfRow, groupCount: table.contributors.count)
        var harmfulCounts = [Int](repeating: 0, count: table.contributors.count)
        for entry in harmful { harmfulCounts[table.contributorOfRow[entry.row]] += 1 }
        let rankedContributors = table.contributors.enumerated().map { id, name in
            CuratedContributor(
                contributor: name, netInfluence: totals.positive[id] + totals.negative[id], records: totals.records[id],
                harmfulRecords: harmfulCounts[id])
        }.sorted { ($0.netInfluence, $0.contributor) < ($1.netInfluence, $1.contributor) }

        var selfRanking: [CuratedRecord]? = nil
        if scorer.kind != .gradCos {
            let selfScores = try scorer.selfInfluence().scalars
            selfRanking = Shares.topIndices(of: selfScores, count: selfScores.count).map { curated($0, selfScores) }
        }
        return CurationReport(
            scorer: scorer.kind, aggregation: aggregation, harmfulThreshold: Double(harmfulThreshold),
            selfInfluence: selfRanking, validationInfluence: byHarm, harmfulRecords: harmful,
            contributors: rankedContributors,
            harmfulContributors: rankedContributors.filter { $0.netInfluence < Double(harmfulThreshold) })
    }
}
