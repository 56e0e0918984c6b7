import Foundation
import GRDB

/// Where a contribution stands. It is pending until the datanet's owner approves or rejects it, once.
public enum RecordStatus: String, Sendable, Codable, CaseIterable {
    case pending, approved, rejected
}

/// A record as submitted: raw bytes, so that bytes that are not UTF-8 can be refused precisely.
public enum RecordSubmission: Sendable, Equatable {
    case text(bytes: [UInt8])
    case pair(prompt: [UInt8], completion: [UInt8])

    public static func text(_ text: String) -> RecordSubmission { .text(bytes: Array(text.utf8)) }
    public static func pair(prompt: String, completion: String) -> RecordSubmission {
        .pair(prompt: Array(prompt.utf8), completion: Array(completion.utf8))
    }
    public init(_ content: RecordContent) {
        switch content {
        case .text(let text): self = .text(text)
        case .pair(let prompt, let completion): self = .pair(prompt: prompt, completion: completion)
        }
    }

    /// Size as counted against the record limit: the UTF-8 bytes of the text, or of prompt plus completion.
    public var byteSize: Int {
        switch self {
        case .text(let bytes): bytes.count
        case .pair(let prompt, let completion): prompt.count + completion.count
        }
    }
}

/// A contributed record.
public struct DataRecord: Hashable, Sendable {
    public var id: RecordID
    public var datanet: DatanetID
    /// Who contributed it first, and so who earns from it.
    public var contributor: ContributorID
    public var content: RecordContent
    public var byteSize: Int
    /// See ``ContentNormalizer``.
    public var contentHash: Data
    public var status: RecordStatus
    public var createdAt: Date
    public var reviewedAt: Date?
    public var reviewedBy: ContributorID?
    public var reviewNote: String?
}

/// The owner's decision on a pending record.
public enum ReviewDecision: String, Sendable {
    case approve, reject
}

extension Store {
    /// Contributes a record to a datanet, pending the owner's review.
    ///
    /// Checks, in order: size (bytes as submitted, against ``StoreConfiguration/maxRecordBytes``), UTF-8,
    /// no NUL, not empty once normalised; then that the datanet and contributor exist, that the contributor may
    /// contribute (anyone to a public datanet, only the owner to a private one), and that the normalised content
    /// is not already in the datanet in any status (the first contributor keeps the credit).
    ///
    /// - Throws: ``StoreError/recordTooLarge(bytes:limit:)``, ``StoreError/invalidUTF8(field:byteOffset:)``,
    ///   ``StoreError/containsNUL(field:)``, ``StoreError/emptyRecord(field:)``,
    ///   ``StoreError/datanetNotFound(_:)``, ``StoreError/contributorNotFound(_:)``,
    ///   ``StoreError/contributionNotPermitted(datanet:contributor:)``,
    ///   ``StoreError/duplicateRecord(existing:contributor:status:)``.
    public func contribute(_ submission: RecordSubmission, to datanet: DatanetID, by contributor: ContributorID)
        throws -> DataRecord
    {
        let content = try validateSubmission(submission)
        let hash = ContentNormalizer.contentHash(content)
        let now = nowMillis()
        return try write { db in
            let net = try Self.fetchDatanet(db, datanet)
            try Self.requireContributor(db, contributor)
            if net.visibility == .private && net.owner != contributor {
                throw StoreError.contributionNotPermitted(datanet: datanet, contributor: contributor)
            }
            if let row = try Row.fetchOne(
                db, sql: "SELECT id, contributor_id, status FROM record WHERE datanet_id = ? AND content_hash = ?",
                arguments: [datanet, hash])
            {
                throw StoreError.duplicateRecord(
                    existing: try row.decode(forColumn: "id"), contributor: try row.decode(forColumn: "contributor_id"),
                    status: try Self.status(from: row))
            }
            var text: String?
            var prompt: String?
            var completion: String?
            switch content {
            case .text(let t): text = t
            case .pair(let p, let c): (prompt, completion) = (p, c)
            }
            try db.execute(
                sql: """
                    INSERT INTO record (datanet_id, contributor_id, kind, text, prompt, completion, byte_size,
                                        content_hash, status, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
                    """,
                arguments: [
                    datanet, contributor, content.kind, text, prompt, completion, submission.byteSize, hash, now,
                ])
            return try Self.fetchRecord(db, RecordID(db.lastInsertedRowID))
        }
    }

    /// Approves or rejects a pending record. Only the datanet's owner may, and only once.
    ///
    /// - Throws: ``StoreError/recordNotFound(_:)``, ``StoreError/contributorNotFound(_:)``,
    ///   ``StoreError/notDatanetOwner(datanet:contributor:)``,
    ///   ``StoreError/recordAlreadyReviewed(_:status:)``.
    @discardableResult
    public func review(_ record: RecordID, by reviewer: ContributorID, _ decision: ReviewDecision, note: String? = nil)
        throws -> DataRecord
    {
        let note = try note.map { try Validation.text($0, field: "review note", maxBytes: 4096, allowEmpty: true) }
        let now = nowMillis()
        return try write { db in
            let current = try Self.fetchRecord(db, record)
            try Self.requireContributor(db, reviewer)
            let net = try Self.fetchDatanet(db, current.datanet)
            guard net.owner == reviewer else {
                throw StoreError.notDatanetOwner(datanet: net.id, contributor: reviewer)
            }
            guard current.status == .pending else {
                throw StoreError.recordAlreadyReviewed(record, status: current.status)
            }
            let status: RecordStatus = decision == .approve ? .approved : .rejected
            try db.execute(
                sql: "UPDATE record SET status = ?, reviewed_at = ?, reviewed_by = ?, review_note = ? WHERE id = ?",
                arguments: [status.rawValue, now, reviewer, note, record])
            return try Self.fetchRecord(db, record)
        }
    }

