import Attribution
import Foundation
import TensorCore
import Testing

@Suite("Shares")
struct SharesTests {
    static let records = [
        RecordInfo(id: "r0", contributor: "alice", datanet: "recipes", datanetVersion: 1),
        RecordInfo(id: "r1", contributor: "bob", datanet: "recipes", datanetVersion: 1),
        RecordInfo(id: "r2", contributor: "alice", datanet: "recipes", datanetVersion: 2),
        RecordInfo(id: "r3", contributor: "carol", datanet: "poems", datanetVersion: 1),
        RecordInfo(id: "r4", contributor: "bob", datanet: "poems", datanetVersion: 1),
        RecordInfo(id: "r5", contributor: "carol", datanet: "poems", datanetVersion: 1),
    ]
    static let table = RecordTable(records)

    @Test("positive influence normalised to 1 per record, contributor and datanet version; negatives beside it")
    func sharesOfOneOutput() throws {
        let scores: [Float] = [3, -1, 2, 0, -0.5, 5]
        let attribution = try Shares.attribute(scores: scores, table: Self.table, topK: 3)
        #expect(attribution.positiveTotal == 10)
        #expect(attribution.negativeTotal == -1.5)
        #expect(attribution.records.map(\.record.id) == ["r5", "r0", "r2"])
        #expect(attribution.records.map(\.share) == [0.5, 0.3, 0.2])
        #expect(attribution.opposingRecords.map(\.record.id) == ["r1", "r4"])
        #expect(attribution.opposingRecords.allSatisfy { $0.share == 0 && $0.score < 0 })

        let contributors = Dictionary(uniqueKeysWithValues: attribution.contributors.map { ($0.name, $0) })
        #expect(attribution.contributors.map(\.name) == ["alice", "carol", "bob"])
        #expect(contributors["alice"]!.share == 0.5 && contributors["carol"]!.share == 0.5)
        #expect(contributors["bob"]!.share == 0 && contributors["bob"]!.negativeInfluence == -1.5)
        #expect(contributors["carol"]!.records == 2)
        #expect(attribution.contributors.reduce(0) { $0 + $1.share } == 1)

        #expect(attribution.datanets.map { "\($0.name)@\($0.version!)" } == ["poems@1", "recipes@1", "recipes@2"])
        #expect(attribution.datanets.map(\.share) == [0.5, 0.3, 0.2])
        #expect(attribution.datanets[0].negativeInfluence == -0.5)
    }

    @Test("JSON carries records, contributors and datanets")
    func json() throws {
        let attribution = try Shares.attribute(scores: [1, -2, 0, 0, 0, 1], table: Self.table, topK: 2)
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(attribution)) as! [String: Any]
        #expect(Set(object.keys) == ["records", "opposing_records", "contributors", "datanets", "positive_total", "negative_total"])
        let first = (object["records"] as! [[String: Any]])[0]
        #expect((first["record"] as! [String: Any])["datanet_version"] as? Int == 1)
        #expect((object["contributors"] as! [[String: Any]])[0]["negative_influence"] != nil)
    }

    @Test("shares of real scores sum to 1 over positives, for every query of a batch")
    func sharesOfScorerOutput() throws {
        let problem = try ScoringProblem(seed: 4, records: 6, blockWidths: [3, 4], queries: 5, learningRates: [1e-3])
        let scores = try AttributionScorer(kind: .dataInf, checkpoints: problem.checkpoints).scores(queries: problem.queries)
        let attributions = try Shares.attribute(scores: scores, table: Self.table, topK: 6)
        #expect(attributions.count == 5)
        for (query, attribution) in attributions.enumerated() {
            let row = scores.slice(0, query..<query + 1).scalars
            #expect(abs(attribution.contributors.reduce(0) { $0 + $1.share } - 1) < 1e-12)
            #expect(abs(attribution.datanets.reduce(0) { $0 + $1.share } - 1) < 1e-12)
            #expect(abs(attribution.negativeTotal - row.filter { $0 < 0 }.reduce(0) { $0 + Double($1) }) < 1e-6)
            #expect(attribution.records.map(\.score) == row.map(Double.init).sorted(by: >))
        }
    }

    @Test("top-K over a large index equals a full sort")
    func topKOfLargeIndex() throws {
        var random = SeededRandom(seed: 12)
        let scores = (0..<20_000).map { _ in random.normal() }
        let records = (0..<20_000).map { RecordInfo(id: "r\($0)", contributor: "c\($0 % 7)", datanet: "d", datanetVersion: 1) }
        let attribution = try Shares.attribute(scores: scores, table: RecordTable(records), topK: 10)
        let sorted = scores.indices.sorted { scores[$0] > scores[$1] }
        #expect(attribution.records.map(\.row) == Array(sorted.prefix(10)))
        #expect(attribution.opposingRecords.map(\.row) == Array(sorted.suffix(10).reversed()))
    }

    @Test("bad input is refused")
    func badInput() {
        #expect(throws: AttributionInputError("2 scores for 6 records: the record table must list the index's rows in order")) {
            try Shares.attribute(scores: [1, 2], table: Self.table, topK: 3)
        }
        #expect(throws: AttributionInputError("score of record row 1 (r1) is not finite")) {
            try Shares.attribute(scores: [1, .infinity, 0, 0, 0, 0], table: Self.table, topK: 3)
        }
    }
}
