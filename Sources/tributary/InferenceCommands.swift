import ArgumentParser
import ClientCommands
import Dispatch
import Foundation
import WireProtocol

struct AdapterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapter", abstract: "The engine's adapters: list them with their provenance, load and unload them.",
        subcommands: [List.self, Load.self, Unload.self])

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Adapters, the datanet versions each was trained on, and whether this engine holds it.")

        @Option(help: "Only this contributor's adapters.") var owner: Int64?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let adapters = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in try await session.adapters(owner: owner) }
            options.show(adapters, HumanText.adapters(adapters))
        }
    }

    struct Load: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Load an adapter into the engine's memory.")

        @Argument(help: "The adapter's id.") var adapter: Int64
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let state = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in try await session.loadAdapter(adapter) }
            options.show(state, HumanText.adapterState(state))
        }
    }

    struct Unload: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Free an adapter's memory on the engine.")

        @Argument(help: "The adapter's id.") var adapter: Int64
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let state = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in try await session.unloadAdapter(adapter) }
            options.show(state, HumanText.adapterState(state))
        }
    }
}

struct Infer: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate from a prompt, printing tokens as they arrive, then the usage, the attribution and the reward split.",
        discussion: """
            With --json, one JSON object per frame ("type": token, infer_end, attribution, reward_split); a request with an \
            idempotency key (every paid one) starts with an object ("type": "request") that carries it. A paid request sent \
            again with the same --idempotency-key, on any connection, is charged once and gets the original inference and \
            reward split.
            """)

    @Option(help: "The prompt (with --chat: the user's message).") var prompt: String
    @Flag(help: "Send the prompt as a user message, for the engine to render with its model's chat template.") var chat = false
    @Option(help: "With --chat: a system message before the user's.") var system: String?
    @Option(help: "The adapter's id (default: the base model).") var adapter: Int64?
    @Option(help: "The most tokens to generate.") var maxTokens: UInt32 = 64
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(help: "Keep the k most likely tokens (0: all).") var topK: UInt32 = 0
    @Option(help: "Keep the most likely tokens up to this probability mass (1: all).") var topP: Float = 1
    @Option(help: "Seed for sampling.") var seed: UInt64 = 0
    @Option(help: "Stop at this text (repeat for several).") var stop: [String] = []
    @Option(help: "The attribution method: off, datainf, tracin, gradcos or fisher.") var method = "off"
    @Option(help: "How many of the most influential records to return.") var top: UInt32 = 10
    @Option(help: "A fee in micro-units, charged to you and split among the contributors (needs a token).") var fee: Int64 = 0
    @Option(help: "Charge a retry once: the key of the request to retry (default for a fee: a fresh random key, shown).")
    var idempotencyKey: String?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if system != nil && !chat { throw ValidationError("--system is a chat message: give --chat too") }
    }

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        // A paid request always carries a key, so that whoever retries it can name it.
        let key = idempotencyKey ?? (fee > 0 ? "cli-\(UUID().uuidString.lowercased())" : "")
        let request = Wire.Infer(
            adapter: adapter, prompt: chat ? "" : prompt, maxTokens: maxTokens, temperature: temperature, topK: topK, topP: topP,
            seed: seed, stop: stop, method: try catalogueValue(method, of: Wire.AttributionMethod.self, option: "--method"),
            topRecords: top, fee: fee, idempotencyKey: key,
            chat: chat ? (system.map { [Wire.ChatMessage(role: "system", content: $0)] } ?? []) + [Wire.ChatMessage(role: "user", content: prompt)] : nil)
        let json = options.json
        if json, !key.isEmpty {
            print(WireJSON.line(["type": "request", "idempotency_key": key] as [String: Any]))
        } else if !key.isEmpty {
            FileHandle.standardError.write(Data("idempotency key \(key) (retry with --idempotency-key to be charged once)\n".utf8))
        }
        try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
            var interrupt: (any DispatchSourceSignal)?
            _ = try await session.infer(
                request,
                onStart: { requestID in
                    // The first Ctrl-C asks the engine to stop (the stream then ends `cancelled`); a second one quits.
                    interrupt = onInterrupt { Task { try? await session.connection.cancel(requestID) } }
                },
                onFrame: { frame in
                    print(json ? WireJSON.event(frame) : HumanText.inferenceFrame(frame), terminator: json ? "\n" : "")
                    fflush(nil)
                })
            interrupt?.cancel()
            signal(SIGINT, SIG_DFL)
        }
    }
}

/// Runs `action` on the next SIGINT instead of ending the process; the one after ends it as usual.
private func onInterrupt(_ action: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    source.setEventHandler {
        signal(SIGINT, SIG_DFL)
        source.cancel()
        action()
    }
    source.resume()
    return source
}

