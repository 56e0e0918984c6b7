import ProtocolServer
import Store
import WireProtocol

/// The one place that decides whether a caller may send a request: the request type's ``AccessRule``, checked
/// against the objects the request names, before the request reads or changes anything. Blocking (it reads the
/// store): run it where the store runs, never on an event loop.
public struct Authorizer: Sendable {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    /// Refuses `request` unless `caller` (nil: anonymous) may send it.
    ///
    /// - Throws: ``RequestFailure`` with `unauthenticated` for an anonymous caller where a contributor is needed,
    ///   `permission_denied` for a contributor the rule does not admit, `not_found` for an object that does not
    ///   exist, `invalid_message` for a message that is not a request.
    public func authorize(_ request: Message, caller: ContributorID?) throws {
        guard let rule = AccessRule.rule(for: request.type) else {
            throw RequestFailure(.invalidMessage, "\(request.type) is not a request")
        }
        switch (rule, request) {
        case (.anyone, _):
            return
        case (.anyonePaidByCaller, .infer(let infer)):
            if infer.fee != 0 { _ = try contributor(caller, "a paid inference is charged to its caller") }
        case (.contributor, _):
            _ = try contributor(caller, "\(request.type) needs a contributor")
        case (.datanetReader, .export(let export)):
            try requireReader(DatanetID(export.version.datanet), caller)
        case (.datanetReader, .recordList(let list)):
            try requireReader(DatanetID(list.datanet), caller)
        case (.datanetContributor, .contribute(let contribute)):
            let id = try contributor(caller, "contributing needs a contributor")
            let datanet = try store.datanet(DatanetID(contribute.datanet))
            guard datanet.isPublic || datanet.owner == id else {
                throw StoreError.contributionNotPermitted(datanet: datanet.id, contributor: id)
            }
        case (.datanetOwner, .review(let review)):
            let id = try contributor(caller, "reviewing needs the datanet's owner")
            let datanet = try store.datanet(try store.record(RecordID(review.record)).datanet)
            guard datanet.owner == id else { throw StoreError.notDatanetOwner(datanet: datanet.id, contributor: id) }
        case (.datanetOwner, .publish(let publish)):
            let id = try contributor(caller, "publishing needs the datanet's owner")
            let datanet = try store.datanet(DatanetID(publish.datanet))
            guard datanet.owner == id else { throw StoreError.notDatanetOwner(datanet: datanet.id, contributor: id) }
        case (.datanetOwnerOrOperator, .datanetGrant(let grant)):
            let id = try contributor(caller, "granting needs the datanet's owner")
            try store.requireDatanetControl(DatanetID(grant.datanet), by: id)
        case (.adapterOwner, .adapterLoad(let load)):
            try store.requireAdapterControl(AdapterID(load.adapter), by: try contributor(caller, "loading an adapter needs its owner"))
        case (.adapterOwner, .adapterUnload(let unload)):
            try store.requireAdapterControl(
                AdapterID(unload.adapter), by: try contributor(caller, "unloading an adapter needs its owner"))
        case (.adapterSteward, .curate(let curate)):
            let id = try contributor(caller, "curating needs the adapter's owner or a datanet owner")
            try store.requireCurationStake(AdapterID(curate.adapter), by: id)
            try store.requireReadable([DatanetVersionRef(curate.evaluation)], by: id)
        case (.jobContents, .jobSubmit(let submit)):
            let id = try contributor(caller, "submitting a job needs a contributor")
            switch submit.spec {
            case .train(let train):
                try store.requireReadable(train.versions.map(DatanetVersionRef.init), by: id)
            case .index(let index):
                try store.requireAdapterControl(AdapterID(index.adapter), by: id)
            case .evaluate(let evaluate):
                try store.requireAdapterControl(AdapterID(evaluate.adapter), by: id)
                try store.requireReadable(
                    store.adapter(AdapterID(evaluate.adapter)).trainedOn + [DatanetVersionRef(evaluate.version)], by: id)
            }
        case (.jobViewer, .jobStatus(let status)):
            try requireJob(status.job, caller, orItsEngine: true)
        case (.jobViewer, .jobEvents(let events)):
            try requireJob(events.job, caller, orItsEngine: true)
        case (.jobSubmitter, .jobCancel(let cancel)):
            try requireJob(cancel.job, caller, orItsEngine: false)
        case (.engineCredential, _):
            let id = try contributor(caller, "\(request.type) needs an engine credential")
            guard try [.engine, .operator].contains(store.role(of: id)) else {
                throw RequestFailure(
                    .permissionDenied,
                    "\(request.type) needs an engine credential: an operator issues one with `tributary-engine contributor add --role engine`")
            }
        case (.operator, _):
            let id = try contributor(caller, "\(request.type) needs an operator")
            guard try store.isOperator(id) else { throw RequestFailure(.permissionDenied, "\(request.type) needs an operator: \(id) is not one") }
        default:
            throw RequestFailure(.internal, "no access check for \(request.type) under the rule \"\(rule.rawValue)\"")
        }
    }

    private func contributor(_ caller: ContributorID?, _ why: String) throws -> ContributorID {
        guard let caller else {
            throw RequestFailure(.unauthenticated, "\(why): connect with a contributor token (TRIBUTARY_TOKEN)")
        }
        return caller
    }

    private func requireReader(_ datanet: DatanetID, _ caller: ContributorID?) throws {
        guard try store.canRead(datanet, by: caller) else {
            guard let caller else {
                throw RequestFailure(.unauthenticated, "\(datanet) is private: connect with a token its owner granted")
            }
            throw StoreError.datanetNotReadable(datanet: datanet, contributor: caller)
        }
    }

    /// The job's submitter or an operator; with `orItsEngine`, also the engine credential the job's (last) attempt
    /// runs under. Job ids are sequential, so refusing with `permission_denied` hides nothing `not_found` would.
    private func requireJob(_ job: UInt64, _ caller: ContributorID?, orItsEngine: Bool) throws {
        let id = try contributor(caller, "jobs are shown to their submitter")
        let job = try store.job(JobID(try Int64(wire: job, field: "job")))
        if try job.submittedBy == id || store.isOperator(id) { return }
        if orItsEngine, let engine = job.engine, try store.engineBinding(named: engine)?.contributor == id { return }
        throw StoreError.notJobOwner(job: job.id, contributor: id)
    }
}

extension DatanetVersionRef {
    init(_ wire: Wire.VersionRef) {
        self.init(datanet: DatanetID(wire.datanet), number: Int(wire.number))
    }
}
