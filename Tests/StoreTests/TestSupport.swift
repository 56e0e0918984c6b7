import Foundation
import GRDB
import Testing

@testable import Store

/// A fresh directory under the system's temporary directory, removed when released.
final class TemporaryDirectory: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("tributary-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// SplitMix64: a small seeded generator, so that every "random" test is reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A base-model hash for tests.
let baseModelHash = String(repeating: "ab", count: 32)

/// A store with three contributors' approved records in one public datanet, published as version 1, and an
/// adapter trained on it, owned by a fourth contributor.
struct Fixture {
    let directory: TemporaryDirectory
    let store: Store
    /// Owns the datanet.
    let alice: NewContributor
    let bob: NewContributor
    let carol: NewContributor
    /// Owns the adapter.
    let dave: NewContributor
    /// Pays for the fixture's inferences: an operator deposits ``erinFunds`` to her account.
    let erin: NewContributor
    /// An operator, who made erin's deposit.
    let olga: NewContributor
    let datanet: Datanet
    /// Two approved text records each for alice, bob and carol, in that order.
    let records: [DataRecord]
    let version: DatanetVersion
    let adapter: Adapter

    init(configuration: StoreConfiguration = StoreConfiguration(), directory: TemporaryDirectory? = nil) throws {
        let directory = try directory ?? TemporaryDirectory()
        self.directory = directory
        store = try Store(directory: directory.url, configuration: configuration)
        alice = try store.createContributor(displayName: "Alice")
        bob = try store.createContributor(displayName: "Bob")
        carol = try store.createContributor(displayName: "Carol")
        dave = try store.createContributor(displayName: "Dave")
        erin = try store.createContributor(displayName: "Erin")
        olga = try store.createContributor(displayName: "Olga", role: .operator)
        datanet = try store.createDatanet(
            NewDatanet(name: "medical-qa", summary: "Medical questions", description: "Q&A pairs and notes.",
                       tags: ["Medical", "qa"], license: "CC-BY-4.0"),
            owner: alice.contributor.id)
        var records: [DataRecord] = []
        for (who, texts) in [(alice, ["alice one", "alice two"]), (bob, ["bob one", "bob two"]),
                             (carol, ["carol one", "carol two"])] {
            for text in texts {
                let record = try store.contribute(.text(text), to: datanet.id, by: who.contributor.id)
                records.append(try store.approve(record.id, by: alice.contributor.id))
            }
        }
        self.records = records
        version = try store.publishVersion(of: datanet.id, by: alice.contributor.id)
        adapter = try store.registerAdapter(
            NewAdapter(name: "med-lora", baseModelHash: baseModelHash, trainedOn: [version.ref],
                       hyperparameters: ["rank": .int(8), "lr": .double(2e-4)]),
            owner: dave.contributor.id)
        _ = try store.deposit(
            Self.erinFunds, to: erin.contributor.id, by: olga.contributor.id, memo: "fixture", idempotencyKey: "fixture")
    }

    /// Penalises `record` on the fixture's adapter, as its owner (dave) curating against the fixture's version.
    @discardableResult
    func penalize(_ record: RecordID, points: Int = 1, score: Double = -0.5) throws -> RecordPenalty {
        try store.penalize(
            record, adapter: adapter.id, by: dave.contributor.id,
            evidence: PenaltyEvidence(method: "datainf", evaluation: version.ref, score: score), points: points)
    }

    /// Erin's deposit, ledger entry 1: enough for any fee (``MoneyBounds/maximumFee``) many times over.
    static let erinFunds: Int64 = MoneyBounds.maximumDeposit

    /// A paid (or, with fee 0, unpaid) inference erin pays for.
    func inference(_ requestID: String, fee: Int64, shares: [RecordID: Double]) -> NewInference {
        NewInference(
            requestID: requestID, adapter: adapter.id,
            promptOutputHash: InferenceHash.of(prompt: "p \(requestID)", output: "o \(requestID)"),
            method: "datainf", fee: fee, recordShares: shares, payer: erin.contributor.id)
    }
}

extension InferenceReceipt {
    /// The entries that split the fee: all but the payer's fee payment.
    var credits: [LedgerEntry] { entries.filter { !$0.kind.isDebit } }
}

extension Store {
    /// Every row of every table, in a stable order: two equal dumps mean nothing changed.
    func dump() throws -> String {
        try dbPool.read { db in
            var out = ""
            let tables = try String.fetchAll(
                db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            for table in tables {
                out += "## \(table)\n"
                let columns = try db.columns(in: table).count
                let order = (1...columns).map(String.init).joined(separator: ", ")
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table.quotedDatabaseIdentifier) ORDER BY \(order)") {
                    out += "\(row)\n"
                }
            }
            return out
        }
    }

    /// Runs raw SQL on the writer connection (for tests of the SQL-level guards).
    func executeRaw(_ sql: String) throws {
        try dbPool.write { db in try db.execute(sql: sql) }
    }
}

/// Expects `body` to throw exactly `expected`, and the store to be unchanged afterwards.
func expectRefusal(
    _ store: Store, _ expected: StoreError, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) throws {
    let before = try store.dump()
    #expect(throws: expected, sourceLocation: sourceLocation) { try body() }
    let after = try store.dump()
    #expect(before == after, "a refused call changed the store", sourceLocation: sourceLocation)
}

/// The path of an executable built next to the test bundle.
func builtExecutable(_ name: String) -> URL {
    let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = argv0.deletingLastPathComponent()
    // On Linux the test binary sits in .build/<config>/; an .xctest bundle on macOS sits one level deeper.
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return argv0.deletingLastPathComponent().appendingPathComponent(name)
}

/// A child process whose stdout is read line by line.
final class ChildProcess {
    let process = Process()
    private let stdoutPipe = Pipe()
    private var buffer = Data()
    private(set) var lines: [String] = []
    private(set) var reachedEOF = false
    let stderrURL: URL

    init(executable: URL, arguments: [String], stderrTo url: URL) throws {
        stderrURL = url
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = stdoutPipe
        process.standardError = try FileHandle(forWritingTo: url)
        try process.run()
        try? stdoutPipe.fileHandleForWriting.close()
    }

    /// Reads until at least `count` lines have arrived in total, or end of file.
    func readLines(atLeast count: Int) {
        while lines.count < count && !reachedEOF { readChunk() }
    }

    /// Reads everything left, up to end of file.
    func readToEnd() {
        while !reachedEOF { readChunk() }
    }

    private func readChunk() {
        let chunk = stdoutPipe.fileHandleForReading.availableData
        if chunk.isEmpty {
            reachedEOF = true
        } else {
            buffer.append(chunk)
        }
        while let newline = buffer.firstIndex(of: 0x0A) {
            lines.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
            buffer.removeSubrange(buffer.startIndex...newline)
        }
        // A partial last line is never an acknowledgement: it stays in the buffer.
    }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
    }

    func wait() { process.waitUntilExit() }

    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
}
