import Foundation
import GRDB
import Testing

@testable import Store

/// docs/STORE.md, next to this package's Sources and Tests.
let storeDocURL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("docs/STORE.md")

let python3 = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite("docs/STORE.md")
struct DocumentationTests {
    /// The verification script exactly as the document gives it.
    static func script() throws -> String {
        let doc = try String(contentsOf: storeDocURL, encoding: .utf8)
        let begin = try #require(doc.range(of: "<!-- verify_ledger.py: begin -->\n```python\n"))
        let end = try #require(doc.range(of: "```\n<!-- verify_ledger.py: end -->"))
        return String(doc[begin.upperBound..<end.lowerBound])
    }

    static func run(_ script: URL, _ argument: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python3!)
        process.arguments = [script.path, argument]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(.enabled(if: python3 != nil, "needs python3"))
    func theByHandVerificationScriptAgreesWithTheStore() throws {
        var config = StoreConfiguration()
        config.penaltyPolicy = PenaltyPolicy(thresholdPoints: 0, keepBasisPoints: 2500)
        let f = try Fixture(configuration: config)
        try f.penalize(f.records[2].id)
        for i in 0..<12 {
            _ = try f.store.recordInference(
                f.inference("doc-\(i)", fee: 1_000_003 * Int64(i + 1), shares: [f.records[i % 6].id: 1, f.records[(i + 2) % 6].id: 0.5]))
        }
        let script = f.directory.url.appendingPathComponent("verify_ledger.py")
        try Self.script().write(to: script, atomically: true, encoding: .utf8)
        let head = try #require(try f.store.ledgerHead())

        let intact = try Self.run(script, f.directory.url.path)
        #expect(intact.status == 0, "\(intact.output)")
        #expect(intact.output == "ledger intact: \(head.seq) entries, head \(head.seq):\(head.hash.hex)\n")

        // Tampered: an amount edited behind the triggers' back.
        try f.store.executeRaw("DROP TRIGGER ledger_entry_no_update")
        try f.store.executeRaw("UPDATE ledger_entry SET amount = amount - 1 WHERE seq = 7")
        let tampered = try Self.run(script, f.store.databasePath)
        #expect(tampered.status == 1)
        #expect(tampered.output == "entry 7: hash does not match its content (the entry was altered)\n")
        #expect(try f.store.verifyLedger().firstBreak == .hashMismatch(seq: 7))
    }

    @Test func theDocumentedDefaultsAreTheCodesDefaults() throws {
        let doc = try String(contentsOf: storeDocURL, encoding: .utf8)
        let config = StoreConfiguration()
        #expect(config.maxRecordBytes == 65_536 && doc.contains("65 536 (64 KiB)"))
        #expect(config.feePolicy == FeePolicy(contributorsBasisPoints: 7000, ownerBasisPoints: 2000, protocolBasisPoints: 1000))
        #expect(doc.contains("70% (7000 bp) to the data contributors"))
        #expect(config.penaltyPolicy == PenaltyPolicy(thresholdPoints: 3, keepBasisPoints: 5000))
        #expect(doc.contains("strictly above the threshold, 3 points by default"))
        #expect(config.busyTimeout == 30)
    }
}
