import ArgumentParser
import Foundation
import Store

/// The operator's door to the store's contributors, for servers whose sign-up is closed and for the tokens
/// that engines present to their coordinator.
struct Contributors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contributor",
        abstract: "Create contributors and rotate their tokens directly in a data directory (operators).",
        subcommands: [Add.self, RotateToken.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a contributor and print their API token (shown once: the store keeps only its hash).")
        @Option(help: "The data directory (created if missing).") var data: String
        @Option(help: "The display name.") var name: String
        @Flag(help: "Print one JSON object ({\"contributor\", \"name\", \"token\"}).") var json = false

        func run() throws {
            let new = try openStore(data) { try $0.createContributor(displayName: name) }
            printToken(contributor: new.contributor, token: new.token, json: json)
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
                let rows = contributors.map { ["contributor": NSNumber(value: $0.id.rawValue), "name": $0.displayName as Any] }
                print(String(decoding: try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys]), as: UTF8.self))
            } else {
                for contributor in contributors { print("\(contributor.id.rawValue)\t\(contributor.displayName)") }
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
        let object: [String: Any] = ["contributor": contributor.id.rawValue, "name": contributor.displayName, "token": token]
        print(String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    } else {
        print("contributor \(contributor.id.rawValue) (\(contributor.displayName))\ntoken \(token)\n(shown once; export TRIBUTARY_TOKEN=\(token))")
    }
}
