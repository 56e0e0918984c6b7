import WireProtocol

extension FixedWidthInteger {
    /// `value`, a field a client sent, as this type; out of its range it is the client's error, never a trap:
    /// `Int64(wire: job, field: "job")` throws `invalid_argument` for a u64 job id at or above 2^63.
    public init(wire value: some BinaryInteger, field: String) throws(RequestFailure) {
        guard let converted = Self(exactly: value) else {
            throw RequestFailure(.invalidArgument, "\(field) \(value) is out of range (\(Self.min) to \(Self.max))")
        }
        self = converted
    }
}
