import Foundation
import GRDB

/// An engine name and the credential that first registered it. Only that credential registers, heartbeats and
/// drains an engine of this name (an operator may drain it too), so a contributor cannot take over an operator's
/// engine by registering its name. Stored, so the binding outlasts the coordinator's restart.
public struct EngineBinding: Sendable, Equatable {
    public var engine: String
    public var contributor: ContributorID
    public var boundAt: Date
}

extension Store {
    /// Binds the engine name `engine` to `contributor` unless it is bound already. Returns the binding the name has
    /// afterwards: `contributor`'s, or the one it had (the caller compares).
    ///
    /// - Throws: ``StoreError/contributorNotFound(_:)``, ``StoreError/invalidJob(_:)`` for a name that is not 1 to
    ///   200 bytes.
    @discardableResult
    public func bindEngine(named engine: String, to contributor: ContributorID, now: Date = Date()) throws -> EngineBinding {
        guard !engine.isEmpty, engine.utf8.count <= 200 else { throw StoreError.invalidJob("engine names are 1 to 200 bytes") }
        return try write { db in
            try Self.requireContributor(db, contributor)
            try db.execute(
                sql: "INSERT INTO engine_binding (engine, contributor_id, bound_at) VALUES (?, ?, ?) ON CONFLICT (engine) DO NOTHING",
                arguments: [engine, contributor, now.millis])
            return try Self.fetchEngineBinding(db, engine)!
        }
    }

    /// The credential the engine name `engine` is bound to, if any engine registered under it.
    public func engineBinding(named engine: String) throws -> EngineBinding? {
        try read { db in try Self.fetchEngineBinding(db, engine) }
    }

    static func fetchEngineBinding(_ db: Database, _ engine: String) throws -> EngineBinding? {
        try Row.fetchOne(db, sql: "SELECT * FROM engine_binding WHERE engine = ?", arguments: [engine]).map { row in
            EngineBinding(engine: row["engine"], contributor: row["contributor_id"], boundAt: Date(millis: row["bound_at"]))
        }
    }
}