struct Attribute: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attribute a past inference, or a prompt and completion on an adapter, to its training records.")

    @Option(help: "A past inference: its id (as `infer` prints it) or the request id it was recorded under.") var inference: String?
    @Option(help: "The adapter's id (with --prompt and --completion).") var adapter: Int64?
    @Option(help: "The prompt.") var prompt: String?
    @Option(help: "The completion to attribute.") var completion: String?
    @Option(help: "The attribution method: datainf, tracin, gradcos or fisher.") var method = "datainf"
    @Option(help: "How many of the most influential records to return.") var top: UInt32 = 10
    @Flag(help: "Also return every training record's score (JSON: all_scores).") var allScores = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        let byText = adapter != nil && prompt != nil && completion != nil
        guard (inference != nil) != byText, inference == nil || (adapter == nil && prompt == nil && completion == nil) else {
            throw ValidationError("give --inference ID, or --adapter ID with --prompt and --completion")
        }
    }

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let target: Wire.AttributionTarget =
            if let inference { .inference(Wire.InferenceTarget(requestId: inference)) } else {
                .text(Wire.TextTarget(adapter: adapter ?? 0, prompt: prompt ?? "", completion: completion ?? ""))
            }
        let request = Wire.Attribute(
            target: target, method: try catalogueValue(method, of: Wire.AttributionMethod.self, option: "--method"),
            topRecords: top, allScores: allScores)
        let attribution = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in try await session.attribute(request) }
        options.show(attribution, HumanText.attribution(attribution))
    }
}

struct Curate: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find an adapter's training records that hurt an evaluation datanet version; with --apply, penalise them.")

    @Option(help: "The adapter's id (yours, or trained on a datanet of yours).") var adapter: Int64
    @Option(help: "The evaluation datanet version, DATANET:VERSION.") var evaluation: String
    @Option(help: "The attribution method: datainf, tracin, gradcos or fisher.") var method = "datainf"
    @Option(help: "The most records to flag.") var maxFlags: UInt32 = 10
    @Option(help: "Penalty points per flagged record.") var points: UInt32 = 1
    @Flag(help: "Record the penalties, on this adapter only and on the ledger (default: a dry run).") var apply = false
    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let request = Wire.Curate(
            adapter: adapter, evaluation: try Wire.VersionRef(parsing: evaluation),
            method: try catalogueValue(method, of: Wire.AttributionMethod.self, option: "--method"), maxFlags: maxFlags, points: points,
            apply: apply)
        let report = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in try await session.curate(request) }
        options.show(report, HumanText.curation(report))
    }
}

struct Penalties: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Penalties imposed by curation, each scoped to one adapter, with its evidence and ledger entry.")

    @Option(help: "Only this contributor's penalties.") var contributor: Int64?
    @Option(help: "Only those on this adapter.") var adapter: Int64?
    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let penalties = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
            try await session.penalties(contributor: contributor, adapter: adapter)
        }
        options.show(penalties, HumanText.penalties(penalties))
    }
}

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "The hash-chained ledger of deposits, fees and rewards: balances, entries, verification, deposits.",
        subcommands: [Balances.self, Entries.self, Verify.self, Deposit.self])

    struct Balances: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Every account's balance (micro-units), or one contributor's.")

        @Option(help: "Only this contributor's balance.") var contributor: Int64?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let balances = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.balances(contributor: contributor)
            }
            options.show(balances, HumanText.balances(balances))
        }
    }

    struct Entries: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "A page of ledger entries with their hashes.")

        @Option(help: "Entries after this sequence number.") var after: Int64 = 0
        @Option(help: "The most entries to return.") var limit: UInt32 = 100
        @Option(help: "Only this inference's entries.") var inference: Int64?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let entries = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.ledgerEntries(after: after, limit: limit, inference: inference)
            }
            options.show(entries, HumanText.ledgerEntries(entries))
        }
    }

    struct Verify: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Have the engine verify the whole chain; exits 1 if an entry is broken.")

        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let verification = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in try await session.verifyLedger() }
            options.show(verification, HumanText.verification(verification))
            if let broken = verification.broken { throw ClientFailure(.failed, "the ledger is broken at entry \(broken.seq)") }
        }
    }

    struct Deposit: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Credit a contributor's account (operators only): the only way money enters the ledger.",
            discussion: "Sent again with the same --idempotency-key, the deposit is credited once and the original entry comes back.")

        @Option(help: "The contributor whose account is credited.") var contributor: Int64
        @Option(help: "The amount in micro-units (1 to 10^15).") var amount: Int64
        @Option(help: "A note recorded on the ledger entry.") var memo: String = ""
        @Option(help: "Credit a retry once: the key of the deposit to retry (default: a fresh random key, shown).")
        var idempotencyKey: String?
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let request = Wire.Deposit(
                contributor: contributor, amount: amount, memo: memo,
                idempotencyKey: idempotencyKey ?? "cli-\(UUID().uuidString.lowercased())")
            let deposited = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
                try await session.deposit(request)
            }
            if options.json {
                print(WireJSON.line(deposited, adding: ["idempotency_key": request.idempotencyKey]))
            } else {
                options.show(deposited, HumanText.deposited(deposited, key: request.idempotencyKey))
            }
        }
    }
}
