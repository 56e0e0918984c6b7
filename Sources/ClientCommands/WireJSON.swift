import Foundation
import WireProtocol

/// Catalogue values as JSON, spelled as protocol/vectors spells them: snake_case field names, enums by
/// name, bytes as lowercase hex, unions as `{"arm": NAME, ...fields}`, absent optionals as null. Derived
/// from the generated types by reflection, so a field added to the catalogue appears without code here.
public enum WireJSON {
    /// `value` (a `Wire.*` value, an array of them, or a plain number, string or bool) as a JSON-serialisable object.
    public static func object(_ value: Any) -> Any {
        // An empty array of any element type casts to [UInt8]: only a real byte array is hex.
        if type(of: value) == [UInt8].self, let bytes = value as? [UInt8] { return hexString(bytes) }
        switch value {
        case let string as String: return string
        case let bool as Bool: return bool
        case let float as Float: return Double("\(float)") ?? Double(float)
        case let double as Double: return double
        case let number as Int64: return number
        case let number as UInt64: return number
        case let number as UInt32: return number
        case let number as UInt16: return number
        case let number as Int: return number
        case let dictionary as [String: Any]: return dictionary.mapValues(object)
        default: break
        }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            return mirror.children.first.map { object($0.value) } ?? NSNull()
        case .collection:
            return mirror.children.map { object($0.value) }
        case .enum:
            // A catalogue enum has no payload; a union's arm carries its struct.
            guard let arm = mirror.children.first else { return snakeCase("\(value)") }
            var fields = object(arm.value) as? [String: Any] ?? [:]
            fields["arm"] = snakeCase(arm.label ?? "")
            return fields
        default:
            var fields: [String: Any] = [:]
            for child in mirror.children {
                if let label = child.label { fields[snakeCase(label)] = object(child.value) }
            }
            return fields
        }
    }

    /// One line of JSON: `value`'s fields, with `extra` fields added (e.g. `"type"` for a stream's events).
    public static func line(_ value: Any, adding extra: [String: Any] = [:]) -> String {
        var json = object(value)
        if !extra.isEmpty, var fields = json as? [String: Any] {
            fields.merge(extra) { _, new in new }
            json = fields
        }
        let data = (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// A stream's frame as one JSON line, its message type under `"type"` (e.g. `"infer_end"`).
    public static func event(_ message: Message) -> String {
        let payload = Mirror(reflecting: message).children.first?.value ?? [String: Any]()
        return line(payload, adding: ["type": snakeCase("\(message.type)")])
    }
}

extension WireEnum {
    /// The catalogue's name of this value (`stop_token`, `datainf`).
    public var catalogueName: String { snakeCase("\(self)") }

    /// The value with catalogue name `name`, or nil.
    public init?(catalogueName name: String) {
        guard let value = Self.allCases.first(where: { $0.catalogueName == name }) else { return nil }
        self = value
    }

    /// Every value's catalogue name, for help and error messages.
    public static var catalogueNames: [String] { allCases.map(\.catalogueName) }
}
