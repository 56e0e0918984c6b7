import Foundation

/// A server process (`tributary-coordinator` or `tributary-engine serve`) built beside this test bundle,
/// started with `--port 0 --json`: its port comes from the first line it prints; its log goes to a file.
final class ServerProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String
    private(set) var port = 0

    static func executable(_ name: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
    }

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws {
        process.executableURL = Self.executable(executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("\(executable)-\(UUID().uuidString).log").path
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let line = await Self.blocking {
            var bytes = Data()
            while !bytes.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                bytes.append(chunk)
            }
            return bytes
        }
        struct Listening: Decodable { let host: String; let port: Int }
        guard let listening = try? JSONDecoder().decode(Listening.self, from: line) else {
            process.terminate()
            throw ProcessFailure("\(executable) printed no address: \(String(decoding: line, as: UTF8.self)) \(log)")
        }
        port = listening.port
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then waits for the exit.
    func stop() async -> Int32 {
        process.terminate()
        return await waitForExit()
    }

    /// SIGKILL: gone at once, nothing drained.
    func kill() async {
        Foundation.kill(process.processIdentifier, SIGKILL)
        _ = await waitForExit()
    }

    func waitForExit() async -> Int32 {
        await Self.blocking { [process] in process.waitUntilExit() }
        return process.terminationStatus
    }

    /// Runs a blocking call on a dispatch thread: the cooperative pool (one thread per core) keeps serving the
    /// other tests' servers meanwhile.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
