import Authorization
import Foundation
import ProtocolServer
import Store
import Testing
import WireProtocol

/// Everyone who may call: each test request is tried by all of them.
enum Who: String, CaseIterable, CustomStringConvertible {
    case anonymous, stranger, grantee, datanetOwner, adapterOwner, `operator`, engine
    var description: String { rawValue }
}

/// A store where every relation of docs/SECURITY.md exists once: alice owns a public datanet (version 1, a
/// pending record of bob's) and a private one (version 1) granted to grace; dave owns an adapter trained on
/// the public version and submitted a job; an operator and an engine credential.
struct AccessFixture {
    let directory: URL
    let store: Store
    let ids: [Who: ContributorID]
    let publicDatanet: DatanetID
    let privateDatanet: DatanetID
    let pendingRecord: RecordID
    let adapter: AdapterID
    let job: JobID

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tributary-access-\(UUID().uuidString)")
        store = try Store(directory: directory)
        var ids: [Who: ContributorID] = [:]
        for who in Who.allCases where who != .anonymous {
            let role: ContributorRole = who == .operator ? .operator : who == .engine ? .engine : .contributor
            ids[who] = try store.createContributor(displayName: who.rawValue, role: role).contributor.id
        }
        self.ids = ids
        let alice = ids[.datanetOwner]!, bob = ids[.stranger]!
        publicDatanet = try store.createDatanet(NewDatanet(name: "open", license: "CC-BY-4.0"), owner: alice).id
        privateDatanet = try store.createDatanet(NewDatanet(name: "closed", license: "proprietary", visibility: .private), owner: alice).id
        for (datanet, text) in [(publicDatanet, "open text"), (privateDatanet, "closed text")] {
            let record = try store.contribute(.text(bytes: Array(text.utf8)), to: datanet, by: alice)
            _ = try store.approve(record.id, by: alice)
            _ = try store.publishVersion(of: datanet, by: alice)
        }
        pendingRecord = try store.contribute(.text(bytes: Array("bob's text".utf8)), to: publicDatanet, by: bob).id
        try store.grantRead(on: privateDatanet, to: ids[.grantee]!, by: alice)
        adapter = try store.registerAdapter(
            NewAdapter(name: "open-lora", baseModelHash: String(repeating: "ab", count: 32),
                       trainedOn: [DatanetVersionRef(datanet: publicDatanet, number: 1)], hyperparameters: [:]),
            owner: ids[.adapterOwner]!).id
        job = try store.submitJob(NewJob(kind: .index, specification: Data("{}".utf8)), by: ids[.adapterOwner]!).id
    }

    func caller(_ who: Who) -> ContributorID? { ids[who] }

    /// Requests of every type, each with the callers its rule admits for the objects it names.
    func cases() -> [(request: Message, admitted: Set<Who>)] {
        let everyone = Set(Who.allCases)
        let contributors = everyone.subtracting([.anonymous])
        let privateV1 = Wire.VersionRef(datanet: privateDatanet.rawValue, number: 1)
        let publicV1 = Wire.VersionRef(datanet: publicDatanet.rawValue, number: 1)
        let readers: Set<Who> = [.datanetOwner, .grantee, .operator]
        let adapterControl: Set<Who> = [.adapterOwner, .operator]
        let job = UInt64(self.job.rawValue)
        func infer(fee: Int64) -> Message {
            .infer(Wire.Infer(
                adapter: adapter.rawValue, prompt: "p", maxTokens: 1, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [],
                method: .datainf, topRecords: 1, fee: fee, idempotencyKey: ""))
        }
        func train(_ version: Wire.VersionRef) -> Message {
            .jobSubmit(Wire.JobSubmit(spec: .train(Wire.TrainSpec(
                adapterName: "x", baseModel: "", versions: [version], rank: 4, alpha: 8, targets: [], learningRate: 1e-3,
                steps: 1, epochs: 0, batchSize: 1, sequenceLength: 8, seed: 0, checkpointEvery: 0))))
        }
        return [
            (.health(Wire.Health()), everyone), (.stats(Wire.Stats()), everyone), (.echo(Wire.Echo(payload: [1])), everyone),
            (.signUp(Wire.SignUp(displayName: "new")), everyone),
            (.datanetList(Wire.DatanetList(datanet: nil, owner: nil)), everyone),
            (.adapterList(Wire.AdapterList(owner: nil)), everyone),
            (.attribute(Wire.Attribute(
                target: .inference(Wire.InferenceTarget(requestId: "r")), method: .datainf, topRecords: 1, allScores: false)),
             everyone),
            (.ledgerBalances(Wire.LedgerBalances(contributor: nil)), everyone),
            (.ledgerEntries(Wire.LedgerEntries(afterSeq: 0, limit: 1, inference: nil)), everyone),
            (.ledgerVerify(Wire.LedgerVerify(anchors: [])), everyone),
            (.penaltyList(Wire.PenaltyList(contributor: nil, adapter: nil)), everyone),
            (infer(fee: 0), everyone), (infer(fee: 10), contributors),
            (.datanetCreate(Wire.DatanetCreate(name: "n", summary: "", description: "", tags: [], license: "", visibility: .public)),
             contributors),
            (.engineList(Wire.EngineList()), contributors),
            (.export(Wire.Export(version: privateV1)), readers), (.export(Wire.Export(version: publicV1)), everyone),
            (.recordList(Wire.RecordList(datanet: privateDatanet.rawValue, status: nil, after: 0, limit: 10)), readers),
            (.contribute(Wire.Contribute(datanet: privateDatanet.rawValue, content: .text(Wire.TextRecord(text: Array("t".utf8))))),
             [.datanetOwner]),
            (.contribute(Wire.Contribute(datanet: publicDatanet.rawValue, content: .text(Wire.TextRecord(text: Array("t".utf8))))),
             contributors),
            (.review(Wire.Review(record: pendingRecord.rawValue, decision: .approve, note: nil)), [.datanetOwner]),
            (.publish(Wire.Publish(datanet: privateDatanet.rawValue)), [.datanetOwner]),
            (.datanetGrant(Wire.DatanetGrant(datanet: privateDatanet.rawValue, grantee: ids[.stranger]!.rawValue, grant: true)),
             [.datanetOwner, .operator]),
            (.adapterLoad(Wire.AdapterLoad(adapter: adapter.rawValue)), adapterControl),
            (.adapterUnload(Wire.AdapterUnload(adapter: adapter.rawValue)), adapterControl),
            (.curate(Wire.Curate(adapter: adapter.rawValue, evaluation: publicV1, method: .datainf, maxFlags: 1, points: 1, apply: true)),
             [.adapterOwner, .datanetOwner, .operator]),
            (.curate(Wire.Curate(adapter: adapter.rawValue, evaluation: privateV1, method: .datainf, maxFlags: 1, points: 1, apply: false)),
             [.datanetOwner, .operator]),
            (train(privateV1), readers), (train(publicV1), contributors),
            (.jobSubmit(Wire.JobSubmit(spec: .index(Wire.IndexSpec(adapter: adapter.rawValue, method: .datainf, projectionDim: 0)))),
             adapterControl),
            (.jobSubmit(Wire.JobSubmit(spec: .evaluate(Wire.EvaluateSpec(adapter: adapter.rawValue, version: publicV1)))),
             adapterControl),
            (.jobSubmit(Wire.JobSubmit(spec: .evaluate(Wire.EvaluateSpec(adapter: adapter.rawValue, version: privateV1)))),
             [.operator]),
            (.jobStatus(Wire.JobStatus(job: job)), adapterControl),
            (.jobEvents(Wire.JobEvents(job: job, afterSeq: 0)), adapterControl),
            (.jobCancel(Wire.JobCancel(job: job)), adapterControl),
            (.engineRegister(Wire.EngineRegister(
                name: "e", address: "127.0.0.1:1", computeSlots: 1, memoryBytes: 1, maxAdapters: 1, jobKinds: [.train])),
             [.engine, .operator]),
            (.engineHeartbeat(Wire.EngineHeartbeat(
                engine: 1, jobsRunning: 0, jobsQueued: 0, load: 0, freeMemoryBytes: 0, loadedAdapters: [])),
             [.engine, .operator]),
            (.engineDrain(Wire.EngineDrain(name: "e", drain: true)), [.engine, .operator]),
            (.deposit(Wire.Deposit(contributor: ids[.stranger]!.rawValue, amount: 5, memo: "", idempotencyKey: "k")), [.operator]),
        ]
    }
}

