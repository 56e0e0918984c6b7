import Foundation
import GRDB

/// Who may read a datanet: anyone for a public one; for a private one its owner, the contributors its owner
/// granted, and operators. Reading covers listing its records, exporting its versions and training on them.
public struct DatanetGrant: Hashable, Sendable {
    public var datanet: DatanetID
    public var grantee: ContributorID
    public var grantedBy: ContributorID
    public var grantedAt: Date
}

extension Store {
    /// Lets `grantee` read the private datanet `id` (and train on its versions). Only the datanet's owner or an
    /// operator may grant; granting twice keeps the first grant.
    ///
    /// - Throws: ``StoreError/datanetNotFound(_:)``, ``StoreError/contributorNotFound(_:)``,
    ///   ``StoreError/notDatanetOwner(datanet:contributor:)``.
    @discardableResult
    public func grantRead(on id: DatanetID, to grantee: ContributorID, by granter: ContributorID) throws -> [DatanetGrant] {
        let now = nowMillis()
        return try write { db in
            try Self.requireDatanetControl(db, id, by: granter)
            try Self.requireContributor(db, grantee)
            try db.execute(
                sql: """
                    INSERT INTO datanet_grant (datanet_id, grantee_id, granted_by, granted_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (datanet_id, grantee_id) DO NOTHING
                    """,
                arguments: [id, grantee, granter, now])
            return try Self.fetchGrants(db, id)
        }
    }

    /// Takes back `grantee`'s read grant on `id`. Adapters already trained keep their provenance.
    public func revokeRead(on id: DatanetID, from grantee: ContributorID, by granter: ContributorID) throws -> [DatanetGrant] {
        try write { db in
            try Self.requireDatanetControl(db, id, by: granter)
            try db.execute(
                sql: "DELETE FROM datanet_grant WHERE datanet_id = ? AND grantee_id = ?", arguments: [id, grantee])
            return try Self.fetchGrants(db, id)
        }
    }

    /// The read grants on a datanet, by grantee id.
    public func grants(on id: DatanetID) throws -> [DatanetGrant] {
        try read { db in
            _ = try Self.fetchDatanet(db, id)
            return try Self.fetchGrants(db, id)
        }
    }

    /// Whether `reader` (nil: anonymous) may read the datanet.
    public func canRead(_ id: DatanetID, by reader: ContributorID?) throws -> Bool {
        try read { db in try Self.canRead(db, try Self.fetchDatanet(db, id), by: reader) }
    }

    /// - Throws: ``StoreError/datanetNotReadable(datanet:contributor:)`` unless `reader` may read every version's
    ///   datanet; not-found errors for a version that does not exist.
    public func requireReadable(_ versions: [DatanetVersionRef], by reader: ContributorID) throws {
        try read { db in
            for version in versions {
                _ = try Self.fetchVersion(db, version)
                try Self.requireReadable(db, version.datanet, by: reader)
            }
        }
    }

    /// - Throws: ``StoreError/notDatanetOwner(datanet:contributor:)`` unless `contributor` owns the datanet or is
    ///   an operator.
    public func requireDatanetControl(_ id: DatanetID, by contributor: ContributorID) throws {
        try read { db in try Self.requireDatanetControl(db, id, by: contributor) }
    }

    /// - Throws: ``StoreError/notAdapterOwner(adapter:contributor:)`` unless `contributor` owns the adapter or is
    ///   an operator.
    public func requireAdapterControl(_ adapter: AdapterID, by contributor: ContributorID) throws {
        try read { db in
            guard try Self.fetchAdapterOwner(db, adapter) == contributor || Self.isOperator(db, contributor) else {
                throw StoreError.notAdapterOwner(adapter: adapter, contributor: contributor)
            }
        }
    }

    /// Who answers for an adapter's data, and so may curate it: its owner, the owner of a datanet it was trained
    /// on, or an operator.
    ///
    /// - Throws: ``StoreError/notAdapterOwner(adapter:contributor:)`` for anyone else.
    public func requireCurationStake(_ adapter: AdapterID, by contributor: ContributorID) throws {
        try read { db in
            if try Self.fetchAdapterOwner(db, adapter) == contributor || Self.isOperator(db, contributor) { return }
            guard try Bool.fetchOne(
                db,
                sql: """
                    SELECT 1 FROM adapter_training_version t JOIN datanet_version v ON v.id = t.version_id
                    JOIN datanet d ON d.id = v.datanet_id WHERE t.adapter_id = ? AND d.owner_id = ? LIMIT 1
                    """,
                arguments: [adapter, contributor]) != nil
            else { throw StoreError.notAdapterOwner(adapter: adapter, contributor: contributor) }
        }
    }

    static func canRead(_ db: Database, _ datanet: Datanet, by reader: ContributorID?) throws -> Bool {
        if datanet.isPublic { return true }
        guard let reader else { return false }
        if datanet.owner == reader { return true }
        if try Bool.fetchOne(
            db, sql: "SELECT 1 FROM datanet_grant WHERE datanet_id = ? AND grantee_id = ?", arguments: [datanet.id, reader]
        ) != nil { return true }
        return try Self.isOperator(db, reader)
    }

    /// - Throws: ``StoreError/datanetNotReadable(datanet:contributor:)`` unless `reader` may read the datanet.
    static func requireReadable(_ db: Database, _ id: DatanetID, by reader: ContributorID) throws {
        guard try canRead(db, try fetchDatanet(db, id), by: reader) else {
            throw StoreError.datanetNotReadable(datanet: id, contributor: reader)
        }
    }

    /// The datanet's owner or an operator.
    static func requireDatanetControl(_ db: Database, _ id: DatanetID, by contributor: ContributorID) throws {
        let datanet = try fetchDatanet(db, id)
        guard try datanet.owner == contributor || isOperator(db, contributor) else {
            throw StoreError.notDatanetOwner(datanet: id, contributor: contributor)
        }
    }

    static func isOperator(_ db: Database, _ id: ContributorID) throws -> Bool {
        try String.fetchOne(db, sql: "SELECT role FROM contributor WHERE id = ?", arguments: [id])
            == ContributorRole.operator.rawValue
    }

    static func fetchGrants(_ db: Database, _ id: DatanetID) throws -> [DatanetGrant] {
        try Row.fetchAll(
            db, sql: "SELECT * FROM datanet_grant WHERE datanet_id = ? ORDER BY grantee_id", arguments: [id]
        ).map { row in
            DatanetGrant(
                datanet: try row.decode(forColumn: "datanet_id"), grantee: try row.decode(forColumn: "grantee_id"),
                grantedBy: try row.decode(forColumn: "granted_by"),
                grantedAt: Date(millis: try row.decode(forColumn: "granted_at")))
        }
    }
}
