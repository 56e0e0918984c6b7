import Crypto
import Foundation
import GRDB

/// A published, immutable, numbered snapshot of a datanet's approved records.
public struct DatanetVersion: Hashable, Sendable {
    public var ref: DatanetVersionRef
    public var datanet: DatanetID { ref.datanet }
    public var number: Int { ref.number }
    public var recordCount: Int
    /// SHA-256 over `"tributary.version.v1" 0x00`, then for each record in order its id (8 bytes, big-endian)
    /// and its content hash (32 bytes). Names the exact training data.
    public var manifestHash: Data
    public var publishedBy: ContributorID
    public var createdAt: Date
}

extension Store {
    /// Publishes the next version of a datanet: a snapshot of its approved records, ordered by record id,
    /// numbered one more than the last version (the first is 1). Only the owner may publish.
    ///
    /// - Throws: ``StoreError/datanetNotFound(_:)``, ``StoreError/notDatanetOwner(datanet:contributor:)``,
    ///   ``StoreError/nothingToPublish(_:)``.
    public func publishVersion(of datanet: DatanetID, by contributor: ContributorID) throws -> DatanetVersion {
        let now = nowMillis()
        return try write { db in
            let net = try Self.fetchDatanet(db, datanet)
            try Self.requireContributor(db, contributor)
            guard net.owner == contributor else {
                throw StoreError.notDatanetOwner(datanet: datanet, contributor: contributor)
            }
            let rows = try Row.fetchAll(
                db, sql: "SELECT id, content_hash FROM record WHERE datanet_id = ? AND status = 'approved' ORDER BY id",
                arguments: [datanet])
            guard !rows.isEmpty else { throw StoreError.nothingToPublish(datanet) }
            var members: [(RecordID, Data)] = []
            members.reserveCapacity(rows.count)
            for row in rows {
                members.append((try row.decode(forColumn: "id"), try row.decode(forColumn: "content_hash")))
            }
            let number = (try Int.fetchOne(
                db, sql: "SELECT coalesce(max(number), 0) + 1 FROM datanet_version WHERE datanet_id = ?",
                arguments: [datanet])) ?? 1
            try db.execute(
                sql: """
                    INSERT INTO datanet_version (datanet_id, number, record_count, manifest_hash, published_by,
                                                 created_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [datanet, number, members.count, Self.manifestHash(members), contributor, now])
            let versionID = db.lastInsertedRowID
            let insert = try db.makeStatement(
                sql: "INSERT INTO version_record (version_id, position, record_id) VALUES (?, ?, ?)")
            for (position, member) in members.enumerated() {
                try insert.execute(arguments: [versionID, position, member.0])
            }
            return try Self.fetchVersion(db, DatanetVersionRef(datanet: datanet, number: number)).version
        }
    }

    /// A published version. - Throws: ``StoreError/datanetNotFound(_:)``, ``StoreError/versionNotFound(_:)``.
    public func version(_ ref: DatanetVersionRef) throws -> DatanetVersion {
        try read { db in try Self.fetchVersion(db, ref).version }
    }

    /// A datanet's versions, oldest first.
    public func versions(of datanet: DatanetID) throws -> [DatanetVersion] {
        try read { db in
            _ = try Self.fetchDatanet(db, datanet)
            let numbers = try Int.fetchAll(
                db, sql: "SELECT number FROM datanet_version WHERE datanet_id = ? ORDER BY number",
                arguments: [datanet])
            return try numbers.map { try Self.fetchVersion(db, DatanetVersionRef(datanet: datanet, number: $0)).version }
        }
    }

    /// The records of a version, in order.
    public func recordIDs(in ref: DatanetVersionRef) throws -> [RecordID] {
        try read { db in
            let (versionID, _) = try Self.fetchVersion(db, ref)
            return try RecordID.fetchAll(
                db, sql: "SELECT record_id FROM version_record WHERE version_id = ? ORDER BY position",
                arguments: [versionID])
        }
    }

    /// The version as JSON Lines, the format training reads: one object per record, in version order, each line
    /// ending in `\n`. Keys, in this order: `id`, `contributor`, `datanet` (name), `datanet_version`, then
    /// `text`, or `prompt` and `completion`. Strings are exactly as contributed. The same version always
    /// exports to the same bytes.
    ///
    /// - Throws: ``StoreError/datanetNotFound(_:)``, ``StoreError/versionNotFound(_:)``.
    public func exportJSONL(_ ref: DatanetVersionRef) throws -> Data {
        var out = Data()
        try exportJSONL(ref) { line in out.append(line) }
        return out
    }

    /// Writes the version's JSON Lines (see ``exportJSONL(_:)``) to `url`, atomically: through a temporary file
    /// in the same directory, synced, then renamed over `url`.
    public func exportJSONL(_ ref: DatanetVersionRef, to url: URL) throws {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            var buffer = Data()
            try exportJSONL(ref) { line in
                buffer.append(line)
                if buffer.count >= 1 << 20 {
                    try handle.write(contentsOf: buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try handle.write(contentsOf: buffer)
            try handle.synchronize()
            guard rename(temporary.path, url.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Streams the version's JSON Lines, one line (with its `\n`) per call, from one consistent snapshot.
    public func exportJSONL(_ ref: DatanetVersionRef, line body: (Data) throws -> Void) throws {
        try read { db in
            let (versionID, version) = try Self.fetchVersion(db, ref)
            let name = try String.fetchOne(db, sql: "SELECT name FROM datanet WHERE id = ?", arguments: [ref.datanet])!
            let cursor = try Row.fetchCursor(
                db,
                sql: """
                    SELECT r.* FROM version_record v JOIN record r ON r.id = v.record_id
                    WHERE v.version_id = ? ORDER BY v.position
                    """,
                arguments: [versionID])
            var json = JSONLineWriter()
            while let row = try cursor.next() {
                json.begin()
                json.field("id", int: try row.decode(forColumn: "id"))
                json.field("contributor", int: try row.decode(forColumn: "contributor_id"))
                json.field("datanet", string: name)
                json.field("datanet_version", int: Int64(version.number))
                switch try Self.content(from: row) {
                case .text(let text):
                    json.field("text", string: text)
                case .pair(let prompt, let completion):
                    json.field("prompt", string: prompt)
                    json.field("completion", string: completion)
                }
                try body(json.end())
            }
        }
    }

    static func fetchVersion(_ db: Database, _ ref: DatanetVersionRef) throws -> (id: Int64, version: DatanetVersion) {
        _ = try fetchDatanet(db, ref.datanet)
        guard let row = try Row.fetchOne(
            db, sql: "SELECT * FROM datanet_version WHERE datanet_id = ? AND number = ?",
            arguments: [ref.datanet, ref.number])
        else { throw StoreError.versionNotFound(ref) }
        return (
            try row.decode(forColumn: "id"),
            DatanetVersion(
                ref: ref,
                recordCount: try row.decode(forColumn: "record_count"),
                manifestHash: try row.decode(forColumn: "manifest_hash"),
                publishedBy: try row.decode(forColumn: "published_by"),
                createdAt: Date(millis: try row.decode(forColumn: "created_at")))
        )
    }

    static func manifestHash(_ members: [(RecordID, Data)]) -> Data {
        var hasher = SHA256()
        hasher.update(data: Array("tributary.version.v1".utf8) + [0])
        for (id, contentHash) in members {
            withUnsafeBytes(of: id.rawValue.bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: contentHash)
        }
        return Data(hasher.finalize())
    }
}

/// Writes one JSON object per line, keys in call order, with a fixed escaping: `"` `\` and the C0 controls are
/// escaped (`\b \f \n \r \t`, others as `\u00XX`); everything else, `/` and non-ASCII included, is written as
/// UTF-8.
struct JSONLineWriter {
    private var bytes: [UInt8] = []
    private var first = true

    mutating func begin() {
        bytes.removeAll(keepingCapacity: true)
        bytes.append(UInt8(ascii: "{"))
        first = true
    }

    mutating func field(_ key: String, int value: Int64) {
        writeKey(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func field(_ key: String, string value: String) {
        writeKey(key)
        appendString(value)
    }

    mutating func end() -> Data {
        bytes.append(UInt8(ascii: "}"))
        bytes.append(UInt8(ascii: "\n"))
        return Data(bytes)
    }

    private mutating func writeKey(_ key: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        appendString(key)
        bytes.append(UInt8(ascii: ":"))
    }

    private mutating func appendString(_ s: String) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x08: bytes.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(b >> 4)])
                bytes.append(hex[Int(b & 0xF)])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
