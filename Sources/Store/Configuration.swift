/// How a ``Store`` behaves. The defaults are the documented ones (docs/STORE.md).
public struct StoreConfiguration: Sendable, Equatable {
    /// The largest record accepted, in bytes of UTF-8 as submitted (text, or prompt plus completion).
    /// Default 64 KiB.
    public var maxRecordBytes: Int = 64 * 1024

    /// How each paid inference's fee is split. Default 70% contributors, 20% adapter owner, 10% protocol.
    public var feePolicy: FeePolicy = .default

    /// When flagged contributors' shares are reduced, and by how much. Default: above 3 points, halved.
    public var penaltyPolicy: PenaltyPolicy = .default

    /// How long a write waits for another process's write transaction before failing with `SQLITE_BUSY`,
    /// in seconds. Default 30.
    public var busyTimeout: Double = 30

    /// The most reader connections the pool opens. Default 5.
    public var maximumReaderCount: Int = 5

    public init() {}

    func validate() throws {
        guard maxRecordBytes >= 1 else {
            throw StoreError.invalidConfiguration("maxRecordBytes must be at least 1, not \(maxRecordBytes)")
        }
        guard busyTimeout.isFinite, busyTimeout >= 0 else {
            throw StoreError.invalidConfiguration("busyTimeout must be a non-negative number of seconds")
        }
        guard maximumReaderCount >= 1 else {
            throw StoreError.invalidConfiguration("maximumReaderCount must be at least 1")
        }
        try feePolicy.validate()
        try penaltyPolicy.validate()
    }
}
