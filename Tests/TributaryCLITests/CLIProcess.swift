import Foundation
import Testing

/// The built executables, beside this test bundle.
let productsFolder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

/// The repository's built-in base model.
let baseModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("models/tributary-base").path

/// What a finished `tributary` printed.
struct CLIRun {
    let status: Int32
    let output: String
    let errors: String

    /// Standard output as one JSON document.
    func json() throws -> Any { try JSONSerialization.jsonObject(with: Data(output.utf8), options: [.fragmentsAllowed]) }

    /// Standard output as JSON Lines.
    func jsonLines() throws -> [[String: Any]] {
        try output.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }
}

/// Runs `tributary arguments` (or another of the built `program`s) as a user would, with `variables` over an environment from which the
/// TRIBUTARY_* variables of this process are removed.
func tributary(_ arguments: [String], environment variables: [String: String] = [:], program: String = "tributary") throws -> CLIRun {
    let process = Process()
    process.executableURL = productsFolder.appendingPathComponent(program)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRIBUTARY_") }
    environment.merge(variables) { _, new in new }
    process.environment = environment
    // Standard error goes to a file, so that neither stream can fill up while the other is read.
    let errorURL = FileManager.default.temporaryDirectory.appendingPathComponent("tributary-stderr-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errorURL) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = try FileHandle(forWritingTo: errorURL)
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CLIRun(
        status: process.terminationStatus, output: String(decoding: data, as: UTF8.self),
        errors: String(decoding: (try? Data(contentsOf: errorURL)) ?? Data(), as: UTF8.self))
}

/// A server process (`tributary-engine serve`, `tributary-coordinator`) started with `--port 0 --json`, its
/// address read from the `{"host", "port"}` line it prints first; `stop()` sends SIGTERM and waits.
final class ServerProcess {
    let process = Process()
    let address: String

    init(_ executable: String, _ arguments: [String], environment variables: [String: String] = [:]) throws {
        process.executableURL = productsFolder.appendingPathComponent(executable)
        process.arguments = arguments + ["--port", "0", "--json"]
        process.environment = ProcessInfo.processInfo.environment.merging(variables) { _, new in new }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var bytes = Data()
        while !bytes.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            bytes.append(chunk)
        }
        struct Listening: Decodable { let host: String; let port: Int }
        let listening = try JSONDecoder().decode(Listening.self, from: bytes.prefix { $0 != UInt8(ascii: "\n") })
        address = "\(listening.host):\(listening.port)"
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// `tributary-engine serve` on a fresh data folder (removed by `stop()`).
final class ServingEngine {
    let data: URL
    let server: ServerProcess
    var address: String { server.address }

    init() throws {
        data = FileManager.default.temporaryDirectory.appendingPathComponent("cli-engine-\(UUID().uuidString)")
        server = try ServerProcess("tributary-engine", ["serve", "--data", data.path, "--model", baseModel, "--handshake-seconds", "600"])
    }

    func stop() {
        server.stop()
        try? FileManager.default.removeItem(at: data)
    }
}

func temporaryFile(_ name: String, contents: String) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)")
    try contents.write(to: url, atomically: true, encoding: .utf8)
    return url.path
}
