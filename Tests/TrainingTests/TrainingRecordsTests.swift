import Foundation
import Testing
@testable import Training

@Suite struct TrainingRecordsTests {
    func write(_ lines: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString).jsonl").path
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    let bytes: (String) -> [Int] = { $0.utf8.map(Int.init) }

    @Test func readsEveryFormWithItsLossTokens() throws {
        let path = try write([
            #"{"id": "a", "contributor": "alice", "prompt": "Q:", "completion": "yes"}"#,
            #"{"id": "b", "contributor": "bob", "text": "hello"}"#,
            "",
            #"{"id": 7, "contributor": "carol", "prompt_tokens": [1, 2], "completion_tokens": [3, 255]}"#,
        ])
        let records = try readTrainingRecords(path: path, vocabularySize: 300, encode: bytes)
        #expect(records.map(\.id) == ["a", "b", "7"])
        #expect(records[0].sequence == TrainingSequence(prompt: bytes("Q:"), completion: bytes("yes")))
        #expect(records[1].sequence.labels == bytes("hello"))
        #expect(records[2].sequence.tokens == [1, 2, 3, 255], "pre-tokenized ids verbatim, no BOS or EOS")
        #expect(records[2].sequence.labels == [-100, -100, 3, 255])
        #expect(records[2].contributor == "carol")
    }

    /// Every character of a text is kept, a leading U+FEFF (raw, or escaped) included: Foundation's
    /// JSONSerialization on Linux drops it, so the record would tokenize differently from Hugging Face's.
    @Test func aLeadingByteOrderMarkInATextIsKept() throws {
        let path = try write([
            "{\"id\": \"raw\", \"contributor\": \"a\", \"text\": \"\u{FEFF}hi\"}",
            #"{"id": "escaped", "contributor": "a", "prompt": "\ufeffQ", "completion": "\ufeff"}"#,
        ])
        let records = try readTrainingRecords(path: path, vocabularySize: 300, encode: { $0.unicodeScalars.map { Int($0.value % 300) } })
        #expect(records[0].sequence.tokens == [0xFEFF % 300, Int(UInt8(ascii: "h")), Int(UInt8(ascii: "i"))])
        #expect(records[1].sequence == TrainingSequence(prompt: [0xFEFF % 300, Int(UInt8(ascii: "Q"))], completion: [0xFEFF % 300]))
    }

    @Test(arguments: [
        (#"{"id": "a", "contributor": "x", "text": "hi"}"# + "\nnot json", 2, "not a JSON object"),
        (#"{"id": "a", "contributor": "x", "text": "hi"}"# + "\n" + #"{"id": "a", "contributor": "y", "text": "yo"}"#, 2, "duplicate id \"a\" (first on line 1)"),
        (#"{"id": "a", "contributor": "x", "prompt_tokens": [1], "completion_tokens": [300]}"#, 1, "token 300"),
        (#"{"id": "a", "text": "hi"}"#, 1, "missing \"contributor\""),
        (#"{"id": "a", "contributor": "x", "prompt": "hi"}"#, 1, "needs \"text\""),
        (#"{"id": "a", "contributor": "x", "prompt_tokens": [1, 2.5], "completion_tokens": [3]}"#, 1, "is not an integer"),
    ])
    func badLinesAreNamedNotSkipped(content: String, line: Int, mentions: String) throws {
        let path = try write([content])
        do {
            _ = try readTrainingRecords(path: path, vocabularySize: 300, encode: bytes)
            Issue.record("accepted a bad file")
        } catch {
            #expect(error.line == line && error.path == path)
            #expect(error.description.contains(mentions), "\(error)")
        }
    }
}
