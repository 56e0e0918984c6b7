/// Every way the store refuses an input. A refused call changes nothing: each mutating method runs in one
/// SQLite transaction, and the error rolls it back.
///
/// SQLite and I/O failures are not wrapped; they surface as GRDB's `DatabaseError` (for example `SQLITE_BUSY`
/// when another process holds the write lock longer than ``StoreConfiguration/busyTimeout``).
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    // Opening
    case invalidConfiguration(String)
    /// The database was written by a newer Tributary, with migrations this build does not know.
    case schemaTooNew(unknownMigrations: [String])

    // Contributors
    case contributorNotFound(ContributorID)
    case invalidDisplayName(String)
    /// The token is malformed, unknown, or was rotated away.
    case invalidToken

    // Datanets
    case datanetNotFound(String)
    case datanetNameTaken(String)
    case invalidDatanetName(String, reason: String)
    case invalidDatanetField(field: String, reason: String)
    case notDatanetOwner(datanet: DatanetID, contributor: ContributorID)
    /// A private datanet accepts contributions from its owner only.
    case contributionNotPermitted(datanet: DatanetID, contributor: ContributorID)
    /// A private datanet that neither belongs to the contributor nor was granted to them.
    case datanetNotReadable(datanet: DatanetID, contributor: ContributorID)

    // Records
    case recordNotFound(RecordID)
    case recordTooLarge(bytes: Int, limit: Int)
    /// The bytes of `field` are not valid UTF-8; `byteOffset` is where the first invalid sequence starts.
    case invalidUTF8(field: String, byteOffset: Int)
    /// `field` contains U+0000, which the store does not accept (it is the content hash's separator).
    case containsNUL(field: String)
    /// `field` is empty once normalised (only white space).
    case emptyRecord(field: String)
    /// The normalised content is already in the datanet, as `existing`, first contributed by `contributor`.
    case duplicateRecord(existing: RecordID, contributor: ContributorID, status: RecordStatus)
    /// Records are reviewed once: approval and rejection are final.
    case recordAlreadyReviewed(RecordID, status: RecordStatus)
    case recordAlreadyFlagged(RecordID)
    case invalidFlag(String)

    // Versions
    case versionNotFound(DatanetVersionRef)
    /// Publishing needs at least one approved record.
    case nothingToPublish(DatanetID)

    // Adapters
    case adapterNotFound(AdapterID)
    case notAdapterOwner(adapter: AdapterID, contributor: ContributorID)
    case invalidAdapter(String)
    case checkpointExists(adapter: AdapterID, step: Int64)
    case metricExists(adapter: AdapterID, step: Int64, name: String)

    // Inferences and the ledger
    case inferenceNotFound(String)
    case duplicateRequest(String)
    case invalidInference(String)
    /// Attribution shares must be finite, non-negative, on known records, with a positive sum.
    case invalidShares(String)
    /// Attribution named a record that is in none of the datanet versions the adapter was trained on.
    case recordNotInTrainingData(record: RecordID, adapter: AdapterID)
    /// A fee is 0 to ``MoneyBounds/maximumFee`` micro-units.
    case invalidFee(Int64)
    case invalidPolicy(String)

    // Accounts
    /// Only operators credit accounts (docs/SECURITY.md): `contributor` is not one.
    case notOperator(ContributorID)
    /// A deposit's amount is outside 1 to ``MoneyBounds/maximumDeposit``, or its memo or key is malformed.
    case invalidDeposit(String)
    /// The deposit would take the sum of all deposits past ``MoneyBounds/maximumTotalDeposits``.
    case depositLimitReached(total: Int64, amount: Int64)
    /// The payer's balance does not cover the fee; nothing was generated, recorded or charged.
    case insufficientFunds(payer: ContributorID, balance: Int64, fee: Int64)
    /// An idempotency key already names a different request of the same payer (or operator).
    case idempotencyKeyReused(key: String, reason: String)

    // Jobs
    case jobNotFound(JobID)
    case invalidJob(String)
    /// Only a queued job whose backoff has passed can start.
    case jobNotRunnable(JobID, state: JobState)
    /// The attempt this report names is no longer the job's running attempt.
    case staleJobLease(job: JobID, attempt: Int, engine: String)
    case notJobOwner(job: JobID, contributor: ContributorID)
    case jobAlreadyFinished(JobID, state: JobState)

    /// A stored value the store cannot read (for example an unknown status), which only an edit outside the
    /// store can produce. ``Store/audit()`` and ``Store/verifyLedger(anchors:)`` report such damage in detail.
    case corruptRow(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let why): "invalid store configuration: \(why)"
        case .schemaTooNew(let ids):
            "the database was written by a newer Tributary (unknown migrations: \(ids.joined(separator: ", ")))"
        case .contributorNotFound(let id): "unknown \(id)"
        case .invalidDisplayName(let why): "invalid display name: \(why)"
        case .invalidToken: "invalid API token"
        case .datanetNotFound(let name): "unknown datanet \(name)"
        case .datanetNameTaken(let name): "a datanet named \"\(name)\" already exists"
        case .invalidDatanetName(let name, let why): "invalid datanet name \"\(name)\": \(why)"
        case .invalidDatanetField(let field, let why): "invalid datanet \(field): \(why)"
        case .notDatanetOwner(let datanet, let contributor): "\(contributor) is not the owner of \(datanet)"
        case .contributionNotPermitted(let datanet, let contributor):
            "\(datanet) is private: only its owner may contribute, not \(contributor)"
        case .datanetNotReadable(let datanet, let contributor):
            "\(datanet) is private and \(contributor) may not read it: its owner grants read access"
        case .recordNotFound(let id): "unknown \(id)"
        case .recordTooLarge(let bytes, let limit): "record is \(bytes) bytes, over the limit of \(limit) bytes"
        case .invalidUTF8(let field, let offset): "\(field) is not valid UTF-8 (first bad byte at offset \(offset))"
        case .containsNUL(let field): "\(field) contains a NUL character (U+0000)"
        case .emptyRecord(let field): "\(field) is empty"
        case .duplicateRecord(let existing, let contributor, let status):
            "duplicate content: already in the datanet as \(existing) (\(status.rawValue)), contributed by \(contributor)"
        case .recordAlreadyReviewed(let id, let status): "\(id) was already reviewed: \(status.rawValue)"
        case .recordAlreadyFlagged(let id): "\(id) is already flagged"
        case .invalidFlag(let why): "invalid flag: \(why)"
        case .versionNotFound(let ref): "\(ref) does not exist"
        case .nothingToPublish(let id): "\(id) has no approved records to publish"
        case .adapterNotFound(let id): "unknown \(id)"
        case .notAdapterOwner(let adapter, let contributor): "\(contributor) is not the owner of \(adapter)"
        case .invalidAdapter(let why): "invalid adapter: \(why)"
        case .checkpointExists(let adapter, let step): "\(adapter) already has a checkpoint at step \(step)"
        case .metricExists(let adapter, let step, let name):
            "\(adapter) already has metric \"\(name)\" at step \(step)"
        case .inferenceNotFound(let what): "unknown inference \(what)"
        case .duplicateRequest(let id): "inference request \"\(id)\" is already recorded"
        case .invalidInference(let why): "invalid inference: \(why)"
        case .invalidShares(let why): "invalid attribution shares: \(why)"
        case .recordNotInTrainingData(let record, let adapter):
            "\(record) is not in any datanet version \(adapter) was trained on"
        case .invalidFee(let fee):
            "invalid fee \(fee): fees are integers from 0 to \(MoneyBounds.maximumFee) micro-units"
        case .notOperator(let id): "\(id) is not an operator: only operators may credit accounts"
        case .invalidDeposit(let why): "invalid deposit: \(why)"
        case .depositLimitReached(let total, let amount):
            "deposit refused: deposits total \(total), and \(amount) more would pass the limit of "
                + "\(MoneyBounds.maximumTotalDeposits) micro-units"
        case .insufficientFunds(let payer, let balance, let fee): "insufficient funds: balance \(balance), fee \(fee) (\(payer))"
        case .idempotencyKeyReused(let key, let reason): "idempotency key \"\(key)\" was already used: \(reason)"
        case .invalidPolicy(let why): "invalid policy: \(why)"
        case .jobNotFound(let id): "unknown \(id)"
        case .invalidJob(let why): "invalid job: \(why)"
        case .jobNotRunnable(let id, let state): "\(id) cannot start: it is \(state.rawValue) or waiting out its backoff"
        case .staleJobLease(let job, let attempt, let engine):
            "attempt \(attempt) of \(job) on engine \(engine) is no longer running"
        case .notJobOwner(let job, let contributor): "\(contributor) did not submit \(job)"
        case .jobAlreadyFinished(let id, let state): "\(id) already finished: \(state.rawValue)"
        case .corruptRow(let what): "corrupt database row: \(what)"
        }
    }
}
