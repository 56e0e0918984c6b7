import ArgumentParser
import Foundation
import Store

/// The operator's door to the store's contributors, for servers whose sign-up is closed and for the tokens
/// that engines present to their coordinator.
struct Contributors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contributor",
        abstract: "Create contributors and rotate their tokens directly in a data directory (operators).",
        subcommands: [Add.self, SetRole.self, RotateToken.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a contributor and print their API token (shown once: the store keeps only its hash).")
        @Option(help: "The data directory (created if missing).") var data: String
        @Option(help: "The display name.") var name: String
        @Option(help: "contributor, operator (credits accounts, issues engine credentials, acts on any object) or engine (an engine's credential).")
        var role: ContributorRole = .contributor
        @Flag(help: "Print one JSON object ({\"contributor\", \"name\", \"role\", \"token\"}).") var json = false

        func run() throws {
            let new = try openStore(data) { try $0.createContributor(displayName: name, role: role) }
            printToken(contributor: new.contributor, token: new.token, json: json)
        }
    }

    struct SetRole: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set-role", abstract: "Change a contributor's role.")
        @Option(help: "The data directory.") var data: String
        @Option(help: "The contributor's id.") var id: Int64
        @Option(help: "contributor, operator or engine.") var role: ContributorRole
        @Flag(help: "Print one JSON object ({\"contributor\", \"name\", \"role\"}).") var json = false

        func run() throws {
            let contributor = try openStore(data) { try $0.setRole(role, for: ContributorID(id)) }
            if json {
                let object: [String: Any] = ["contributor": contributor.id.rawValue, "name": contributor.displayName, "role": contributor.role.rawValue]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("contributor \(contributor.id.rawValue) (\(contributor.displayName)) is now \(contributor.role.rawValue)")
            }
        }
    }

    struct RotateToken: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-token", abstract: "Give a contributor a new token; the old one stops working at once.")
        @Option(help: "The data directory.") var data: String
        @Option(help: "The contributor's id.") var id: Int64
        @Flag(help: "Print one JSON object ({\"contributor\", \"name\", \"token\"}).") var json = false

        func run() throws {
            let (contributor, token) = try openStore(data) { store in
                let token = try store.rotateToken(for: ContributorID(id))
                return (try store.contributor(ContributorID(id)), token)
            }
            printToken(contributor: contributor, token: token, json: json)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the contributors.")
        @Option(help: "The data directory.") var data: String
        @Flag(help: "Print a JSON array.") var json = false

        func run() throws {
            let contributors = try openStore(data) { try $0.contributors() }
            if json {
                let rows = contributors.map {
                    ["contributor": NSNumber(value: $0.id.rawValue), "name": $0.displayName as Any, "role": $0.role.rawValue]
                }
                print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys]), as: UTF8.self))
            } else {
                for contributor in contributors { print("\(contributor.id.rawValue)\t\(contributor.role.rawValue)\t\(contributor.displayName)") }
            }
        }
    }
}

/// Opens the store in `directory` for one command; its errors become the command's message.
private func openStore<T>(_ directory: String, _ body: (Store) throws -> T) throws -> T {
    do {
        return try body(try Store(directory: URL(fileURLWithPath: directory)))
    } catch {
        throw CommandFailure("\(directory): \(error)")
    }
}

private func printToken(contributor: Contributor, token: String, json: Bool) {
    if json {
        let object: [String: Any] = [
            "contributor": contributor.id.rawValue, "name": contributor.displayName, "role": contributor.role.rawValue, "token": token,
        ]
        print(String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    } else {
        print("contributor \(contributor.id.rawValue) (\(contributor.displayName), \(contributor.role.rawValue))\ntoken \(token)\n(shown once; export TRIBUTARY_TOKEN=\(token))")
    }
}

extension ContributorRole: ExpressibleByArgument {}
