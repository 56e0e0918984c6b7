import WireProtocol

extension Wire.VersionRef {
    /// Parses `DATANET:VERSION` (e.g. `4:2`), as train and curate take datanet versions.
    public init(parsing text: String) throws(ClientFailure) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let datanet = Int64(parts[0]), datanet > 0, let number = UInt32(parts[1]), number > 0 else {
            throw ClientFailure(.usage, "\"\(text)\" is not DATANET:VERSION (e.g. 4:1: datanet 4, version 1)")
        }
        self.init(datanet: datanet, number: number)
    }
}

/// A catalogue enum's value from its name, or a usage failure listing the names.
public func catalogueValue<Value: WireEnum>(_ name: String, of _: Value.Type, option: String) throws(ClientFailure) -> Value {
    guard let value = Value(catalogueName: name) else {
        throw ClientFailure(.usage, "\(option): \"\(name)\" is not one of \(Value.catalogueNames.joined(separator: ", "))")
    }
    return value
}
