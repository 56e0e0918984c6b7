import Foundation
import GRDB

/// Why a record was penalised: the curation run that found it harmful to one adapter.
public struct PenaltyEvidence: Hashable, Sendable {
    /// The attribution method the curation scored with (`datainf`, `tracin`, ...; 1 to 64 bytes).
    public var method: String
    /// The validation set: the datanet version the adapter's training records were scored against.
    public var evaluation: DatanetVersionRef
    /// The record's net influence on the validation set (negative: harmful).
    public var score: Double

    public init(method: String, evaluation: DatanetVersionRef, score: Double) {
        self.method = method
        self.evaluation = evaluation
        self.score = score
    }
}

/// Curation's verdict that a record harmed one adapter. Its points count against its contributor's payouts on
/// that adapter's inferences only; the penalty is also a ledger entry (kind `penalty`, amount 0), so it is
/// public and chained like every payment.
public struct RecordPenalty: Hashable, Sendable {
    public var record: RecordID
    public var contributor: ContributorID
    /// The adapter whose curation earned it, and whose payouts it cuts.
    public var adapter: AdapterID
    /// The adapter's owner, the record's datanet owner, or an operator.
    public var imposedBy: ContributorID
    public var evidence: PenaltyEvidence
    public var points: Int
    /// The ledger entry that records it.
    public var ledgerSeq: Int64
    public var createdAt: Date
}

extension Store {
    /// Penalises `record` for the harm curation found it does to `adapter`: its contributor's shares of that
    /// adapter's fees are reduced by the penalty policy once their points on it pass the threshold.
    ///
    /// Only those accountable for the adapter's data may penalise: the adapter's owner, the owner of the record's
    /// datanet, or an operator. The record must be in the adapter's training data, and the validation version
    /// readable by whoever imposes the penalty. A record is penalised at most once per adapter.
    ///
    /// - Throws: ``StoreError/notAdapterOwner(adapter:contributor:)`` for anyone else,
    ///   ``StoreError/recordNotInTrainingData(record:adapter:)``, ``StoreError/recordAlreadyFlagged(_:)``,
    ///   ``StoreError/invalidFlag(_:)``, ``StoreError/datanetNotReadable(datanet:contributor:)``, not-found errors.
    @discardableResult
    public func penalize(
        _ record: RecordID, adapter: AdapterID, by imposer: ContributorID, evidence: PenaltyEvidence, points: Int
    ) throws -> RecordPenalty {
        guard (1...1000).contains(points) else { throw StoreError.invalidFlag("points must be 1 to 1000") }
        guard (1...64).contains(evidence.method.utf8.count), !Validation.containsControlCharacters(evidence.method) else {
            throw StoreError.invalidFlag("method must be 1 to 64 bytes, without control characters")
        }
        guard evidence.score.isFinite else { throw StoreError.invalidFlag("score must be finite") }
        let now = nowMillis()
        return try write { db in
            try Self.requireContributor(db, imposer)
            let target = try Self.fetchRecord(db, record)
            let adapterOwner = try Self.fetchAdapterOwner(db, adapter)
            let datanetOwner = try Self.fetchDatanet(db, target.datanet).owner
            guard try imposer == adapterOwner || imposer == datanetOwner || Self.isOperator(db, imposer) else {
                throw StoreError.notAdapterOwner(adapter: adapter, contributor: imposer)
            }
            guard try Bool.fetchOne(
                db,
                sql: """
                    SELECT 1 FROM version_record vr JOIN adapter_training_version t ON t.version_id = vr.version_id
                    WHERE t.adapter_id = ? AND vr.record_id = ? LIMIT 1
                    """,
                arguments: [adapter, record]) != nil
            else { throw StoreError.recordNotInTrainingData(record: record, adapter: adapter) }
            let (evaluationID, _) = try Self.fetchVersion(db, evidence.evaluation)
            try Self.requireReadable(db, evidence.evaluation.datanet, by: imposer)
            guard try Bool.fetchOne(
                db, sql: "SELECT 1 FROM record_penalty WHERE record_id = ? AND adapter_id = ?", arguments: [record, adapter]
            ) == nil else { throw StoreError.recordAlreadyFlagged(record) }

            let memo =
                "penalty: \(record) on \(adapter), \(points) points, imposed by \(imposer): \(evidence.method) net influence "
                + "\(evidence.score) against \(evidence.evaluation)"
            let entry = try Self.append(
                db, after: try Self.head(db), kind: .penalty, account: .contributor(target.contributor), amount: 0,
                inference: nil, subject: target.contributor, memo: memo, at: now)
            try db.execute(
                sql: """
                    INSERT INTO record_penalty (record_id, contributor_id, adapter_id, imposed_by, method,
                                                evaluation_version_id, score, points, ledger_seq, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    record, target.contributor, adapter, imposer, evidence.method, evaluationID, evidence.score, points,
                    entry.seq, now,
                ])
            return RecordPenalty(
                record: record, contributor: target.contributor, adapter: adapter, imposedBy: imposer, evidence: evidence,
                points: points, ledgerSeq: entry.seq, createdAt: Date(millis: now))
        }
    }

    /// Penalties, oldest first: a contributor's (what they can check against their payouts), an adapter's, or both.
    public func penalties(of contributor: ContributorID? = nil, adapter: AdapterID? = nil) throws -> [RecordPenalty] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT p.*, v.datanet_id, v.number FROM record_penalty p
                    JOIN datanet_version v ON v.id = p.evaluation_version_id
                    WHERE (?1 IS NULL OR p.contributor_id = ?1) AND (?2 IS NULL OR p.adapter_id = ?2)
                    ORDER BY p.id
                    """,
                arguments: [contributor, adapter]
            ).map { row in
                RecordPenalty(
                    record: try row.decode(forColumn: "record_id"), contributor: try row.decode(forColumn: "contributor_id"),
                    adapter: try row.decode(forColumn: "adapter_id"), imposedBy: try row.decode(forColumn: "imposed_by"),
                    evidence: PenaltyEvidence(
                        method: try row.decode(forColumn: "method"),
                        evaluation: DatanetVersionRef(
                            datanet: try row.decode(forColumn: "datanet_id"), number: try row.decode(forColumn: "number")),
                        score: try row.decode(forColumn: "score")),
                    points: try row.decode(forColumn: "points"), ledgerSeq: try row.decode(forColumn: "ledger_seq"),
                    createdAt: Date(millis: try row.decode(forColumn: "created_at")))
            }
        }
    }

    /// The contributor's penalty points on one adapter: what reduces their shares of its fees.
    public func penaltyPoints(of contributor: ContributorID, on adapter: AdapterID) throws -> Int {
        try read { db in try Self.penaltyPoints(db, contributor, on: adapter) }
    }

    static func penaltyPoints(_ db: Database, _ contributor: ContributorID, on adapter: AdapterID) throws -> Int {
        try Int.fetchOne(
            db, sql: "SELECT coalesce(sum(points), 0) FROM record_penalty WHERE contributor_id = ? AND adapter_id = ?",
            arguments: [contributor, adapter]) ?? 0
    }
}
