import Foundation
import Tokenizers

// Encode throughput of BPETokenizer on the shared test corpus, per family, one thread, in MB per CPU-second of that
// thread (per core, whatever else the machine runs); and a parity check of every string's ids against the
// `tokenizers` library's (the fixtures' corpus.jsonl) before timing.
// Run: cd Benchmarks && swift run -c release TokenizerThroughput ../Tests/TokenizersTests/Fixtures [seconds]
// The peer: Benchmarks/peer/tokenizer_throughput.py times `tokenizers` on the same strings.

let arguments = CommandLine.arguments
let fixtures = arguments.count > 1 ? arguments[1] : "../Tests/TokenizersTests/Fixtures"
let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 2 : 2
let families = arguments.count > 3 ? arguments[3].split(separator: ",").map(String.init)
    : ["gpt2", "llama3", "smollm", "qwen2", "mistral", "mistral-metaspace"]

func lines(_ path: String) throws -> [Data] {
    try Data(contentsOf: URL(fileURLWithPath: path)).split(separator: UInt8(ascii: "\n")).map { Data($0) }
}

struct Expected: Decodable { let ids: String }

let corpus = try lines(fixtures + "/corpus.txt").map { try JSONDecoder().decode(String.self, from: $0) }
let corpusBytes = corpus.reduce(0) { $0 + $1.utf8.count }
print("corpus: \(corpus.count) strings, \(corpusBytes) bytes of UTF-8")
let joined = corpus.joined(separator: "\n")

/// This thread's CPU time in seconds: on a shared machine, what one core spent, whatever else runs.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Whole passes over `texts` until `seconds` of CPU time have gone: the best pass's CPU seconds and its token count.
func bestPass(_ texts: [String], _ tokenizer: BPETokenizer) -> (Double, Int) {
    var best = Double.infinity
    var tokens = 0
    let start = threadCPUSeconds()
    repeat {
        let passStart = threadCPUSeconds()
        tokens = 0
        for text in texts { tokens += tokenizer.encode(text).count }
        best = min(best, threadCPUSeconds() - passStart)
    } while threadCPUSeconds() - start < seconds
    return (best, tokens)
}

for family in families {
    let loadStart = DispatchTime.now().uptimeNanoseconds
    let tokenizer = try BPETokenizer(contentsOf: "\(fixtures)/\(family)/tokenizer.json")
    let loadMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e6
    let expected = try lines("\(fixtures)/\(family)/corpus.jsonl").map { try JSONDecoder().decode(Expected.self, from: $0) }
    var mismatches = 0
    for (text, line) in zip(corpus, expected) where tokenizer.encode(text) != line.ids.unicodeScalars.map({ Int($0.value) - 0x100 }) {
        mismatches += 1
    }
    let (each, tokens) = bestPass(corpus, tokenizer)
    let (whole, _) = bestPass([joined], tokenizer)
    print("\(family): \(String(format: "%.2f", Double(corpusBytes) / each / 1e6)) MB/s a string at a time (\(tokens) tokens per pass, "
        + "best pass \(String(format: "%.1f", each * 1000)) ms of CPU); \(String(format: "%.2f", Double(joined.utf8.count) / whole / 1e6)) MB/s "
        + "as one text; \(mismatches) mismatches; loaded in \(String(format: "%.0f", loadMilliseconds)) ms (\(tokenizer.vocabularySize) ids)")
}
