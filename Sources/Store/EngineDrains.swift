import Foundation
import GRDB

/// An engine taken out of dispatch by its operator. It belongs to the engine's name, so it holds when the engine
/// registers again and when the coordinator restarts.
public struct EngineDrain: Sendable, Equatable {
    public var engine: String
    public var drainedBy: ContributorID
    public var drainedAt: Date
}

extension Store {
    /// Records that the engine named `engine` is draining. Draining a drained engine keeps the first drain.
    ///
    /// - Throws: ``StoreError/contributorNotFound(_:)``.
    @discardableResult
    public func drainEngine(named engine: String, by contributor: ContributorID, now: Date = Date()) throws -> EngineDrain {
        try write { db in
            try Self.requireContributor(db, contributor)
            try db.execute(
                sql: "INSERT INTO engine_drain (engine, drained_by, drained_at) VALUES (?, ?, ?) ON CONFLICT (engine) DO NOTHING",
                arguments: [engine, contributor, now.millis])
            return try Self.fetchEngineDrain(db, engine)!
        }
    }

    /// Takes the engine named `engine` back into dispatch. Returns whether it was draining.
    @discardableResult
    public func resumeEngine(named engine: String) throws -> Bool {
        try write { db in
            try db.execute(sql: "DELETE FROM engine_drain WHERE engine = ?", arguments: [engine])
            return db.changesCount > 0
        }
    }

    /// The drain of the engine named `engine`, if it is draining.
    public func engineDrain(named engine: String) throws -> EngineDrain? {
        try read { db in try Self.fetchEngineDrain(db, engine) }
    }

    static func fetchEngineDrain(_ db: Database, _ engine: String) throws -> EngineDrain? {
        try Row.fetchOne(db, sql: "SELECT * FROM engine_drain WHERE engine = ?", arguments: [engine]).map { row in
            EngineDrain(engine: row["engine"], drainedBy: row["drained_by"], drainedAt: Date(millis: row["drained_at"]))
        }
    }
}
