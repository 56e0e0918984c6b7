import ArgumentParser
import ClientCommands
import WireProtocol

struct EngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine", abstract: "The coordinator's engines: list them, drain one before maintenance, resume it after.",
        subcommands: [List.self, Drain.self, Resume.self])

    struct List: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Registered engines, their running jobs and whether each is draining.")

        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            let engines = try await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in try await session.engines() }
            options.show(engines, HumanText.engines(engines))
        }
    }

    struct Drain: ClientCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lease an engine no more jobs; it finishes those it runs.",
            discussion: "Only the engine credential that registered the engine (its name is bound to it), or an operator, may drain it: run this with that token. `tributary engine list` shows when its jobs are done.")

        @Argument(help: "The engine's name.") var name: String
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            try await EngineCommand.setDraining(name, true, options: options, settings)
        }
    }

    struct Resume: ClientCommand {
        static let configuration = CommandConfiguration(abstract: "Take a drained engine back into dispatch.")

        @Argument(help: "The engine's name.") var name: String
        @OptionGroup var options: ClientOptions

        func execute(_ settings: ClientSettings) async throws(ClientFailure) {
            try await EngineCommand.setDraining(name, false, options: options, settings)
        }
    }

    static func setDraining(_ name: String, _ draining: Bool, options: ClientOptions, _ settings: ClientSettings) async throws(ClientFailure) {
        let engine = try await ClientSession.with(.coordinator, settings) { session throws(ClientFailure) in
            try await session.drainEngine(name, draining: draining)
        }
        options.show(engine, HumanText.engine(engine))
    }
}