    /// Approves a pending record; see ``review(_:by:_:note:)``.
    @discardableResult
    public func approve(_ record: RecordID, by reviewer: ContributorID, note: String? = nil) throws -> DataRecord {
        try review(record, by: reviewer, .approve, note: note)
    }

    /// Rejects a pending record; see ``review(_:by:_:note:)``.
    @discardableResult
    public func reject(_ record: RecordID, by reviewer: ContributorID, note: String? = nil) throws -> DataRecord {
        try review(record, by: reviewer, .reject, note: note)
    }

    /// The record with this id. - Throws: ``StoreError/recordNotFound(_:)``.
    public func record(_ id: RecordID) throws -> DataRecord {
        try read { db in try Self.fetchRecord(db, id) }
    }

    /// A datanet's records by id, optionally of one status, after `after`, at most `limit`.
    public func records(
        in datanet: DatanetID, status: RecordStatus? = nil, after: RecordID? = nil, limit: Int = 1000
    ) throws -> [DataRecord] {
        try read { db in
            _ = try Self.fetchDatanet(db, datanet)
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM record WHERE datanet_id = ? AND (? IS NULL OR status = ?) AND id > ?
                    ORDER BY id LIMIT ?
                    """,
                arguments: [datanet, status?.rawValue, status?.rawValue, after?.rawValue ?? 0, max(0, limit)])
            return try rows.map(Self.record(from:))
        }
    }

    /// How many of the datanet's records have each status (every status present, 0 when it has none).
    ///
    /// - Throws: ``StoreError/datanetNotFound(_:)``.
    public func recordCounts(in datanet: DatanetID) throws -> [RecordStatus: Int] {
        try read { db in
            _ = try Self.fetchDatanet(db, datanet)
            var counts = Dictionary(uniqueKeysWithValues: RecordStatus.allCases.map { ($0, 0) })
            let rows = try Row.fetchAll(
                db, sql: "SELECT status, count(*) AS n FROM record WHERE datanet_id = ? GROUP BY status", arguments: [datanet])
            for row in rows {
                let raw: String = try row.decode(forColumn: "status")
                guard let status = RecordStatus(rawValue: raw) else {
                    throw StoreError.corruptRow("a record of datanet \(datanet.rawValue) has status \"\(raw)\"")
                }
                counts[status] = try row.decode(forColumn: "n")
            }
            return counts
        }
    }

    /// Checks a submission and decodes it. Pure: touches no database.
    func validateSubmission(_ submission: RecordSubmission) throws -> RecordContent {
        let size = submission.byteSize
        guard size <= configuration.maxRecordBytes else {
            throw StoreError.recordTooLarge(bytes: size, limit: configuration.maxRecordBytes)
        }
        func decode(_ bytes: [UInt8], field: String) throws -> String {
            if let offset = UTF8Validation.firstInvalidOffset(bytes) {
                throw StoreError.invalidUTF8(field: field, byteOffset: offset)
            }
            if bytes.contains(0) { throw StoreError.containsNUL(field: field) }
            let string = String(decoding: bytes, as: UTF8.self)
            if ContentNormalizer.normalize(string).isEmpty { throw StoreError.emptyRecord(field: field) }
            return string
        }
        switch submission {
        case .text(let bytes):
            return .text(try decode(bytes, field: "text"))
        case .pair(let prompt, let completion):
            return .pair(prompt: try decode(prompt, field: "prompt"), completion: try decode(completion, field: "completion"))
        }
    }

    static func fetchRecord(_ db: Database, _ id: RecordID) throws -> DataRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM record WHERE id = ?", arguments: [id]) else {
            throw StoreError.recordNotFound(id)
        }
        return try record(from: row)
    }

    static func content(from row: Row) throws -> RecordContent {
        let kind: String = try row.decode(forColumn: "kind")
        switch kind {
        case "text": return .text(try row.decode(forColumn: "text"))
        case "pair":
            return .pair(prompt: try row.decode(forColumn: "prompt"), completion: try row.decode(forColumn: "completion"))
        default: throw StoreError.corruptRow("record \(try row.decode(Int64.self, forColumn: "id")) has kind \"\(kind)\"")
        }
    }

    static func status(from row: Row) throws -> RecordStatus {
        let raw: String = try row.decode(forColumn: "status")
        guard let status = RecordStatus(rawValue: raw) else {
            throw StoreError.corruptRow("record \(try row.decode(Int64.self, forColumn: "id")) has status \"\(raw)\"")
        }
        return status
    }

    static func record(from row: Row) throws -> DataRecord {
        let reviewedAt: Int64? = try row.decode(forColumn: "reviewed_at")
        return DataRecord(
            id: try row.decode(forColumn: "id"),
            datanet: try row.decode(forColumn: "datanet_id"),
            contributor: try row.decode(forColumn: "contributor_id"),
            content: try content(from: row),
            byteSize: try row.decode(forColumn: "byte_size"),
            contentHash: try row.decode(forColumn: "content_hash"),
            status: try status(from: row),
            createdAt: Date(millis: try row.decode(forColumn: "created_at")),
            reviewedAt: reviewedAt.map(Date.init(millis:)),
            reviewedBy: try row.decode(forColumn: "reviewed_by"),
            reviewNote: try row.decode(forColumn: "review_note"))
    }
}
