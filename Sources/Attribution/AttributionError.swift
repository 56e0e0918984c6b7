/// What attribution cannot do, naming the file, checkpoint or record at fault.
public enum AttributionError: Error, Equatable, CustomStringConvertible {
    case invalidProjection(String)
    /// A folder that is not a usable adapter or checkpoint.
    case invalidAdapter(path: String, message: String)
    /// An index that cannot be read or written.
    case invalidIndex(path: String, message: String)
    /// An adapter or checkpoint other than the one the index was computed from.
    case adapterMismatch(path: String, message: String)
    case duplicateRecord(id: String)

    public var description: String {
        switch self {
        case .invalidProjection(let message): "invalid projection: \(message)"
        case .invalidAdapter(let path, let message): "\(path): \(message)"
        case .invalidIndex(let path, let message): "gradient index \(path): \(message)"
        case .adapterMismatch(let path, let message): "\(path): \(message)"
        case .duplicateRecord(let id): "record \"\(id)\" is already in the index"
        }
    }
}
