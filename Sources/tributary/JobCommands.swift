import ArgumentParser
import ClientCommands
import Foundation
import WireProtocol

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train LoRA adapters on datanet versions, as jobs on the coordinator.",
        subcommands: [Submit.self, JobStatus.self, JobWatch.self, JobCancel.self])

    struct Submit: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a training job; prints the job.")

        @Option(help: "The adapter's name.") var adapterName: String
        @Option(help: "A datanet version to train on, DATANET:VERSION (repeat for several).") var version: [String]
        @Option(help: "The base model (empty: the engine's).") var baseModel = ""
        @Option(help: "LoRA rank.") var rank: UInt32 = 8
        @Option(help: "LoRA alpha.") var alpha: Float = 16
        @Option(help: "Target modules, comma-separated (q,k,v,o,gate,up,down; empty: q,k,v,o).") var targets = ""
        @Option(help: "Peak learning rate.") var learningRate: Float = 1e-3
        @Option(help: "Optimizer steps (instead of --epochs).") var steps: UInt32?
        @Option(help: "Passes over the data (default 1 when --steps is not given).") var epochs: UInt32?
        @Option(help: "Sequences per step.") var batchSize: UInt32 = 8
        @Option(help: "Longest sequence in tokens.") var sequenceLength: UInt32 = 256
        @Option(help: "Seed for initialisation and shuffling.") var seed: UInt64 = 0
        @Option(help: "Save a checkpoint every N steps (0: none).") var checkpointEvery: UInt32 = 0
        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard steps == nil || epochs == nil else { throw ValidationError("give --steps or --epochs, not both") }
        }

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let versions = try version.map { text throws(ClientFailure) in try Wire.VersionRef(parsing: text) }
            let spec = Wire.TrainSpec(
                adapterName: adapterName, baseModel: baseModel, versions: versions, rank: rank, alpha: alpha,
                targets: targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }, learningRate: learningRate,
                steps: steps ?? 0, epochs: steps == nil ? (epochs ?? 1) : 0, batchSize: batchSize, sequenceLength: sequenceLength,
                seed: seed, checkpointEvery: checkpointEvery)
            try await submit(.train(spec), options: options, settings)
        }
    }
}

struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index", abstract: "Build an adapter's gradient index for attribution, as a job on the coordinator.",
        subcommands: [Submit.self, JobStatus.self, JobWatch.self, JobCancel.self])

    struct Submit: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Queue an index job; prints the job.")

        @Option(help: "The adapter's id.") var adapter: Int64
        @Option(help: "The projection dimension of the per-example gradients (0: the engine's default).") var dim: UInt32 = 0
        @Option(help: "The attribution method the index is for: datainf, tracin, gradcos or fisher.") var method = "datainf"
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let method = try catalogueValue(method, of: Wire.AttributionMethod.self, option: "--method")
            try await submit(.index(Wire.IndexSpec(adapter: adapter, method: method, projectionDim: dim)), options: options, settings)
        }
    }
}

struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Measure an adapter's attribution (LDS of every method over subset retrains spread across the engines), as jobs on the coordinator.",
        subcommands: [Submit.self, JobStatus.self, JobWatch.self, JobCancel.self])

    struct Submit: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue an evaluation (its retrains, then the job that gathers them); prints the gathering job, whose done event carries the LDS.")

        @Option(help: "The adapter's id (trained by a job of this coordinator).") var adapter: Int64
        @Option(help: "The datanet version whose records are the queries, DATANET:VERSION.") var version: String
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let version = try Wire.VersionRef(parsing: version)
            try await submit(.evaluate(Wire.EvaluateSpec(adapter: adapter, version: version)), options: options, settings)
        }
    }
}

private func submit(_ spec: Wire.JobSpec, options: ClientOptions, _ settings: ClientSettings) async throws(ClientFailure) {
    let job = try await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in try await session.submitJob(spec) }
    options.show(job, HumanText.job(job) + (options.json ? "" : "\nfollow it with: tributary \(job.kind.catalogueName) watch \(job.id)"))
}

struct JobStatus: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A job's state and progress.")

    @Argument(help: "The job's id.") var job: UInt64
    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let info = try await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in try await session.job(job) }
        options.show(info, HumanText.job(info))
    }
}

struct JobCancel: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a queued or running job that you submitted.")

    @Argument(help: "The job's id.") var job: UInt64
    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let info = try await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in try await session.cancelJob(job) }
        options.show(info, HumanText.job(info))
    }
}

struct JobWatch: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a job's events to its end: a live progress bar on a terminal, plain lines otherwise.",
        discussion: "Exits 0 when the job is done, 1 when it failed or was cancelled. With --json, one JSON object per event.")

    @Argument(help: "The job's id.") var job: UInt64
    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        var totalSteps = try await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in
            try await session.job(job)
        }.totalSteps
        var askedForTotal = false
        let bar = ProgressBar(total: Int(totalSteps), isTerminal: !options.json && isatty(STDERR_FILENO) == 1)
        let last = try await ClientSession.followJob(job, settings: settings) { event in
            // A queued job learns its total once it starts: ask once, at its first progress.
            if totalSteps == 0 && event.kind == .progress && !askedForTotal {
                askedForTotal = true
                totalSteps = (try? await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in
                    try await session.job(job)
                })?.totalSteps ?? 0
                bar.total = Int(totalSteps)
            }
            if options.json {
                print(WireJSON.line(event))
            } else if bar.isTerminal && event.kind == .progress {
                bar.update(done: Int(event.step), detail: event.loss.map { String(format: "loss %.4f", $0) } ?? "")
            } else if event.kind == .progress && !HumanText.isMilestone(step: event.step, of: totalSteps) {
                // Plain lines (logs, pipes) keep a twentieth of the progress events.
            } else {
                bar.finish()
                print(HumanText.jobEvent(event, totalSteps: totalSteps))
            }
            fflush(nil)
        }
        bar.finish()
        guard last.kind == .done else {
            throw ClientFailure(.failed, "job \(job) \(last.kind.catalogueName)" + (last.message.isEmpty ? "" : ": \(last.message)"))
        }
    }
}
