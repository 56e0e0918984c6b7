import Foundation
import GRDB

/// Tributary's embedded store: contributors, datanets and their records, the adapter registry, inference
/// and attribution records, and the hash-chained reward ledger, in one SQLite database (WAL mode) inside a
/// data directory.
///
/// Every mutating method is one IMMEDIATE transaction, durable when it returns (`synchronous = FULL`): a write
/// that returned is never lost, even if the process is killed or the machine loses power right after. A method
/// that throws has changed nothing. Methods are synchronous and thread-safe; call them from any thread or task,
/// or through ``perform(_:)`` to keep them off Swift's cooperative threads. Several processes may open the same
/// directory: SQLite serialises their writes, waiting up to ``StoreConfiguration/busyTimeout``.
///
/// The store does no networking and no authorisation beyond what its methods state (ownership checks for
/// approvals, publishing and adapter updates, privacy for contributions). Callers authenticate a request's
/// contributor with ``authenticate(token:)`` first.
public final class Store: Sendable {
    /// The file name of the database inside the data directory.
    public static let databaseFileName = "tributary.sqlite"

    /// The data directory.
    public let directory: URL
    /// The SQLite database file.
    public var databasePath: String { directory.appendingPathComponent(Self.databaseFileName).path }
    public let configuration: StoreConfiguration

    let dbPool: DatabasePool

    /// Opens the store in `directory`, creating the directory and the database if needed, and migrating the
    /// schema to the latest version this build knows.
    ///
    /// - Throws: ``StoreError/schemaTooNew(unknownMigrations:)`` if a newer Tributary wrote the database;
    ///   ``StoreError/invalidConfiguration(_:)``; `DatabaseError` or a file-system error otherwise.
    public init(directory: URL, configuration: StoreConfiguration = StoreConfiguration()) throws {
        try configuration.validate()
        self.directory = directory
        self.configuration = configuration
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(configuration.busyTimeout)
        config.maximumReaderCount = configuration.maximumReaderCount
        config.label = "Tributary.Store"
        config.prepareDatabase { db in
            // The schema's `IS NOT` comparisons and triggers rely on these being the SQLite defaults; be explicit.
            try db.execute(sql: "PRAGMA recursive_triggers = OFF")
        }
        let path = directory.appendingPathComponent(Self.databaseFileName).path
        let pool = try DatabasePool(path: path, configuration: config)
        // GRDB sets `synchronous = NORMAL` when it enables WAL. NORMAL survives a process crash but may lose the
        // last commits on power loss; FULL syncs the WAL at every commit, so an acknowledged write is durable.
        // Only the single writer connection writes, so setting it there covers every commit of this process.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }

        let migrator = Schema.migrator
        let (version, applied) = try pool.read { db in
            (try String.fetchOne(db, sql: "SELECT sqlite_version()") ?? "", try migrator.appliedIdentifiers(db))
        }
        let parts = version.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2, (parts[0], parts[1]) >= (3, 37) else {
            throw StoreError.invalidConfiguration("SQLite 3.37 or later is required (STRICT tables); found \(version)")
        }
        let unknown = applied.subtracting(Schema.knownMigrations)
        if !unknown.isEmpty {
            throw StoreError.schemaTooNew(unknownMigrations: unknown.sorted())
        }
        try migrator.migrate(pool)
        self.dbPool = pool
    }

    /// The identifiers of the applied schema migrations, in order.
    public func appliedMigrations() throws -> [String] {
        try dbPool.read { db in
            let applied = try Schema.migrator.appliedIdentifiers(db)
            return Schema.knownMigrations.filter(applied.contains)
        }
    }

    /// Folds the write-ahead log into the database file and truncates it (`PRAGMA wal_checkpoint(TRUNCATE)`).
    /// Not needed for durability; useful before copying the database file.
    public func checkpoint() throws {
        try dbPool.writeWithoutTransaction { db in
            _ = try db.checkpoint(.truncate)
        }
    }

    /// Closes the database connections. Later calls fail. Closing is optional: connections also close when the
    /// store is released.
    public func close() throws {
        try dbPool.close()
    }

    /// Runs `body` on a dispatch queue and returns its result, so that async code (a server's request handler)
    /// does not block a cooperative thread while SQLite waits on the disk or on another process's lock.
    public func perform<T: Sendable>(_ body: @escaping @Sendable (Store) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try body(self) })
            }
        }
    }

    // MARK: - Internals

    /// Runs `updates` in one IMMEDIATE write transaction.
    func write<T>(_ updates: (Database) throws -> T) throws -> T {
        try dbPool.write(updates)
    }

    /// Runs `value` in one read transaction (a consistent snapshot).
    func read<T>(_ value: (Database) throws -> T) throws -> T {
        try dbPool.read(value)
    }
}

/// Milliseconds since 1970, the store's clock.
@inline(__always)
func nowMillis() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}

extension Date {
    init(millis: Int64) { self.init(timeIntervalSince1970: Double(millis) / 1000) }
    var millis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
}
