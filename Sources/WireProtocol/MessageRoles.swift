extension MessageType {
    /// The coordinator's requests (PROTOCOL.md, "Jobs" and "Coordinator"): an engine refuses them, and the
    /// coordinator refuses every other request, with `failed_precondition`, before anything else is checked.
    public var isCoordinatorRequest: Bool {
        switch self {
        case .jobSubmit, .jobStatus, .jobEvents, .jobCancel, .engineRegister, .engineHeartbeat, .engineList, .engineDrain: true
        default: false
        }
    }
}

extension Wire.JobSpec {
    /// An evaluation is planned by the coordinator from the store; the other kinds are queued as sent.
    public var isEvaluation: Bool {
        if case .evaluate = self { true } else { false }
    }
}
