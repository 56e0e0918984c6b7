import Foundation

/// The built `tributary-engine`, beside this test bundle.
let engineURL = URL(fileURLWithPath: CommandLine.arguments[0])
    .deletingLastPathComponent().appendingPathComponent("tributary-engine")

/// What a finished engine process printed.
struct EngineRun {
    let status: Int32
    let output: Data
    let errors: String
}

/// Runs `tributary-engine arguments` as a user would, with `variables` set (nil: unset) over this
/// process's environment.
func runEngine(_ arguments: [String], environment variables: [String: String?] = [:]) throws -> EngineRun {
    let process = Process()
    process.executableURL = engineURL
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (name, value) in variables { environment[name] = value }
    process.environment = environment
    // Standard error goes to a file, so that neither stream can fill up while the other is read.
    let errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("engine-stderr-\(UUID().uuidString)").path
    _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errorPath) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let errorData = FileManager.default.contents(atPath: errorPath) ?? Data()
    return EngineRun(status: process.terminationStatus, output: data, errors: String(decoding: errorData, as: UTF8.self))
}

/// The LlamaModel and Tokenizers test fixtures, read from the source tree.
func sourceFixture(_ path: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(path).path
}

func temporaryFolder(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
