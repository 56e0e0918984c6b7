import Store

extension JobSpecification {
    /// Refuses a job its submitter may not run (docs/SECURITY.md): training reads every version, index and
    /// evaluate act on an adapter the submitter owns (or any, for an operator). The coordinator checks this at
    /// submit; an engine checks it again before the job touches a file, since access may have been revoked since.
    ///
    /// - Throws: ``StoreError/datanetNotReadable(datanet:contributor:)``,
    ///   ``StoreError/notAdapterOwner(adapter:contributor:)``, not-found errors.
    public func requireAccess(in store: Store, by submitter: ContributorID) throws {
        switch self {
        case .train(let train):
            try store.requireReadable(train.versions, by: submitter)
        case .index(let index):
            try store.requireAdapterControl(index.adapter, by: submitter)
        case .retrain(let retrain):
            try store.requireAdapterControl(retrain.plan.adapter, by: submitter)
            try store.requireReadable(retrain.plan.training.versions, by: submitter)
        case .evaluate(let evaluate):
            try store.requireAdapterControl(evaluate.plan.adapter, by: submitter)
            try store.requireReadable(evaluate.plan.training.versions + [evaluate.plan.evaluation], by: submitter)
        }
    }
}
