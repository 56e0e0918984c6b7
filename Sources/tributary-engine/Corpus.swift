import ArgumentParser
import Foundation
import SampleCorpus
import TensorCore

struct Corpus: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write generated sample-corpus records of one domain as JSON Lines training records.",
        discussion: """
            Each line is {"contributor", "id", "text"}, as train and datanet import read them; ids are \
            DOMAIN-INDEX. The same seed and indices give the same records on every machine. The \
            built-in base model was pretrained on seed 2026; use another seed for held-out data.
            """)

    @Option(help: "The domain: \(CorpusDomain.allCases.map(\.rawValue).joined(separator: ", ")).") var domain: String
    @Option(help: "Records to write.") var count = 100
    @Option(help: "Index of the first record.") var firstIndex = 0
    @Option(help: "Corpus seed.") var seed: UInt64 = 1
    @Option(help: "The contributor named in every record.") var contributor: String
    @Option(help: "File to write (default: standard output).") var out: String?
    @Flag(help: "Shuffle each record's words (seeded by --seed): damaged records, as curation should flag them.")
    var shuffleWords = false
    @Flag(help: "With --out, print a JSON summary instead of a line of text.") var json = false

    func run() throws {
        guard let chosen = CorpusDomain(rawValue: domain) else {
            throw ValidationError("--domain: \"\(domain)\" is not one of \(CorpusDomain.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard count >= 1, firstIndex >= 0 else { throw ValidationError("--count must be at least 1 and --first-index at least 0") }
        var records = SampleCorpus(seed: seed).records(chosen, count: count, contributor: contributor, firstIndex: firstIndex)
        if shuffleWords {
            var random = SeededRandom(seed: seed ^ 0xDA4A6E)
            for i in records.indices { records[i].text = Damage.shuffledWords(records[i].text, &random) }
        }
        let lines = SampleRecord.jsonLines(records)
        guard let out else {
            FileHandle.standardOutput.write(Data(lines.utf8))
            return
        }
        do { try lines.write(toFile: out, atomically: true, encoding: .utf8) } catch { throw CommandFailure("\(out): \(error.localizedDescription)") }
        if json {
            print(#"{"records":\#(count),"domain":"\#(chosen.rawValue)","out":"\#(out)"}"#)
        } else {
            print("\(count) \(chosen.rawValue) records written to \(out)")
        }
    }
}
