import Foundation
import Testing
import Tokenizers
import Training
import TensorCore
@testable import SampleCorpus

@Suite struct SampleCorpusTests {
    let corpus = SampleCorpus(seed: 11)
    let classifier = DomainClassifier()

    @Test func sameSeedSameDocumentsAndSeedsDiffer() {
        for domain in CorpusDomain.allCases {
            #expect(corpus.document(domain, index: 3) == SampleCorpus(seed: 11).document(domain, index: 3))
            #expect(corpus.document(domain, index: 3) != SampleCorpus(seed: 12).document(domain, index: 3))
            #expect(corpus.document(domain, index: 3) != corpus.document(domain, index: 4))
        }
    }

    @Test func everyDomainHasItsOwnSignatureWords() {
        for domain in CorpusDomain.allCases {
            #expect(classifier.keywords[domain]!.count >= 40, "\(domain): \(classifier.keywords[domain]!.count) signature words")
            for other in CorpusDomain.allCases where other != domain {
                #expect(classifier.keywords[domain]!.isDisjoint(with: classifier.keywords[other]!))
            }
        }
    }

    /// Each domain's documents are recognised as that domain, clearly, and vary from one to the next.
    @Test func classifierRecognisesEveryDomain() {
        for domain in CorpusDomain.allCases {
            let documents = (0..<50).map { corpus.document(domain, index: $0) }
            for text in documents {
                #expect(classifier.classify(text) == domain, "\(domain): \(text)")
                #expect(classifier.scores(text)[domain]! >= 0.8, "\(domain): \(classifier.scores(text))")
            }
            // Varied: no two documents alike, and openings varied (forecasts open formulaically, as real ones do).
            #expect(Set(documents).count == documents.count)
            let openings = documents.map { $0.split(separator: "\n").prefix(2).joined(separator: "\n") }
            #expect(Set(openings).count >= 40, "\(domain): \(Set(openings).count) distinct openings of 50")
        }
    }

    /// The base model's corpus is this generator's output: a change to any template changes
    /// models/tributary-base's training data, so it must come with a new pretraining run.
    @Test func builtInCorpusIsUnchanged() {
        let stream = SampleCorpus(seed: PretrainingRecipe.builtIn.corpusSeed).documents(count: 400).map(\.text).joined(separator: "\u{0}")
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
        for byte in stream.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        #expect(String(hash, radix: 16) == "3c28585c6ac6f155")
    }

    @Test func classifierAbstainsOnTextWithoutSignatureWords() {
        #expect(classifier.classify("the and with from") == nil)
        #expect(classifier.scores("").values.allSatisfy { $0 == 0 })
    }

    @Test func documentsInterleaveTheDomains() {
        let documents = corpus.documents(count: 8)
        #expect(documents.map(\.domain) == CorpusDomain.allCases + CorpusDomain.allCases)
        #expect(documents[5].text == corpus.document(CorpusDomain.allCases[1], index: 1))
    }

    /// The JSON Lines records read back through the training-record reader unchanged.
    @Test func recordsReadBackAsTrainingRecords() throws {
        let records = corpus.records(.football, count: 5, contributor: "carol", firstIndex: 10)
        #expect(records.map(\.id) == (10..<15).map { "football-\($0)" })
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("records-\(UUID().uuidString).jsonl").path
        try SampleRecord.jsonLines(records).write(toFile: path, atomically: true, encoding: .utf8)
        let tokenizer = try ByteTokenizer(vocabularySize: 264)
        let read = try readTrainingRecords(path: path, vocabularySize: 264, encode: tokenizer.encode)
        #expect(read.map(\.id) == records.map(\.id))
        #expect(read.allSatisfy { $0.contributor == "carol" })
        #expect(read.map { tokenizer.decode($0.sequence.tokens) } == records.map(\.text))
    }

    /// Records are whole leading lines of their document, within the byte limit, still recognisable.
    @Test func recordsFitTheirByteLimit() {
        for domain in CorpusDomain.allCases {
            for record in corpus.records(domain, count: 20, contributor: "x", maxBytes: 250) {
                let document = corpus.document(domain, index: Int(record.id.split(separator: "-").last!)!)
                #expect(record.text.utf8.count <= 250 && record.text.utf8.count >= 60, "\(record.text)")
                #expect(document.hasPrefix(record.text))
                #expect(classifier.classify(record.text) == domain, "\(record.text)")
            }
        }
        #expect(SampleCorpus.excerpt("abcdef\ngh", maxBytes: 4) == "abcd")
        #expect(SampleCorpus.excerpt("ab\ncd\nef", maxBytes: 5) == "ab\ncd")
    }

    /// Damaged text keeps every word but loses their order, the same way for the same seed.
    @Test func shuffledWordsKeepTheWordsInAnotherOrder() {
        let text = corpus.records(.recipes, count: 1, contributor: "x")[0].text
        var first = SeededRandom(seed: 3)
        var again = SeededRandom(seed: 3)
        let damaged = Damage.shuffledWords(text, &first)
        #expect(damaged == Damage.shuffledWords(text, &again))
        #expect(damaged != text)
        #expect(damaged.split(separator: " ").sorted() == text.split(separator: " ").sorted())
    }
}
