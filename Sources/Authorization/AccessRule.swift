import WireProtocol

/// Who may send a request: one rule per request of the catalogue, the table of docs/SECURITY.md.
///
/// A rule names the caller's relation to the objects the request names; ``Authorizer`` checks it against the
/// store before the request does anything. The store checks the same relations again where it writes.
public enum AccessRule: String, CaseIterable, Sendable {
    /// Any connection, anonymous included.
    case anyone
    /// Any connection; a fee (`fee` > 0) needs a contributor, who pays it.
    case anyonePaidByCaller = "anyone; a fee needs a contributor"
    /// Any authenticated contributor.
    case contributor
    /// Anyone who may read the datanet: public, its owner, a contributor its owner granted, an operator.
    case datanetReader = "datanet reader"
    /// A contributor, into a public datanet; into a private one, its owner.
    case datanetContributor = "contributor (private datanet: its owner)"
    /// The datanet's owner (of the record's datanet, for a review).
    case datanetOwner = "datanet owner"
    /// The datanet's owner or an operator.
    case datanetOwnerOrOperator = "datanet owner, operator"
    /// The adapter's owner or an operator.
    case adapterOwner = "adapter owner, operator"
    /// The adapter's owner, the owner of a datanet it was trained on, or an operator; who also reads the
    /// evaluation version.
    case adapterSteward = "adapter owner, owner of its training datanets, operator"
    /// Train: a reader of every version. Index and evaluate: the adapter's owner or an operator (evaluate also
    /// reads the evaluation version).
    case jobContents = "reader of the job's data, adapter owner for index and evaluate"
    /// The job's submitter, the engine credential its attempt runs under, or an operator.
    case jobViewer = "job submitter, engine running it, operator"
    /// The job's submitter or an operator.
    case jobSubmitter = "job submitter, operator"
    /// An engine credential (role `engine`) or an operator; the engine's name is bound to the credential that
    /// first registered it.
    case engineCredential = "engine credential, operator"
    /// An operator.
    case `operator`

    /// Whether checking the rule reads the store (so it runs where the store runs, off the event loop).
    public var readsStore: Bool {
        switch self {
        case .anyone, .anyonePaidByCaller, .contributor: false
        default: true
        }
    }

    /// The rule for a request type; nil for a type that is not a request (connection frames, replies, control).
    public static func rule(for type: MessageType) -> AccessRule? {
        switch type {
        case .health, .stats, .echo, .signUp, .datanetList, .adapterList, .attribute, .ledgerBalances, .ledgerEntries,
            .ledgerVerify, .penaltyList:
            .anyone
        case .infer: .anyonePaidByCaller
        case .datanetCreate, .engineList: .contributor
        case .export, .recordList: .datanetReader
        case .contribute: .datanetContributor
        case .review, .publish: .datanetOwner
        case .datanetGrant: .datanetOwnerOrOperator
        case .adapterLoad, .adapterUnload: .adapterOwner
        case .curate: .adapterSteward
        case .jobSubmit: .jobContents
        case .jobStatus, .jobEvents: .jobViewer
        case .jobCancel: .jobSubmitter
        case .engineRegister, .engineHeartbeat, .engineDrain: .engineCredential
        case .deposit: .operator
        default: nil
        }
    }
}
