import TributaryClient
import WireProtocol

/// One connection to an engine or the coordinator, whose requests return typed replies and whose every
/// failure is a `ClientFailure` that says what went wrong and what to do.
public struct ClientSession: Sendable {
    public let role: ServerRole
    public let address: ServerAddress
    public let connection: TributaryConnection
    let hadToken: Bool

    public static func connect(to role: ServerRole, settings: ClientSettings) async throws(ClientFailure) -> ClientSession {
        let address = settings.address(of: role)
        do {
            let connection = try await TributaryConnection.connect(
                host: address.host, port: address.port, token: settings.token, clientName: "tributary")
            return ClientSession(role: role, address: address, connection: connection, hadToken: !settings.token.isEmpty)
        } catch {
            throw ClientFailure.explaining(error, role: role, address: address, hadToken: !settings.token.isEmpty)
        }
    }

    public func close() async { await connection.close() }

    /// Connects to `role`, runs `body` and closes the connection, whether `body` succeeds or not.
    public static func with<T>(
        _ role: ServerRole, _ settings: ClientSettings, _ body: (ClientSession) async throws(ClientFailure) -> T
    ) async throws(ClientFailure) -> T {
        let session = try await connect(to: role, settings: settings)
        let outcome: Result<T, ClientFailure>
        do throws(ClientFailure) { outcome = .success(try await body(session)) } catch { outcome = .failure(error) }
        await session.close()
        return try outcome.get()
    }

    /// Runs `body`, explaining any error it throws as this session's failure.
    public func explained<T>(_ body: () async throws -> T) async throws(ClientFailure) -> T {
        do { return try await body() } catch { throw failure(error) }
    }

    public func failure(_ error: any Error) -> ClientFailure {
        ClientFailure.explaining(error, role: role, address: address, hadToken: hadToken)
    }

    /// Sends `request` and returns its one reply, which `reply` must recognise.
    public func call<Reply>(_ request: Message, _ reply: (Message) -> Reply?) async throws(ClientFailure) -> Reply {
        let message = try await explained { try await connection.call(request) }
        guard let typed = reply(message) else { throw unexpected(message, answering: request.type) }
        return typed
    }

    /// Sends `request` and returns its reply frames as they arrive, errors explained.
    public func stream(_ request: Message) async throws(ClientFailure) -> ReplyStream {
        try await explained { try await connection.stream(request) }
    }

    /// The next frame of `replies`, errors explained; nil after the final one.
    public func next(_ replies: inout ReplyStream.AsyncIterator) async throws(ClientFailure) -> Message? {
        do { return try await replies.next() } catch { throw failure(error) }
    }

    public func unexpected(_ message: Message, answering request: MessageType) -> ClientFailure {
        ClientFailure(.protocolError, "\(role.name) at \(address) answered \(request) with \(message.type)")
    }
}

// MARK: - Typed requests, one per catalogue request with a single reply.

extension ClientSession {
    public func signUp(name: String) async throws(ClientFailure) -> Wire.SignedUp {
        try await call(.signUp(Wire.SignUp(displayName: name))) { if case .signedUp(let r) = $0 { r } else { nil } }
    }

    public func createDatanet(_ request: Wire.DatanetCreate) async throws(ClientFailure) -> Wire.Datanet {
        try await call(.datanetCreate(request)) { if case .datanetInfo(let r) = $0 { r.datanet } else { nil } }
    }

    public func datanets(id: Int64? = nil, owner: Int64? = nil) async throws(ClientFailure) -> [Wire.DatanetSummary] {
        try await call(.datanetList(Wire.DatanetList(datanet: id, owner: owner))) {
            if case .datanetListing(let r) = $0 { r.datanets } else { nil }
        }
    }

    public func contribute(_ content: Wire.RecordContent, to datanet: Int64) async throws(ClientFailure) -> Wire.Record {
        try await call(.contribute(Wire.Contribute(datanet: datanet, content: content))) {
            if case .recordInfo(let r) = $0 { r.record } else { nil }
        }
    }

    /// One page of a datanet's records with ids after `after`.
    public func records(
        of datanet: Int64, status: Wire.RecordStatus?, after: Int64 = 0, limit: UInt32 = 1000
    ) async throws(ClientFailure) -> [Wire.Record] {
        try await call(.recordList(Wire.RecordList(datanet: datanet, status: status, after: after, limit: limit))) {
            if case .recordListing(let r) = $0 { r.records } else { nil }
        }
    }

    /// Every record of a datanet (of one status), page by page.
    public func allRecords(of datanet: Int64, status: Wire.RecordStatus?) async throws(ClientFailure) -> [Wire.Record] {
        var all: [Wire.Record] = []
        while true {
            let page = try await records(of: datanet, status: status, after: all.last?.id ?? 0)
            all += page
            if page.count < 1000 { return all }
        }
    }

    public func review(_ record: Int64, _ decision: Wire.ReviewDecision, note: String?) async throws(ClientFailure) -> Wire.Record {
        try await call(.review(Wire.Review(record: record, decision: decision, note: note))) {
            if case .recordInfo(let r) = $0 { r.record } else { nil }
        }
    }

    /// What became of one record of a batch review.
    public struct ReviewOutcome: Sendable {
        public var record: Int64
        public var result: Result<Wire.Record, ClientFailure>
    }

