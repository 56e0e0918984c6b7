import TensorCore

/// One training record's influence on an output.
public struct AttributedRecord: Sendable, Equatable, Codable {
    /// The record's row in the gradient index.
    public var row: Int
    public var record: RecordInfo
    public var score: Double
    /// score / (sum of positive scores) for a positive score, else 0.
    public var share: Double

    enum CodingKeys: String, CodingKey { case row, record, score, share }
}

/// The influence of everything one contributor, or one datanet version, gave.
public struct GroupShare: Sendable, Equatable, Codable {
    /// The contributor, or the datanet.
    public var name: String
    /// The datanet version; nil for a contributor.
    public var version: Int?
    /// Its positive influence over the output's positive influence: shares sum to 1 over groups.
    public var share: Double
    /// The sum of its records' positive scores.
    public var positiveInfluence: Double
    /// The sum of its records' negative scores (<= 0), reported beside the share, never dropped.
    public var negativeInfluence: Double
    public var records: Int

    enum CodingKeys: String, CodingKey {
        case name, version, share, records
        case positiveInfluence = "positive_influence"
        case negativeInfluence = "negative_influence"
    }
}

/// Who shaped one output: the top records, and the per-contributor and per-datanet shares.
public struct OutputAttribution: Sendable, Equatable, Codable {
    /// The top-K records by score, highest first.
    public var records: [AttributedRecord]
    /// The K most negative records, most harmful first: they made the output less likely.
    public var opposingRecords: [AttributedRecord]
    /// Every contributor with a record in the index, by share then by name.
    public var contributors: [GroupShare]
    /// Every datanet version with a record in the index, by share then by name and version.
    public var datanets: [GroupShare]
    /// The sum of all positive scores, the shares' denominator.
    public var positiveTotal: Double
    /// The sum of all negative scores (<= 0).
    public var negativeTotal: Double

    enum CodingKeys: String, CodingKey {
        case records, contributors, datanets
        case opposingRecords = "opposing_records"
        case positiveTotal = "positive_total"
        case negativeTotal = "negative_total"
    }
}

/// The record table in index row order, grouped once by contributor and by datanet version, so that
/// each output's shares are one pass over integer group ids rather than string lookups per record.
public struct RecordTable: Sendable {
    public let records: [RecordInfo]
    /// Group names (and datanet versions) by id, and each row's group id.
    let contributors: [String], contributorOfRow: [Int]
    let datanets: [(name: String, version: Int)], datanetOfRow: [Int]

    public init(_ records: [RecordInfo]) {
        self.records = records
        var contributorIDs: [String: Int] = [:], contributors: [String] = []
        struct DatanetKey: Hashable { var name: String; var version: Int }
        var datanetIDs: [DatanetKey: Int] = [:], datanets: [(name: String, version: Int)] = []
        contributorOfRow = records.map { record in
            if let id = contributorIDs[record.contributor] { return id }
            contributors.append(record.contributor)
            contributorIDs[record.contributor] = contributors.count - 1
            return contributors.count - 1
        }
        datanetOfRow = records.map { record in
            let key = DatanetKey(name: record.datanet, version: record.datanetVersion)
            if let id = datanetIDs[key] { return id }
            datanets.append((record.datanet, record.datanetVersion))
            datanetIDs[key] = datanets.count - 1
            return datanets.count - 1
        }
        self.contributors = contributors
        self.datanets = datanets
    }

    public var count: Int { records.count }

    /// Per group: the sum of its rows' positive scores, of their negative scores, and its row count.
    static func groupTotals(_ scores: [Float], groupOfRow: [Int], groupCount: Int) -> (positive: [Double], negative: [Double], records: [Int]) {
        var positive = [Double](repeating: 0, count: groupCount), negative = positive
        var records = [Int](repeating: 0, count: groupCount)
        for (score, group) in zip(scores, groupOfRow) {
            if score > 0 { positive[group] += Double(score) } else { negative[group] += Double(score) }
            records[group] += 1
        }
        return (positive, negative, records)
    }

