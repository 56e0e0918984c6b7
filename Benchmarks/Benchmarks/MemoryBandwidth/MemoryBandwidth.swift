// The machine's memory bandwidth, STREAM-style (Benchmarks/Sources/RawMemory): the ceiling of a decode step,
// which reads every weight once per token. Benchmarks/peer/decode.py runs it beside the decode it rates.
//
// Run: cd Benchmarks && swift run -c release MemoryBandwidth [--threads 2] [--mib 512] [--json]
import ArgumentParser
import Foundation
import RawMemory

@main
struct MemoryBandwidth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "STREAM copy and a read-only sum over arrays far larger than the caches; best of --repetitions.")

    @Option(help: "Threads, each on its own slice.") var threads = 2
    @Option(help: "MiB per array (two arrays).") var mib = 512
    @Option(help: "Passes of each kind; the fastest counts.") var repetitions = 5
    @Flag(help: "One JSON object: copy_gb_per_second, read_gb_per_second, threads, mib.") var json = false

    func validate() throws {
        guard (1...256).contains(threads), (16...16_384).contains(mib), (1...100).contains(repetitions) else {
            throw ValidationError("--threads 1-256, --mib 16-16384, --repetitions 1-100")
        }
    }

    func run() throws {
        let rates = raw_memory_measure(mib << 20, Int32(threads), Int32(repetitions))
        guard rates.copy > 0 else { throw ValidationError("could not allocate 2 x \(mib) MiB or start \(threads) threads") }
        if json {
            let report = Report(copyGBPerSecond: rates.copy, readGBPerSecond: rates.read, threads: threads, mib: mib)
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = .sortedKeys
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(String(format: "memory bandwidth, %d threads, 2 x %d MiB: copy %.1f GB/s, read %.1f GB/s", threads, mib, rates.copy, rates.read))
        }
    }

    struct Report: Encodable {
        var copyGBPerSecond: Double
        var readGBPerSecond: Double
        var threads: Int
        var mib: Int
    }
}
