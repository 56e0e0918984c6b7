extension Wire.JobEventKind {
    /// Done, failed or cancelled: the job's last event (PROTOCOL.md, "Jobs"), sent with FINAL.
    public var isFinal: Bool { self == .done || self == .failed || self == .cancelled }
}
