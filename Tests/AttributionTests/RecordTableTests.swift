import Foundation
import Testing
import Training
@testable import Attribution

/// The record table's datanet fields, from the optional JSON Lines fields `datanet` and `datanet_version`.
@Suite struct RecordTableTests {
    func read(_ lines: [String]) throws -> [TrainingRecord] {
        let path = try temporaryFolder() + "/records.jsonl"
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return try readTrainingRecords(path: path, vocabularySize: 300) { $0.utf8.map(Int.init) }
    }

    @Test func datanetFieldsAreReadAndOptional() throws {
        let records = try read([
            #"{"id": "a", "contributor": "alice", "text": "hello", "datanet": "recipes", "datanet_version": 3}"#,
            #"{"id": "b", "contributor": "bob", "prompt": "q", "completion": "an"}"#,
        ])
        #expect(records[0].datanet == "recipes" && records[0].datanetVersion == 3)
        #expect(records[1].datanet == nil && records[1].datanetVersion == nil)
        #expect(IndexedRecord(records[0]).scoredTokens == 4 && IndexedRecord(records[1]).scoredTokens == 2)
    }

    @Test func badDatanetFieldsNameTheLine() throws {
        #expect(throws: TrainingDataError.self) { try read([#"{"id": "a", "contributor": "c", "text": "hi", "datanet": 7}"#]) }
        do {
            _ = try read(["", #"{"id": "a", "contributor": "c", "text": "hi", "datanet_version": 0}"#])
            Issue.record("datanet_version 0 was accepted")
        } catch let error as TrainingDataError {
            #expect(error.line == 2 && error.message == #"record "a": "datanet_version" is not a positive integer"#)
        }
    }
}
