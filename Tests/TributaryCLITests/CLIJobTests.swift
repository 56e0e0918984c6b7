import Foundation
import Testing

/// `tributary train` and `index` against a real coordinator and an engine that takes its jobs. Runs where
/// `tributary-coordinator` is built beside this bundle (it arrives with the coordinator's server).
@Suite struct CLIJobTests {
    static let coordinatorBuilt = FileManager.default.isExecutableFile(
        atPath: productsFolder.appendingPathComponent("tributary-coordinator").path)

    @Test(.enabled(if: coordinatorBuilt)) func trainingJobsAreSubmittedWatchedAndCancelled() throws {
        let engine = try ServingEngine()
        defer { engine.stop() }
        let signUp = try tributary(["signup", "--name", "Ada", "--json", "--server", engine.address])
        let token = try #require((try signUp.json() as? [String: Any])?["token"] as? String)
        let coordinator = try ServerProcess(
            "tributary-coordinator", ["--data", engine.data.path, "--heartbeat-seconds", "1", "--handshake-seconds", "600"])
        defer { coordinator.stop() }
        // Engines connect with an engine credential, made through the data directory.
        let credential = try tributary(
            ["contributor", "add", "--data", engine.data.path, "--name", "engine a", "--role", "engine", "--json"], program: "tributary-engine")
        let engineToken = try #require((try credential.json() as? [String: Any])?["token"] as? String, "\(credential.errors)")
        let agent = try ServerProcess(
            "tributary-engine", ["serve", "--data", engine.data.path, "--model", baseModel, "--coordinator", coordinator.address, "--name", "a", "--handshake-seconds", "600"],
            environment: ["TRIBUTARY_TOKEN": engineToken])
        defer { agent.stop() }
        let asAda = ["TRIBUTARY_SERVER": engine.address, "TRIBUTARY_COORDINATOR": coordinator.address, "TRIBUTARY_TOKEN": token]

        #expect(try tributary(["datanet", "create", "soups", "--license", "MIT"], environment: asAda).status == 0)
        let file = try temporaryFile(
            "soups.jsonl", contents: (1...8).map { #"{"text": "Soup \#($0): simmer and season."}"# }.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try tributary(["datanet", "contribute", "1", "--file", file], environment: asAda).status == 0)
        #expect(try tributary(["datanet", "approve"] + (1...8).map(String.init), environment: asAda).status == 0)
        #expect(try tributary(["datanet", "publish", "1"], environment: asAda).status == 0)

        let submitted = try tributary(
            ["train", "submit", "--adapter-name", "soup", "--version", "1:1", "--steps", "2", "--batch-size", "2", "--sequence-length", "64", "--json"],
            environment: asAda)
        let job = try #require((try submitted.json() as? [String: Any])?["id"] as? Int, "\(submitted.errors)")
        let watch = try tributary(["train", "watch", "\(job)", "--json"], environment: asAda)
        #expect(watch.status == 0, "\(watch.errors)")
        let events = try watch.jsonLines()
        #expect(events.first?["kind"] as? String == "queued" && events.last?["kind"] as? String == "done")
        #expect(events.contains { $0["kind"] as? String == "progress" && $0["step"] as? Int == 2 })
        let status = try tributary(["train", "status", "\(job)", "--json"], environment: asAda)
        let info = try #require(try status.json() as? [String: Any])
        #expect(info["state"] as? String == "done" && info["total_steps"] as? Int == 2)
        let plain = try tributary(["train", "watch", "\(job)"], environment: asAda)
        #expect(plain.status == 0 && plain.output.contains("job \(job) #") && plain.output.hasSuffix("done\n"))

        // A long job, cancelled: watch ends with it and exits 1.
        let long = try tributary(
            ["train", "submit", "--adapter-name", "long", "--version", "1:1", "--steps", "100000", "--batch-size", "2", "--sequence-length", "64", "--json"],
            environment: asAda)
        let longJob = try #require((try long.json() as? [String: Any])?["id"] as? Int)
        let cancel = try tributary(["train", "cancel", "\(longJob)"], environment: asAda)
        #expect(cancel.status == 0, "\(cancel.errors)")
        let cancelled = try tributary(["train", "watch", "\(longJob)"], environment: asAda)
        #expect(cancelled.status == 1 && cancelled.errors == "tributary: job \(longJob) cancelled\n")
    }
}
