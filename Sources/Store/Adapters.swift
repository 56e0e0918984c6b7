import Foundation
import GRDB

/// A training hyperparameter's value.
public enum HyperparameterValue: Hashable, Sendable {
    case int(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)
}

/// What registering an adapter takes. Its provenance (base model, training data, hyperparameters) is fixed
/// at registration and never changes.
public struct NewAdapter: Sendable {
    public var name: String
    /// SHA-256 of the base model's content, 64 hex digits.
    public var baseModelHash: String
    /// The exact datanet versions it was trained on; at least one. There is no "latest".
    public var trainedOn: [DatanetVersionRef]
    public var hyperparameters: [String: HyperparameterValue]

    public init(
        name: String, baseModelHash: String, trainedOn: [DatanetVersionRef],
        hyperparameters: [String: HyperparameterValue] = [:]
    ) {
        self.name = name
        self.baseModelHash = baseModelHash
        self.trainedOn = trainedOn
        self.hyperparameters = hyperparameters
    }
}

/// A registered LoRA adapter and its provenance.
public struct Adapter: Hashable, Sendable {
    public var id: AdapterID
    public var name: String
    public var owner: ContributorID
    /// Lower-case hex SHA-256 of the base model.
    public var baseModelHash: String
    /// Sorted by datanet, then number.
    public var trainedOn: [DatanetVersionRef]
    public var hyperparameters: [String: HyperparameterValue]
    /// Where the gradient index built from its training data lives (a path or URL), once built.
    public var gradientIndexLocation: String?
    public var createdAt: Date
}

/// A saved training checkpoint of an adapter.
public struct AdapterCheckpoint: Hashable, Sendable {
    public var adapter: AdapterID
    public var step: Int64
    /// A path or URL.
    public var location: String
    /// Lower-case hex SHA-256 of the checkpoint file.
    public var contentHash: String
    public var createdAt: Date
}

/// One training metric value (loss, learning rate, ...) at one step.
public struct TrainingMetric: Hashable, Sendable {
    public var adapter: AdapterID
    public var step: Int64
    public var name: String
    public var value: Double
    public var createdAt: Date
}

