import Foundation
import Testing
import TributaryClient
import WireProtocol

/// `tributary-engine serve` as a user runs it: a real process, its port from `--json`, SIGTERM to stop it.
@Suite struct ServeCommandTests {
    static let engine = URL(fileURLWithPath: CommandLine.arguments[0])
        .deletingLastPathComponent().appendingPathComponent("tributary-engine")
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("LlamaModelTests/Fixtures/tiny-llama-tied").path

    @Test func servesUntilSIGTERMAndDrainsTheStreamInFlight() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: data) }
        let process = Process()
        process.executableURL = Self.engine
        process.arguments = ["serve", "--port", "0", "--json", "--data", data.path, "--model", Self.model, "--drain-seconds", "120", "--handshake-seconds", "600"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = await Task.detached {
            var bytes = Data()
            while !bytes.contains(UInt8(ascii: "\n")) {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                bytes.append(chunk)
            }
            return bytes
        }.value
        struct Listening: Decodable { let host: String; let port: Int }
        let listening = try JSONDecoder().decode(Listening.self, from: line)

        let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: listening.port, streamCredits: 1)
        let replies = try await connection.stream(.infer(Wire.Infer(
            adapter: nil, prompt: "hi", maxTokens: 40, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], method: .off,
            topRecords: 0, fee: 0, idempotencyKey: "")))
        var iterator = replies.makeAsyncIterator()
        guard case .token = try await iterator.next() else {
            Issue.record("expected a first TOKEN")
            return
        }
        process.terminate()  // SIGTERM
        var tokens = 1
        var end: Wire.InferEnd?
        while let reply = try await iterator.next() {
            if case .token(let token) = reply, token.token != UInt32.max { tokens += 1 }
            if case .inferEnd(let value) = reply { end = value }
        }
        let finished = try #require(end)
        #expect(finished.stopReason != .cancelled && Int(finished.completionTokens) == tokens)
        await connection.close()
        await Task.detached { process.waitUntilExit() }.value
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
    }
}