    /// Checks that `scores` has one finite score per row.
    func check(_ scores: [Float]) throws(AttributionInputError) {
        guard scores.count == count else {
            throw AttributionInputError("\(scores.count) scores for \(count) records: the record table must list the index's rows in order")
        }
        if let bad = scores.firstIndex(where: { !$0.isFinite }) {
            throw AttributionInputError("score of record row \(bad) (\(records[bad].id)) is not finite")
        }
    }
}

/// Shares of influence: positive influence normalised to sum to 1, negative influence beside it.
public enum Shares {
    /// The attribution of one output from its scores over the index (`scores[k]` for record row k).
    public static func attribute(scores: [Float], table: RecordTable, topK: Int) throws(AttributionInputError) -> OutputAttribution {
        try table.check(scores)
        guard topK > 0 else { throw AttributionInputError("top-K must be positive, got \(topK)") }
        var positiveTotal = 0.0, negativeTotal = 0.0
        for score in scores {
            if score > 0 { positiveTotal += Double(score) } else { negativeTotal += Double(score) }
        }
        func share(_ positive: Double) -> Double { positiveTotal > 0 ? positive / positiveTotal : 0 }
        func attributed(_ row: Int) -> AttributedRecord {
            let score = Double(scores[row])
            return AttributedRecord(row: row, record: table.records[row], score: score, share: share(max(score, 0)))
        }
        func groupShares(_ names: [(name: String, version: Int?)], _ groupOfRow: [Int]) -> [GroupShare] {
            let totals = RecordTable.groupTotals(scores, groupOfRow: groupOfRow, groupCount: names.count)
            return names.enumerated().map { id, group in
                GroupShare(
                    name: group.name, version: group.version, share: share(totals.positive[id]),
                    positiveInfluence: totals.positive[id], negativeInfluence: totals.negative[id], records: totals.records[id])
            }.sorted { ($1.share, $0.name, $0.version ?? 0) < ($0.share, $1.name, $1.version ?? 0) }
        }
        return OutputAttribution(
            records: topIndices(of: scores, count: topK).map(attributed),
            opposingRecords: topIndices(of: scores.map { -$0 }, count: topK).filter { scores[$0] < 0 }.map(attributed),
            contributors: groupShares(table.contributors.map { ($0, nil) }, table.contributorOfRow),
            datanets: groupShares(table.datanets.map { ($0.name, $0.version) }, table.datanetOfRow),
            positiveTotal: positiveTotal, negativeTotal: negativeTotal)
    }

    /// One attribution per row of a q x n score matrix.
    public static func attribute(scores: Tensor, table: RecordTable, topK: Int) throws(AttributionInputError) -> [OutputAttribution] {
        guard scores.rank == 2 else { throw AttributionInputError("scores must be a q x n matrix, got shape \(scores.shape)") }
        var result: [OutputAttribution] = []
        for query in 0..<scores.shape[0] {
            result.append(try attribute(scores: scores.slice(0, query..<query + 1).scalars, table: table, topK: topK))
        }
        return result
    }

    /// The indices of the `count` largest values, largest first (ties: lower index first). A short
    /// list comes from one pass that keeps a sorted shortlist, O(n) for a large index; a long one
    /// from a full sort.
    static func topIndices(of values: [Float], count: Int) -> [Int] {
        if count >= values.count / 64 {
            return values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
                .prefix(count).map { $0 }
        }
        var shortlist: [(value: Float, index: Int)] = []  // ascending by rank: the weakest first
        shortlist.reserveCapacity(count + 1)
        func ranksAbove(_ a: (value: Float, index: Int), _ b: (value: Float, index: Int)) -> Bool {
            a.value > b.value || (a.value == b.value && a.index < b.index)
        }
        for (index, value) in values.enumerated() {
            let candidate = (value: value, index: index)
            if shortlist.count == count, !ranksAbove(candidate, shortlist[0]) { continue }
            var low = 0, high = shortlist.count
            while low < high {
                let mid = (low + high) / 2
                if ranksAbove(candidate, shortlist[mid]) { low = mid + 1 } else { high = mid }
            }
            shortlist.insert(candidate, at: low)
            if shortlist.count > count { shortlist.removeFirst() }
        }
        return shortlist.reversed().map(\.index)
    }
}