extension Store {
    /// Registers an adapter owned by `owner`, trained on the given datanet versions.
    ///
    /// - Throws: ``StoreError/invalidAdapter(_:)`` (bad name, base-model hash or hyperparameter, no training
    ///   data), ``StoreError/contributorNotFound(_:)``, ``StoreError/datanetNotFound(_:)``,
    ///   ``StoreError/versionNotFound(_:)``, ``StoreError/datanetNotReadable(datanet:contributor:)`` when the owner
    ///   may not read one of the versions.
    public func registerAdapter(_ spec: NewAdapter, owner: ContributorID) throws -> Adapter {
        let name = spec.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 200, !Validation.containsControlCharacters(name) else {
            throw StoreError.invalidAdapter("name must be 1 to 200 characters, without control characters")
        }
        guard let baseModelHash = Validation.sha256Hex(spec.baseModelHash) else {
            throw StoreError.invalidAdapter("base-model hash must be a SHA-256 in 64 hex digits")
        }
        let versions = Array(Set(spec.trainedOn)).sorted()
        guard !versions.isEmpty else { throw StoreError.invalidAdapter("no training data: name its datanet versions") }
        for (key, value) in spec.hyperparameters {
            guard !key.isEmpty, key.utf8.count <= 100, !Validation.containsControlCharacters(key) else {
                throw StoreError.invalidAdapter("hyperparameter name \"\(key)\" must be 1 to 100 bytes")
            }
            switch value {
            case .double(let d) where !d.isFinite:
                throw StoreError.invalidAdapter("hyperparameter \(key) is not finite")
            case .string(let s) where s.utf8.count > 4096 || s.utf8.contains(0):
                throw StoreError.invalidAdapter("hyperparameter \(key) must be at most 4096 bytes, without NUL")
            default: break
            }
        }
        let now = nowMillis()
        return try write { db in
            try Self.requireContributor(db, owner)
            var versionIDs: [Int64] = []
            for ref in versions {
                versionIDs.append(try Self.fetchVersion(db, ref).id)
                // An adapter carries what it was trained on: its owner must be allowed to read it.
                try Self.requireReadable(db, ref.datanet, by: owner)
            }
            try db.execute(
                sql: """
                    INSERT INTO adapter (name, owner_id, base_model_hash, training_version_count, created_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [name, owner, baseModelHash, versionIDs.count, now])
            let id = AdapterID(db.lastInsertedRowID)
            for versionID in versionIDs {
                try db.execute(
                    sql: "INSERT INTO adapter_training_version (adapter_id, version_id) VALUES (?, ?)",
                    arguments: [id, versionID])
            }
            for key in spec.hyperparameters.keys.sorted() {
                let (type, value): (String, any DatabaseValueConvertible) =
                    switch spec.hyperparameters[key]! {
                    case .int(let v): ("int", v)
                    case .double(let v): ("double", v)
                    case .string(let v): ("string", v)
                    case .bool(let v): ("bool", v ? 1 : 0)
                    }
                try db.execute(
                    sql: "INSERT INTO adapter_hyperparameter (adapter_id, name, type, value) VALUES (?, ?, ?, ?)",
                    arguments: [id, key, type, value])
            }
            return try Self.fetchAdapter(db, id)
        }
    }

    /// The adapter with this id. - Throws: ``StoreError/adapterNotFound(_:)``.
    public func adapter(_ id: AdapterID) throws -> Adapter {
        try read { db in try Self.fetchAdapter(db, id) }
    }

    /// All adapters, or those of one owner, by id.
    public func adapters(owner: ContributorID? = nil) throws -> [Adapter] {
        try read { db in
            let ids = try AdapterID.fetchAll(
                db, sql: "SELECT id FROM adapter WHERE ? IS NULL OR owner_id = ? ORDER BY id",
                arguments: [owner, owner])
            return try ids.map { try Self.fetchAdapter(db, $0) }
        }
    }

    /// Records a training checkpoint. Only the adapter's owner may; one checkpoint per step.
    ///
    /// - Throws: ``StoreError/adapterNotFound(_:)``, ``StoreError/notAdapterOwner(adapter:contributor:)``,
    ///   ``StoreError/invalidAdapter(_:)``, ``StoreError/checkpointExists(adapter:step:)``.
    @discardableResult
    public func addCheckpoint(
        to adapter: AdapterID, by contributor: ContributorID, step: Int64, location: String, contentHash: String
    ) throws -> AdapterCheckpoint {
        guard step >= 0 else { throw StoreError.invalidAdapter("checkpoint step must be non-negative") }
        let location = try Self.validLocation(location)
        guard let hash = Validation.sha256Hex(contentHash) else {
            throw StoreError.invalidAdapter("checkpoint hash must be a SHA-256 in 64 hex digits")
        }
        let now = nowMillis()
        return try write { db in
            try Self.requireAdapterOwner(db, adapter, contributor)
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM adapter_checkpoint WHERE adapter_id = ? AND step = ?",
                arguments: [adapter, step]) != nil
            {
                throw StoreError.checkpointExists(adapter: adapter, step: step)
            }
            try db.execute(
                sql: """
                    INSERT INTO adapter_checkpoint (adapter_id, step, location, content_hash, created_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [adapter, step, location, hash, now])
            return AdapterCheckpoint(
                adapter: adapter, step: step, location: location, contentHash: hash, createdAt: Date(millis: now))
        }
    }

    /// The adapter's checkpoints by step.
    public func checkpoints(of adapter: AdapterID) throws -> [AdapterCheckpoint] {
        try read { db in
            _ = try Self.fetchAdapter(db, adapter)
            return try Row.fetchAll(
                db, sql: "SELECT * FROM adapter_checkpoint WHERE adapter_id = ? ORDER BY step", arguments: [adapter]
            ).map { row in
                AdapterCheckpoint(
                    adapter: adapter, step: try row.decode(forColumn: "step"),
                    location: try row.decode(forColumn: "location"),
                    contentHash: try row.decode(forColumn: "content_hash"),
                    createdAt: Date(millis: try row.decode(forColumn: "created_at")))
            }
        }
    }

    /// Records training metrics at one step. Only the adapter's owner may; values must be finite; a metric is
    /// recorded once per step.
    public func recordMetrics(
        for adapter: AdapterID, by contributor: ContributorID, step: Int64, _ metrics: [String: Double]
    ) throws {
        guard step >= 0 else { throw StoreError.invalidAdapter("metric step must be non-negative") }
        for (name, value) in metrics {
            guard !name.isEmpty, name.utf8.count <= 100, !Validation.containsControlCharacters(name) else {
                throw StoreError.invalidAdapter("metric name \"\(name)\" must be 1 to 100 bytes")
            }
            guard value.isFinite else { throw StoreError.invalidAdapter("metric \(name) is not finite") }
        }
        let now = nowMillis()
        try write { db in
            try Self.requireAdapterOwner(db, adapter, contributor)
            for name in metrics.keys.sorted() {
                if try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM adapter_metric WHERE adapter_id = ? AND step = ? AND name = ?",
                    arguments: [adapter, step, name]) != nil
                {
                    throw StoreError.metricExists(adapter: adapter, step: step, name: name)
                }
                try db.execute(
                    sql: "INSERT INTO adapter_metric (adapter_id, step, name, value, created_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [adapter, step, name, metrics[name]!, now])
            }
        }
    }

    /// The adapter's metrics by step, then name; optionally only one metric.
    public func metrics(of adapter: AdapterID, named name: String? = nil) throws -> [TrainingMetric] {
        try read { db in
            _ = try Self.fetchAdapter(db, adapter)
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM adapter_metric WHERE adapter_id = ? AND (? IS NULL OR name = ?)
                    ORDER BY step, name
                    """,
                arguments: [adapter, name, name]
            ).map { row in
                TrainingMetric(
                    adapter: adapter, step: try row.decode(forColumn: "step"), name: try row.decode(forColumn: "name"),
                    value: try row.decode(forColumn: "value"),
                    createdAt: Date(millis: try row.decode(forColumn: "created_at")))
            }
        }
    }

    /// Sets where the adapter's gradient index lives (it is built after training, and may be rebuilt). Only the
    /// owner may.
    @discardableResult
    public func setGradientIndexLocation(_ location: String, for adapter: AdapterID, by contributor: ContributorID)
        throws -> Adapter
    {
        let location = try Self.validLocation(location)
        return try write { db in
            try Self.requireAdapterOwner(db, adapter, contributor)
            try db.execute(
                sql: "UPDATE adapter SET gradient_index_location = ? WHERE id = ?", arguments: [location, adapter])
            return try Self.fetchAdapter(db, adapter)
        }
    }

    static func validLocation(
        _ raw: String, invalid: (String) -> StoreError = StoreError.invalidAdapter
    ) throws -> String {
        let location = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !location.isEmpty, location.utf8.count <= 4096, !Validation.containsControlCharacters(location) else {
            throw invalid("location must be 1 to 4096 bytes, without control characters")
        }
        return location
    }

    static func requireAdapterOwner(_ db: Database, _ adapter: AdapterID, _ contributor: ContributorID) throws {
        let owner = try fetchAdapterOwner(db, adapter)
        try requireContributor(db, contributor)
        guard owner == contributor else { throw StoreError.notAdapterOwner(adapter: adapter, contributor: contributor) }
    }

    static func fetchAdapterOwner(_ db: Database, _ adapter: AdapterID) throws -> ContributorID {
        guard let owner = try ContributorID.fetchOne(
            db, sql: "SELECT owner_id FROM adapter WHERE id = ?", arguments: [adapter])
        else { throw StoreError.adapterNotFound(adapter) }
        return owner
    }

    static func fetchAdapter(_ db: Database, _ id: AdapterID) throws -> Adapter {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM adapter WHERE id = ?", arguments: [id]) else {
            throw StoreError.adapterNotFound(id)
        }
        let trainedOn = try Row.fetchAll(
            db,
            sql: """
                SELECT v.datanet_id, v.number FROM adapter_training_version t
                JOIN datanet_version v ON v.id = t.version_id
                WHERE t.adapter_id = ? ORDER BY v.datanet_id, v.number
                """,
            arguments: [id]
        ).map {
            DatanetVersionRef(datanet: try $0.decode(forColumn: "datanet_id"), number: try $0.decode(forColumn: "number"))
        }
        var hyperparameters: [String: HyperparameterValue] = [:]
        for hp in try Row.fetchAll(
            db, sql: "SELECT name, type, value FROM adapter_hyperparameter WHERE adapter_id = ?", arguments: [id])
        {
            let name: String = try hp.decode(forColumn: "name")
            let type: String = try hp.decode(forColumn: "type")
            hyperparameters[name] =
                switch type {
                case "int": .int(try hp.decode(forColumn: "value"))
                case "double": .double(try hp.decode(forColumn: "value"))
                case "bool": .bool(try hp.decode(Int64.self, forColumn: "value") != 0)
                default: .string(try hp.decode(forColumn: "value"))
                }
        }
        return Adapter(
            id: id, name: try row.decode(forColumn: "name"), owner: try row.decode(forColumn: "owner_id"),
            baseModelHash: try row.decode(forColumn: "base_model_hash"), trainedOn: trainedOn,
            hyperparameters: hyperparameters,
            gradientIndexLocation: try row.decode(forColumn: "gradient_index_location"),
            createdAt: Date(millis: try row.decode(forColumn: "created_at")))
    }
}
