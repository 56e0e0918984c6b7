import ArgumentParser
import ClientCommands
import Foundation
import WireProtocol

@main
struct Tributary: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary",
        abstract: "Tributary's client: datanets, training jobs, engines, adapters, attributed inference and the ledger.",
        discussion: """
            Engine requests go to --server (TRIBUTARY_SERVER, default 127.0.0.1:7070), job requests to --coordinator \
            (TRIBUTARY_COORDINATOR, default 127.0.0.1:7080), authenticated by --token (TRIBUTARY_TOKEN; from `tributary \
            signup`). Exit status: 1 the work failed, 64 usage, 65 refused by the server, 66 unreadable input, 69 no \
            connection, 75 busy (retry), 76 protocol or checksum failure, 77 unauthenticated or not permitted.
            """,
        subcommands: [
            SignUp.self, DatanetCommand.self, TrainCommand.self, IndexCommand.self, EvaluateCommand.self, AdapterCommand.self, EngineCommand.self, Infer.self,
            Attribute.self, Curate.self, Penalties.self, LedgerCommand.self, Health.self, Stats.self,
        ])
}

/// The options every command takes: where the servers are, who the user is, and the output format.
struct ClientOptions: ParsableArguments {
    @Option(help: "The engine, HOST:PORT (default: TRIBUTARY_SERVER, else 127.0.0.1:7070).")
    var server: String?

    @Option(help: "The coordinator, HOST:PORT (default: TRIBUTARY_COORDINATOR, else 127.0.0.1:7080).")
    var coordinator: String?

    @Option(help: "The contributor's API token (default: TRIBUTARY_TOKEN).")
    var token: String?

    @Flag(help: "Print JSON: one document, or for streams one JSON object per line.")
    var json = false

    func settings() throws(ClientFailure) -> ClientSettings {
        try ClientSettings.resolve(
            server: server, coordinator: coordinator, token: token, environment: ProcessInfo.processInfo.environment)
    }

    /// Prints `value` as one JSON document with --json, else `human`.
    func show(_ value: Any, _ human: @autoclosure () -> String) {
        print(json ? WireJSON.line(value) : human())
        fflush(nil)
    }
}

/// A command that talks to a server: its failures print one short line and exit with their status.
protocol ClientCommand: AsyncParsableCommand {
    var options: ClientOptions { get }
    func execute(_ settings: ClientSettings) async throws(ClientFailure)
}

extension ClientCommand {
    func run() async throws {
        do throws(ClientFailure) {
            try await execute(try options.settings())
        } catch {
            FileHandle.standardError.write(Data("tributary: \(error.message)\n".utf8))
            throw ExitCode(error.exitCode)
        }
    }
}

/// Prints a line on standard error (warnings, per-line failures, summaries beside data on standard output).
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

struct SignUp: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "signup", abstract: "Create a contributor on the engine; prints its id and API token (shown once).")

    @Option(help: "Your display name (1 to 100 characters).") var name: String
    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let signedUp = try await ClientSession.with(.engine, settings) { session throws(ClientFailure) in
            try await session.signUp(name: name)
        }
        options.show(signedUp, HumanText.signedUp(signedUp))
    }
}

struct Health: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the engine, or the coordinator when --coordinator is given, whether it is serving.")

    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let role: ServerRole = options.coordinator == nil ? .engine : .coordinator
        let health = try await ClientSession.with(role, settings) { session throws(ClientFailure) in try await session.health() }
        options.show(health, HumanText.health(health, address: settings.address(of: role)))
        if health.state == .draining { throw ClientFailure(.temporary, "\(settings.address(of: role)) is draining") }
    }
}

struct Stats: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "The engine's counters, or the coordinator's when --coordinator is given: connections, requests, tokens, jobs, latency.")

    @OptionGroup var options: ClientOptions

    func execute(_ settings: ClientSettings) async throws(ClientFailure) {
        let role: ServerRole = options.coordinator == nil ? .engine : .coordinator
        let stats = try await ClientSession.with(role, settings) { session throws(ClientFailure) in try await session.stats() }
        options.show(stats, HumanText.stats(stats))
    }
}
