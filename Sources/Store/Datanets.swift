import Foundation
import GRDB

/// Who may contribute to a datanet.
public enum Visibility: String, Sendable, Codable, CaseIterable {
    /// Anyone may contribute (subject to the owner's review).
    case `public`
    /// Only the owner may contribute.
    case `private`
}

/// A named collection of records, owned by a contributor, published as immutable numbered versions.
public struct Datanet: Hashable, Sendable {
    public var id: DatanetID
    /// Unique; 1 to 64 characters from `a-z 0-9 . _ -`.
    public var name: String
    public var summary: String
    public var description: String
    /// Sorted, lower-case, unique.
    public var tags: [String]
    public var license: String
    public var owner: ContributorID
    public var visibility: Visibility
    public var createdAt: Date
    public var isPublic: Bool { visibility == .public }
}

/// What creating a datanet takes. Text fields are trimmed.
public struct NewDatanet: Sendable {
    public var name: String
    /// One line, at most 280 bytes.
    public var summary: String
    /// At most 64 KiB.
    public var description: String
    public var tags: [String]
    /// An SPDX identifier or a license name; required, at most 200 bytes.
    public var license: String
    public var visibility: Visibility

    public init(
        name: String, summary: String = "", description: String = "", tags: [String] = [], license: String,
        visibility: Visibility = .public
    ) {
        self.name = name
        self.summary = summary
        self.description = description
        self.tags = tags
        self.license = license
        self.visibility = visibility
    }
}

/// A change to a datanet's descriptive fields; `nil` leaves a field as it is. The name and owner never change.
public struct DatanetUpdate: Sendable {
    public var summary: String?
    public var description: String?
    public var tags: [String]?
    public var license: String?
    public var visibility: Visibility?
    public init(
        summary: String? = nil, description: String? = nil, tags: [String]? = nil, license: String? = nil,
        visibility: Visibility? = nil
    ) {
        self.summary = summary
        self.description = description
        self.tags = tags
        self.license = license
        self.visibility = visibility
    }
}

extension Store {
    /// Creates a datanet owned by `owner`.
    ///
    /// - Throws: ``StoreError/invalidDatanetName(_:reason:)``, ``StoreError/datanetNameTaken(_:)``,
    ///   ``StoreError/invalidDatanetField(field:reason:)``, ``StoreError/contributorNotFound(_:)``.
    public func createDatanet(_ spec: NewDatanet, owner: ContributorID) throws -> Datanet {
        let name = try Validation.datanetName(spec.name)
        let summary = try Validation.text(spec.summary, field: "summary", maxBytes: 280, allowEmpty: true)
        let description = try Validation.text(
            spec.description, field: "description", maxBytes: 64 * 1024, allowEmpty: true)
        let license = try Validation.text(spec.license, field: "license", maxBytes: 200, allowEmpty: false)
        let tags = try Validation.tags(spec.tags)
        let now = nowMillis()
        return try write { db in
            try Self.requireContributor(db, owner)
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM datanet WHERE name = ?", arguments: [name]) != nil {
                throw StoreError.datanetNameTaken(name)
            }
            try db.execute(
                sql: """
                    INSERT INTO datanet (name, summary, description, license, owner_id, visibility, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [name, summary, description, license, owner, spec.visibility.rawValue, now])
            let id = DatanetID(db.lastInsertedRowID)
            for tag in tags {
                try db.execute(sql: "INSERT INTO datanet_tag (datanet_id, tag) VALUES (?, ?)", arguments: [id, tag])
            }
            return try Self.fetchDatanet(db, id)
        }
    }

    /// Changes a datanet's descriptive fields. Only the owner may.
    public func updateDatanet(_ id: DatanetID, by contributor: ContributorID, _ update: DatanetUpdate) throws
        -> Datanet
    {
        let summary = try update.summary.map {
            try Validation.text($0, field: "summary", maxBytes: 280, allowEmpty: true)
        }
        let description = try update.description.map {
            try Validation.text($0, field: "description", maxBytes: 64 * 1024, allowEmpty: true)
        }
        let license = try update.license.map {
            try Validation.text($0, field: "license", maxBytes: 200, allowEmpty: false)
        }
        let tags = try update.tags.map(Validation.tags)
        return try write { db in
            let datanet = try Self.fetchDatanet(db, id)
            try Self.requireContributor(db, contributor)
            guard datanet.owner == contributor else {
                throw StoreError.notDatanetOwner(datanet: id, contributor: contributor)
            }
            try db.execute(
                sql: "UPDATE datanet SET summary = ?, description = ?, license = ?, visibility = ? WHERE id = ?",
                arguments: [
                    summary ?? datanet.summary, description ?? datanet.description, license ?? datanet.license,
                    (update.visibility ?? datanet.visibility).rawValue, id,
                ])
            if let tags {
                try db.execute(sql: "DELETE FROM datanet_tag WHERE datanet_id = ?", arguments: [id])
                for tag in tags {
                    try db.execute(
                        sql: "INSERT INTO datanet_tag (datanet_id, tag) VALUES (?, ?)", arguments: [id, tag])
                }
            }
            return try Self.fetchDatanet(db, id)
        }
    }

    /// The datanet with this id. - Throws: ``StoreError/datanetNotFound(_:)``.
    public func datanet(_ id: DatanetID) throws -> Datanet {
        try read { db in try Self.fetchDatanet(db, id) }
    }

    /// The datanet with this name. - Throws: ``StoreError/datanetNotFound(_:)``.
    public func datanet(named name: String) throws -> Datanet {
        try read { db in
            guard let id = try DatanetID.fetchOne(db, sql: "SELECT id FROM datanet WHERE name = ?", arguments: [name])
            else { throw StoreError.datanetNotFound("\"\(name)\"") }
            return try Self.fetchDatanet(db, id)
        }
    }

    /// All datanets, or those carrying `tag`, by id.
    public func datanets(tag: String? = nil) throws -> [Datanet] {
        try read { db in
            let ids: [DatanetID]
            if let tag {
                let t = tag.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                ids = try DatanetID.fetchAll(
                    db, sql: "SELECT datanet_id FROM datanet_tag WHERE tag = ? ORDER BY datanet_id", arguments: [t])
            } else {
                ids = try DatanetID.fetchAll(db, sql: "SELECT id FROM datanet ORDER BY id")
            }
            return try ids.map { try Self.fetchDatanet(db, $0) }
        }
    }

    static func fetchDatanet(_ db: Database, _ id: DatanetID) throws -> Datanet {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM datanet WHERE id = ?", arguments: [id]) else {
            throw StoreError.datanetNotFound(String(id.rawValue))
        }
        let tags = try String.fetchAll(
            db, sql: "SELECT tag FROM datanet_tag WHERE datanet_id = ? ORDER BY tag", arguments: [id])
        let rawVisibility: String = try row.decode(forColumn: "visibility")
        guard let visibility = Visibility(rawValue: rawVisibility) else {
            throw StoreError.corruptRow("datanet \(id.rawValue) has visibility \"\(rawVisibility)\"")
        }
        return Datanet(
            id: id,
            name: try row.decode(forColumn: "name"),
            summary: try row.decode(forColumn: "summary"),
            description: try row.decode(forColumn: "description"),
            tags: tags,
            license: try row.decode(forColumn: "license"),
            owner: try row.decode(forColumn: "owner_id"),
            visibility: visibility,
            createdAt: Date(millis: try row.decode(forColumn: "created_at")))
    }
}