    /// Reviews `records`, then every pending record of `datanet` if given, one by one, handing each outcome
    /// to `onOutcome`. A record the server refuses (already reviewed, not found) is an outcome; anything
    /// else (a lost connection, not the owner) stops the batch and is thrown.
    public func review(
        _ records: [Int64], allPendingOf datanet: Int64? = nil, _ decision: Wire.ReviewDecision, note: String?,
        onOutcome: (ReviewOutcome) -> Void = { _ in }
    ) async throws(ClientFailure) -> [ReviewOutcome] {
        var all = records
        if let datanet { all += try await allRecords(of: datanet, status: .pending).map(\.id) }
        var outcomes: [ReviewOutcome] = []
        for record in all {
            let result: Result<Wire.Record, ClientFailure>
            do throws(ClientFailure) { result = .success(try await review(record, decision, note: note)) } catch {
                guard error.kind == .refused else { throw error }
                result = .failure(error)
            }
            outcomes.append(ReviewOutcome(record: record, result: result))
            onOutcome(outcomes[outcomes.count - 1])
        }
        return outcomes
    }

    public func publish(_ datanet: Int64) async throws(ClientFailure) -> Wire.DatanetVersion {
        try await call(.publish(Wire.Publish(datanet: datanet))) { if case .versionInfo(let r) = $0 { r.version } else { nil } }
    }

    public func submitJob(_ spec: Wire.JobSpec) async throws(ClientFailure) -> Wire.Job {
        try await call(.jobSubmit(Wire.JobSubmit(spec: spec))) { if case .jobInfo(let r) = $0 { r.job } else { nil } }
    }

    public func job(_ id: UInt64) async throws(ClientFailure) -> Wire.Job {
        try await call(.jobStatus(Wire.JobStatus(job: id))) { if case .jobInfo(let r) = $0 { r.job } else { nil } }
    }

    public func cancelJob(_ id: UInt64) async throws(ClientFailure) -> Wire.Job {
        try await call(.jobCancel(Wire.JobCancel(job: id))) { if case .jobInfo(let r) = $0 { r.job } else { nil } }
    }

    public func engines() async throws(ClientFailure) -> [Wire.EngineEntry] {
        try await call(.engineList(Wire.EngineList())) { if case .engineListing(let r) = $0 { r.engines } else { nil } }
    }

    /// Drains the engine (`draining` false: takes it back into dispatch); returns it as the coordinator now sees it.
    public func drainEngine(_ name: String, draining: Bool) async throws(ClientFailure) -> Wire.EngineEntry {
        try await call(.engineDrain(Wire.EngineDrain(name: name, drain: draining))) {
            if case .engineListing(let r) = $0, r.engines.count == 1 { r.engines[0] } else { nil }
        }
    }

    public func adapters(owner: Int64?) async throws(ClientFailure) -> [Wire.Adapter] {
        try await call(.adapterList(Wire.AdapterList(owner: owner))) { if case .adapterListing(let r) = $0 { r.adapters } else { nil } }
    }

    public func loadAdapter(_ id: Int64) async throws(ClientFailure) -> Wire.AdapterState {
        try await call(.adapterLoad(Wire.AdapterLoad(adapter: id))) { if case .adapterState(let r) = $0 { r } else { nil } }
    }

    public func unloadAdapter(_ id: Int64) async throws(ClientFailure) -> Wire.AdapterState {
        try await call(.adapterUnload(Wire.AdapterUnload(adapter: id))) { if case .adapterState(let r) = $0 { r } else { nil } }
    }

    public func attribute(_ request: Wire.Attribute) async throws(ClientFailure) -> Wire.Attribution {
        try await call(.attribute(request)) { if case .attribution(let r) = $0 { r } else { nil } }
    }

    public func curate(_ request: Wire.Curate) async throws(ClientFailure) -> Wire.CurationReport {
        try await call(.curate(request)) { if case .curationReport(let r) = $0 { r } else { nil } }
    }

    public func penalties(contributor: Int64?, adapter: Int64?) async throws(ClientFailure) -> [Wire.Penalty] {
        try await call(.penaltyList(Wire.PenaltyList(contributor: contributor, adapter: adapter))) {
            if case .penaltyListing(let r) = $0 { r.penalties } else { nil }
        }
    }

    public func grantRead(on datanet: Int64, to grantee: Int64, granting: Bool) async throws(ClientFailure) -> Wire.DatanetGrants {
        try await call(.datanetGrant(Wire.DatanetGrant(datanet: datanet, grantee: grantee, grant: granting))) {
            if case .datanetGrants(let r) = $0 { r } else { nil }
        }
    }

    public func balances(contributor: Int64?) async throws(ClientFailure) -> [Wire.Balance] {
        try await call(.ledgerBalances(Wire.LedgerBalances(contributor: contributor))) {
            if case .balances(let r) = $0 { r.balances } else { nil }
        }
    }

    public func ledgerEntries(after: Int64, limit: UInt32, inference: Int64?) async throws(ClientFailure) -> [Wire.LedgerEntry] {
        try await call(.ledgerEntries(Wire.LedgerEntries(afterSeq: after, limit: limit, inference: inference))) {
            if case .ledgerPage(let r) = $0 { r.entries } else { nil }
        }
    }

    public func verifyLedger(anchors: [Wire.LedgerHead] = []) async throws(ClientFailure) -> Wire.LedgerVerification {
        try await call(.ledgerVerify(Wire.LedgerVerify(anchors: anchors))) { if case .ledgerVerification(let r) = $0 { r } else { nil } }
    }

    public func deposit(_ request: Wire.Deposit) async throws(ClientFailure) -> Wire.Deposited {
        try await call(.deposit(request)) { if case .deposited(let r) = $0 { r } else { nil } }
    }

    public func health() async throws(ClientFailure) -> Wire.HealthStatus {
        try await call(.health(Wire.Health())) { if case .healthStatus(let r) = $0 { r } else { nil } }
    }

    public func stats() async throws(ClientFailure) -> Wire.StatsReport {
        try await call(.stats(Wire.Stats())) { if case .statsReport(let r) = $0 { r } else { nil } }
    }
}