@Suite("Access table (docs/SECURITY.md)")
struct AccessTableTests {
    static let requestTypes = MessageType.allCases.filter { $0.direction == .request }

    @Test func everyRequestOfTheCatalogueHasARule() {
        for type in Self.requestTypes {
            #expect(AccessRule.rule(for: type) != nil, "\(type) has no access rule")
        }
        for type in MessageType.allCases where type.direction != .request {
            #expect(AccessRule.rule(for: type) == nil, "\(type) is not a request but has a rule")
        }
    }

    @Test func everyRequestIsAdmittedExactlyForTheCallersItsRuleNames() throws {
        let fixture = try AccessFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let authorizer = Authorizer(store: fixture.store)
        let cases = fixture.cases()
        #expect(Set(cases.map(\.request.type)) == Set(Self.requestTypes), "a request type has no case in the walk")
        for (request, admitted) in cases {
            for who in Who.allCases {
                do {
                    try authorizer.authorize(request, caller: fixture.caller(who))
                    #expect(admitted.contains(who), "\(who) was admitted to \(request.type): \(request)")
                } catch {
                    let code = RequestFailure(error).code
                    #expect(!admitted.contains(who), "\(who) was refused \(request.type) (\(code)): \(error)")
                    #expect(code == (who == .anonymous ? .unauthenticated : .permissionDenied), "\(who), \(request.type): \(error)")
                }
            }
        }
    }

    @Test func aRefusalChangesNothing() throws {
        let fixture = try AccessFixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let before = try fixture.store.ledgerHead()
        let grantsBefore = try fixture.store.grants(on: fixture.privateDatanet)
        for (request, admitted) in fixture.cases() where !admitted.contains(.stranger) {
            #expect(throws: (any Error).self) { try Authorizer(store: fixture.store).authorize(request, caller: fixture.caller(.stranger)) }
        }
        #expect(try fixture.store.ledgerHead() == before && fixture.store.grants(on: fixture.privateDatanet) == grantsBefore)
    }

    /// docs/SECURITY.md's table names every request with its rule's words, so the document is the code's.
    @Test func theDocumentedTableIsTheCodesTable() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/SECURITY.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        var documented: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2 else { continue }
            documented[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = cells[1]
        }
        for type in Self.requestTypes {
            let name = "\(type)".prefix(1).uppercased() + "\(type)".dropFirst()
            #expect(documented[name] == AccessRule.rule(for: type)?.rawValue, "docs/SECURITY.md row for \(name)")
        }
    }
}
