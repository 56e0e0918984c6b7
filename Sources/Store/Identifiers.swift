import Foundation
import GRDB

/// What a ``StoreID`` identifies; names the kind in error messages.
public protocol StoreIDKind {
    /// A lower-case noun, e.g. `"contributor"`.
    static var noun: String { get }
}

/// A typed row identifier: a contributor id cannot be passed where a record id is expected.
///
/// Ids are SQLite `INTEGER PRIMARY KEY AUTOINCREMENT` values: positive, never reused.
public struct StoreID<Kind: StoreIDKind>: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    CustomStringConvertible
{
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ rawValue: Int64) { self.rawValue = rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "\(Kind.noun) \(rawValue)" }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension StoreID: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { rawValue.databaseValue }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Self? {
        guard let raw = Int64.fromDatabaseValue(dbValue) else { return nil }
        return Self(rawValue: raw)
    }
}

public enum ContributorKind: StoreIDKind { public static let noun = "contributor" }
public enum DatanetKind: StoreIDKind { public static let noun = "datanet" }
public enum RecordKind: StoreIDKind { public static let noun = "record" }
public enum AdapterKind: StoreIDKind { public static let noun = "adapter" }
public enum InferenceKind: StoreIDKind { public static let noun = "inference" }

public typealias ContributorID = StoreID<ContributorKind>
public typealias DatanetID = StoreID<DatanetKind>
public typealias RecordID = StoreID<RecordKind>
public typealias AdapterID = StoreID<AdapterKind>
public typealias InferenceID = StoreID<InferenceKind>

/// A published datanet version: the datanet and the version number (1, 2, ...). There is no "latest":
/// whatever trains or is exported names its version.
public struct DatanetVersionRef: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var datanet: DatanetID
    public var number: Int
    public init(datanet: DatanetID, number: Int) {
        self.datanet = datanet
        self.number = number
    }
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.datanet, lhs.number) < (rhs.datanet, rhs.number)
    }
    public var description: String { "\(datanet) version \(number)" }
}
