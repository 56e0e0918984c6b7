import Crypto
import Foundation
import GRDB

/// Someone who contributes data, owns datanets or adapters, and earns from the ledger.
public struct Contributor: Hashable, Sendable {
    public var id: ContributorID
    public var displayName: String
    public var role: ContributorRole
    public var createdAt: Date
}

/// What a contributor may do beyond their own objects (docs/SECURITY.md). Set only by whoever holds the data
/// directory (`tributary-engine contributor add --role`), never over the wire.
public enum ContributorRole: String, Sendable, Hashable, Codable, CaseIterable {
    /// Owns what they create: datanets, records, adapters, jobs.
    case contributor
    /// Holds the data directory: credits accounts, issues engine credentials, and may act on any object.
    case `operator`
    /// An engine's credential: registers, heartbeats and drains the engines bound to it.
    case engine
}

/// A newly created contributor and their API token. The token is shown once: the store keeps only its
/// SHA-256 hash.
public struct NewContributor: Sendable {
    public var contributor: Contributor
    public var token: String
}

/// API tokens: `trb_` followed by 43 base64url characters (32 random bytes). The store keeps
/// SHA-256(UTF-8 of the whole token).
public enum APIToken {
    public static let prefix = "trb_"
    static let randomByteCount = 32

    /// A fresh token from the system's cryptographically secure generator.
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: randomByteCount)
        for i in bytes.indices { bytes[i] = generator.next() }
        return prefix + base64URL(bytes)
    }

    /// SHA-256 of the token's UTF-8 bytes: what the store keeps.
    public static func hash(_ token: String) -> Data {
        Data(SHA256.hash(data: Data(token.utf8)))
    }

    /// Whether `token` has the shape of a token (prefix and 43 base64url characters).
    static func isWellFormed(_ token: String) -> Bool {
        let utf8 = Array(token.utf8)
        guard utf8.count == prefix.utf8.count + 43, token.hasPrefix(prefix) else { return false }
        return utf8.dropFirst(prefix.utf8.count).allSatisfy { byte in
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x5F
        }
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// Compares two byte strings in time that depends only on their lengths.
func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

extension Store {
    /// Creates a contributor and returns them with their API token, which is not stored and cannot be
    /// recovered (only rotated).
    ///
    /// - Throws: ``StoreError/invalidDisplayName(_:)`` when the name is empty, longer than 100 characters, or
    ///   contains control characters.
    public func createContributor(displayName: String, role: ContributorRole = .contributor) throws -> NewContributor {
        let name = try Validation.displayName(displayName)
        let token = APIToken.generate()
        let now = nowMillis()
        let id = try write { db in
            try db.execute(
                sql: "INSERT INTO contributor (display_name, token_hash, role, created_at) VALUES (?, ?, ?, ?)",
                arguments: [name, APIToken.hash(token), role.rawValue, now])
            return ContributorID(db.lastInsertedRowID)
        }
        return NewContributor(
            contributor: Contributor(id: id, displayName: name, role: role, createdAt: Date(millis: now)), token: token)
    }

    /// The contributor's role. - Throws: ``StoreError/contributorNotFound(_:)``.
    public func role(of id: ContributorID) throws -> ContributorRole {
        try read { db in try Self.fetchContributor(db, id).role }
    }

    /// Whether the contributor is an operator; false for an unknown id.
    public func isOperator(_ id: ContributorID?) throws -> Bool {
        guard let id else { return false }
        return try read { db in
            try String.fetchOne(db, sql: "SELECT role FROM contributor WHERE id = ?", arguments: [id])
                == ContributorRole.operator.rawValue
        }
    }

    /// Gives a contributor another role (whoever holds the data directory).
    public func setRole(_ role: ContributorRole, for id: ContributorID) throws -> Contributor {
        try write { db in
            _ = try Self.fetchContributor(db, id)
            try db.execute(sql: "UPDATE contributor SET role = ? WHERE id = ?", arguments: [role.rawValue, id])
            return try Self.fetchContributor(db, id)
        }
    }

    /// The contributor with this id. - Throws: ``StoreError/contributorNotFound(_:)``.
    public func contributor(_ id: ContributorID) throws -> Contributor {
        try read { db in try Self.fetchContributor(db, id) }
    }

    /// All contributors, by id.
    public func contributors() throws -> [Contributor] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT id, display_name, role, created_at FROM contributor ORDER BY id")
                .map(Self.contributor(from:))
        }
    }

    /// The contributor holding `token`. The token is hashed and the hash compared in constant time.
    ///
    /// - Throws: ``StoreError/invalidToken`` when the token is malformed, unknown or rotated away.
    public func authenticate(token: String) throws -> Contributor {
        guard APIToken.isWellFormed(token) else { throw StoreError.invalidToken }
        let presented = APIToken.hash(token)
        return try read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT id, display_name, role, created_at, token_hash FROM contributor WHERE token_hash = ?",
                arguments: [presented])
            else { throw StoreError.invalidToken }
            let stored: Data = try row.decode(forColumn: "token_hash")
            guard constantTimeEquals(stored, presented) else { throw StoreError.invalidToken }
            return try Self.contributor(from: row)
        }
    }

    /// Replaces the contributor's token with a new one, returned once; the old token stops working.
    public func rotateToken(for id: ContributorID) throws -> String {
        let token = APIToken.generate()
        try write { db in
            _ = try Self.fetchContributor(db, id)
            try db.execute(
                sql: "UPDATE contributor SET token_hash = ? WHERE id = ?", arguments: [APIToken.hash(token), id])
        }
        return token
    }

    /// Renames a contributor.
    public func setDisplayName(_ displayName: String, for id: ContributorID) throws -> Contributor {
        let name = try Validation.displayName(displayName)
        return try write { db in
            _ = try Self.fetchContributor(db, id)
            try db.execute(sql: "UPDATE contributor SET display_name = ? WHERE id = ?", arguments: [name, id])
            return try Self.fetchContributor(db, id)
        }
    }

    static func fetchContributor(_ db: Database, _ id: ContributorID) throws -> Contributor {
        guard let row = try Row.fetchOne(
            db, sql: "SELECT id, display_name, role, created_at FROM contributor WHERE id = ?", arguments: [id])
        else { throw StoreError.contributorNotFound(id) }
        return try contributor(from: row)
    }

    static func requireContributor(_ db: Database, _ id: ContributorID) throws {
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM contributor WHERE id = ?", arguments: [id]) != nil else {
            throw StoreError.contributorNotFound(id)
        }
    }

    static func contributor(from row: Row) throws -> Contributor {
        let roleName: String = try row.decode(forColumn: "role")
        guard let role = ContributorRole(rawValue: roleName) else {
            throw StoreError.corruptRow("contributor role \"\(roleName)\" is unknown")
        }
        return Contributor(
            id: try row.decode(forColumn: "id"),
            displayName: try row.decode(forColumn: "display_name"),
            role: role,
            createdAt: Date(millis: try row.decode(forColumn: "created_at")))
    }
}
