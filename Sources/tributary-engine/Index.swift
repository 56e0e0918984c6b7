import ArgumentParser
import Attribution
import Foundation
import LlamaModel
import TensorCore
import Tokenizers
import Training

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a gradient index: per-example LoRA gradients of training records at an adapter's checkpoints.",
        discussion: """
            The adapter folder is a `train` output: its checkpoint-N folders are indexed with the learning rate \
            of their step; a folder without checkpoints is indexed as it is (learning rate 1). An existing index \
            in --out is appended to, at its own checkpoints, with the same adapter and projection. Layout: \
            docs/ATTRIBUTION.md.
            """)

    @Option(help: "A Hugging Face Llama model folder.") var model: String
    @Option(help: "The adapter folder (a train output with checkpoint-N folders, or a PEFT adapter).") var adapter: String
    @Option(help: "JSON Lines records, as train reads them; optional fields datanet, datanet_version.") var data: String
    @Option(help: "Folder of the index; an index already there is appended to.") var out: String
    @Option(help: "none (exact gradients), gaussian, rademacher or factored.") var projection: ProjectionKind = .none
    @Option(help: "Projected columns per LoRA matrix (required with a projection).") var dim: Int?
    @Option(help: "Seed of the projection.") var seed: UInt64 = 0
    @Option(help: "Index every checkpoint, or only the last.") var checkpoints: AdapterCheckpoint.Selection = .all
    @Option(help: "Tokens packed into one backward pass.") var tokensPerPass = GradientExtractor.defaultTokensPerPass
    @Option(help: "Threads in all (default: OPENBLAS_NUM_THREADS, else the available cores); as many backward passes run at once, each with one BLAS thread.")
    var threads: Int?
    @Option(help: "MiB the backward passes' activations may hold together (default: a quarter of physical memory); fewer passes run at once where --threads of them would not fit.")
    var activationMemoryMib: Int?
    @Flag(help: "Print JSON lines of progress, then one JSON summary.") var json = false

    func validate() throws {
        if projection != .none, dim == nil { throw ValidationError("--dim is required with --projection \(projection.rawValue)") }
        if projection == .none, dim != nil { throw ValidationError("--dim needs a projection (gaussian, rademacher or factored)") }
        if let dim, dim < 1 { throw ValidationError("--dim must be at least 1, got \(dim)") }
        if tokensPerPass < 1 { throw ValidationError("--tokens-per-pass must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        if let activationMemoryMib, !(1...(1 << 30)).contains(activationMemoryMib) {
            throw ValidationError("--activation-memory-mib must be 1 to 2^30, got \(activationMemoryMib)")
        }
    }

    func run() throws {
        ComputeMemory.retainFreedBuffers(upTo: 1 << 30)
        let requestedPasses = threads ?? BLASRuntime.defaultThreads
        // Before anything loads OpenBLAS, so that it starts no worker thread to spin idle beside the passes.
        BLASRuntime.setThreads(1)
        let (base, records) = try loadModelAndRecords(model: model, data: data)
        if let long = records.first(where: { $0.sequence.tokens.count > base.config.maxPositions }) {
            throw CommandFailure("\(data): record \"\(long.id)\" has \(long.sequence.tokens.count) tokens, more than the model's \(base.config.maxPositions) positions")
        }
        // Activations grow with the passes run at once: as many as the budget holds, estimated before any runs.
        let longest = records.map(\.sequence.tokens.count).max() ?? 0
        let passBytes = GradientExtractor.passBytes(config: base.config, tokens: max(tokensPerPass, longest), recordTokens: longest)
        let budget = activationMemoryMib.map { Double($0) * 1_048_576 } ?? Double(ProcessInfo.processInfo.physicalMemory) / 4
        guard passBytes <= budget else {
            throw CommandFailure(String(
                format: "one backward pass of %d tokens needs about %.0f MiB of activations, more than the %.0f MiB allowed: lower --tokens-per-pass (records of %d tokens need at least that), or raise --activation-memory-mib",
                max(tokensPerPass, longest), passBytes / 1_048_576, budget / 1_048_576, longest))
        }
        let concurrentPasses = max(1, min(requestedPasses, Int(budget / passBytes)))

        let display = IndexProgressDisplay(json: json)
        let index: GradientIndex
        do {
            if FileManager.default.fileExists(atPath: out + "/index.json") {
                var existing = try GradientIndex(folder: out)
                let asked = ProjectionSpec(kind: projection, dimension: dim ?? 0, seed: seed)
                guard asked == existing.manifest.projection else {
                    throw CommandFailure("\(out): the index was built with projection \(existing.manifest.projection), not \(asked)")
                }
                try existing.append(records: records, model: base, adapterFolder: adapter, tokensPerPass: tokensPerPass,
                                    concurrentPasses: concurrentPasses, progress: display.show)
                index = existing
            } else {
                index = try GradientIndex.build(
                    folder: out, model: base, adapterFolder: adapter, records: records,
                    projection: ProjectionSpec(kind: projection, dimension: dim ?? 0, seed: seed), checkpoints: checkpoints,
                    tokensPerPass: tokensPerPass, concurrentPasses: concurrentPasses, modelFolder: model, progress: display.show)
            }
        } catch let error as AttributionError {
            throw CommandFailure(error.description)
        } catch let error as ModelInputError {
            throw CommandFailure("\(data): \(error.description)")
        }
        display.finish(index: index, added: records.count)
    }
}

