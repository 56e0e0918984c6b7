import Foundation
import GRDB
import Testing

@testable import Store

/// The acknowledgements a crash writer printed.
struct Acknowledgements {
    var inferences: [(requestID: String, fee: Int64, lastSeq: Int64)] = []
    var records: [(id: RecordID, text: String)] = []
    var done = false

    init(_ lines: [String]) {
        for line in lines {
            let parts = line.split(separator: " ").map(String.init)
            switch parts.first {
            case "INF" where parts.count == 4:
                inferences.append((parts[1], Int64(parts[2])!, Int64(parts[3])!))
            case "REC" where parts.count == 4:
                records.append((RecordID(Int64(parts[1])!), "\(parts[2]) burst record \(parts[3])"))
            case "DONE": done = true
            default: Issue.record("unexpected line from the writer: \(line)")
            }
        }
    }

    /// Checks that every acknowledged write is in the store, whole.
    func check(in store: Store, owner: ContributorID) throws {
        for ack in inferences {
            let inference = try store.inference(requestID: ack.requestID)
            #expect(inference.fee == ack.fee)
            let entries = try store.ledgerEntries(for: inference.id)
            #expect(entries.filter { !$0.kind.isDebit }.reduce(0) { $0 + $1.amount } == ack.fee)
            #expect(entries.reduce(0) { $0 + $1.signedAmount } == 0)
            #expect(entries.last?.seq == ack.lastSeq)
        }
        for ack in records {
            let record = try store.record(ack.id)
            #expect(record.content == .text(ack.text))
            #expect(record.contributor == owner)
        }
    }
}

@Suite("Durability and concurrency across processes")
struct ProcessTests {
    let writer = builtExecutable("store-crash-writer")

    func spawn(_ f: Fixture, tag: String, count: Int) throws -> ChildProcess {
        try ChildProcess(
            executable: writer,
            arguments: [
                f.directory.url.path, String(f.adapter.id.rawValue), String(f.datanet.id.rawValue), tag, String(count),
                String(f.erin.contributor.id.rawValue),
            ],
            stderrTo: f.directory.url.appendingPathComponent("\(tag).stderr"))
    }

    @Test func theCrashWriterIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: writer.path), "missing \(writer.path)")
    }

    /// A child writes a burst and is killed with SIGKILL mid-burst, three times at different points, each
    /// time continuing the same store. After each kill the store reopens consistent, every acknowledged write
    /// is there, and the chain verifies.
    @Test func everyAcknowledgedWriteSurvivesSIGKILL() throws {
        let f = try Fixture()
        let owner = f.alice.contributor.id
        try f.store.close()
        var allAcks: [Acknowledgements] = []
        for (round, killAfter) in [11, 24, 37].enumerated() {
            let child = try spawn(f, tag: "crash\(round)", count: 0)
            child.readLines(atLeast: killAfter)
            child.kill()
            child.readToEnd()  // acknowledgements already in the pipe count too
            child.wait()
            #expect(child.process.terminationReason == .uncaughtSignal, "stderr: \(child.stderr)")
            #expect(child.process.terminationStatus == SIGKILL)
            let acks = Acknowledgements(child.lines)
            #expect(!acks.done)
            #expect(acks.inferences.count + acks.records.count >= killAfter)
            allAcks.append(acks)

            let store = try Store(directory: f.directory.url)
            let audit = try store.audit()
            #expect(audit.isConsistent, "\(audit)")
            #expect(audit.ledger.isValid)
            for acks in allAcks { try acks.check(in: store, owner: owner) }
            // Nothing half-written: every inference's entries sum to its fee (the audit checks it), and the chain
            // ends at or after the last acknowledged entry (a write may commit just before its acknowledgement).
            let lastAcked = allAcks.flatMap(\.inferences).map(\.lastSeq).max() ?? 0
            #expect(try store.ledgerHead()!.seq >= lastAcked)
            try store.close()
        }
    }

    /// Three writer processes and this one write to the same store at once.
    @Test func severalProcessesWriteConcurrently() throws {
        let f = try Fixture()
        let owner = f.alice.contributor.id
        let perChild = 12
        let children = try (0..<3).map { try spawn(f, tag: "proc\($0)", count: perChild) }
        // Meanwhile this process writes and reads too.
        for i in 0..<perChild {
            _ = try f.store.recordInference(f.inference("parent-\(i)", fee: 10_000 + Int64(i), shares: [f.records[i % 6].id: 1]))
            #expect(try f.store.verifyLedger().isValid)
        }
        var acks: [Acknowledgements] = []
        for child in children {
            child.readToEnd()
            child.wait()
            #expect(child.process.terminationStatus == 0, "stderr: \(child.stderr)")
            let a = Acknowledgements(child.lines)
            #expect(a.done)
            #expect(a.inferences.count == perChild && a.records.count == perChild)
            acks.append(a)
        }
        for a in acks { try a.check(in: f.store, owner: owner) }
        #expect(try f.store.inferenceCount() == 4 * perChild)
        #expect(try f.store.records(in: f.datanet.id, limit: 10_000).count == f.records.count + 3 * perChild)
        let audit = try f.store.audit()
        #expect(audit.isConsistent, "\(audit)")
        let entries = try f.store.ledgerEntries(limit: 100_000)
        #expect(entries.map(\.seq) == Array(1...Int64(entries.count)))
    }
}

@Suite("Concurrency within a process")
struct ConcurrencyTests {
    @Test func concurrentTasksWriteAndReadConsistently() async throws {
        let f = try Fixture()
        let store = f.store
        let records = f.records.map(\.id)
        let owner = f.alice.contributor.id
        let datanet = f.datanet.id
        let adapter = f.adapter.id
        let payer = f.erin.contributor.id
        let tasks = 8, perTask = 10
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                group.addTask {
                    for i in 0..<perTask {
                        let id = "task\(t)-\(i)"
                        _ = try await store.perform { s in
                            try s.recordInference(NewInference(
                                requestID: id, adapter: adapter, promptOutputHash: InferenceHash.of(prompt: id, output: id),
                                method: "tracin", fee: Int64(1_000 + t * 100 + i), recordShares: [records[(t + i) % 6]: 1, records[(t + i + 1) % 6]: 0.5],
                                payer: payer))
                        }
                        _ = try store.contribute(.text("task \(t) record \(i)"), to: datanet, by: owner)
                    }
                }
            }
            // Readers, while the writers run: every snapshot is a valid chain.
            for _ in 0..<2 {
                group.addTask {
                    for _ in 0..<15 {
                        let verification = try store.verifyLedger()
                        #expect(verification.isValid)
                        let balances = try store.balances()
                        #expect(balances.values.allSatisfy { $0 >= 0 })
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try store.inferenceCount() == tasks * perTask)
        #expect(try store.records(in: datanet, limit: 10_000).count == 6 + tasks * perTask)
        let audit = try store.audit()
        #expect(audit.isConsistent, "\(audit)")
        // Two stores (two connection pools, as two processes would have) writing the same directory.
        let second = try Store(directory: f.directory.url)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, s) in [store, second].enumerated() {
                group.addTask {
                    for i in 0..<10 {
                        _ = try s.recordInference(NewInference(
                            requestID: "pool\(n)-\(i)", adapter: adapter, promptOutputHash: Data(count: 32),
                            method: "tracin", fee: 777, recordShares: [records[i % 6]: 1], payer: payer))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try second.verifyLedger().isValid)
        #expect(try store.inferenceCount() == tasks * perTask + 20)
    }
}