extension ProjectionKind: ExpressibleByArgument {}
extension AdapterCheckpoint.Selection: ExpressibleByArgument {}

/// Index progress: a live bar on a terminal, plain lines elsewhere, JSON lines with --json.
final class IndexProgressDisplay {
    let json: Bool
    let isTerminal = isatty(STDERR_FILENO) == 1
    let start = Date()
    var done = 0, tokens = 0

    init(json: Bool) { self.json = json }

    func show(_ progress: IndexProgress) {
        (done, tokens) = (progress.done, progress.tokens)
        let elapsed = max(Date().timeIntervalSince(start), 1e-9)
        let (recordsPerSecond, tokensPerSecond) = (Double(progress.done) / elapsed, Double(progress.tokens) / elapsed)
        if json {
            print(#"{"checkpoint":"\#(progress.checkpoint)","done":\#(progress.done),"total":\#(progress.total),"records_per_second":\#(recordsPerSecond),"tokens_per_second":\#(tokensPerSecond),"elapsed_seconds":\#(elapsed)}"#)
        } else if isTerminal {
            let width = 30, filled = width * progress.done / max(progress.total, 1)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data(String(format: "\r%@ %d/%d  %@  %.1f records/s  %.0f tok/s ", bar, progress.done, progress.total, progress.checkpoint, recordsPerSecond, tokensPerSecond).utf8))
        } else {
            print(String(format: "%d/%d %@ records/s %.1f tokens/s %.0f", progress.done, progress.total, progress.checkpoint, recordsPerSecond, tokensPerSecond))
        }
    }

    func finish(index: GradientIndex, added: Int) {
        let elapsed = Date().timeIntervalSince(start)
        if isTerminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            let summary: [String: Any] = [
                "index": index.folder, "records_added": added, "records": index.records.count,
                "checkpoints": index.checkpoints.map(\.name), "width": index.manifest.width,
                "gradients": done, "tokens": tokens, "elapsed_seconds": elapsed,
                "records_per_second": Double(done) / max(elapsed, 1e-9), "tokens_per_second": Double(tokens) / max(elapsed, 1e-9),
            ]
            let data = try! JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("index \(index.folder): \(index.records.count) records (\(added) added) x \(index.checkpoints.count) checkpoints, \(index.manifest.width) columns, \(String(format: "%.1f", Double(done) / max(elapsed, 1e-9))) gradients/s")
        }
    }
}
