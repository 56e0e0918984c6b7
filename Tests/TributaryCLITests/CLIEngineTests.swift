import Foundation
import Store
import Testing

/// `tributary` run as a user runs it, against a real `tributary-engine serve`.
@Suite(.serialized) struct CLIEngineTests {
    /// A request this engine does not serve yet (Export, RecordList, DatanetList, LedgerVerify land with other
    /// branches): refused with the server's own words, never misreported.
    static func notServedYet(_ run: CLIRun) -> Bool {
        (run.status == 65 || run.status == 76)
            && (run.errors.contains("not supported by this engine") || run.errors.contains("is not a request"))
    }

    @Test func aContributorsWayFromSignUpToPublishedVersionAndInference() throws {
        let engine = try ServingEngine()
        defer { engine.stop() }
        let server = ["--server", engine.address]

        let health = try tributary(["health", "--json"] + server)
        #expect(health.status == 0)
        #expect((try health.json() as? [String: Any])?["state"] as? String == "serving")

        let signUp = try tributary(["signup", "--name", "Ada", "--json"] + server)
        let identity = try #require(try signUp.json() as? [String: Any], "\(signUp.errors)")
        let token = try #require(identity["token"] as? String)
        let contributor = try #require(identity["contributor"] as? Int)
        let human = try tributary(["signup", "--name", "Bob"] + server)
        #expect(human.output.contains("export TRIBUTARY_TOKEN=trb_"))
        let asAda = ["TRIBUTARY_SERVER": engine.address, "TRIBUTARY_TOKEN": token]

        let created = try tributary(
            ["datanet", "create", "recipes", "--summary", "Soups", "--tag", "food", "--tag", "soup", "--license", "CC-BY-4.0", "--json"],
            environment: asAda)
        let datanet = try #require((try created.json() as? [String: Any])?["id"] as? Int, "\(created.errors)")
        #expect((try created.json() as? [String: Any])?["tags"] as? [String] == ["food", "soup"])

        let text = try tributary(["datanet", "contribute", "\(datanet)", "--text", "Leek soup: sweat the leeks.", "--json"], environment: asAda)
        let first = try #require(try text.json() as? [String: Any], "\(text.errors)")
        #expect(first["status"] as? String == "pending" && first["contributor"] as? Int == contributor)
        let pair = try tributary(["datanet", "contribute", "\(datanet)", "--prompt", "Soup?", "--completion", " Onion.", "--json"], environment: asAda)
        let pairID = try #require((try pair.json() as? [String: Any])?["id"] as? Int, "\(pair.errors)")

        // A file: two new records, the first one again (refused by the store), a line that is not a record.
        let file = try temporaryFile(
            "records.jsonl",
            contents: """
                {"text": "Tomato soup: roast the tomatoes."}
                {"prompt": "Best garnish?", "completion": " Chives."}

                {"text": "Leek soup: sweat the leeks."}
                {"prompt": "only half"}

                """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let batch = try tributary(["datanet", "contribute", "\(datanet)", "--file", file, "--json"], environment: asAda)
        #expect(batch.status == 1)
        #expect(batch.errors.contains("\(file):4: already_exists: duplicate content"))
        #expect(batch.errors.contains("\(file):5: a pair record needs both"))
        let report = try #require(try batch.json() as? [String: Any])
        let contributed = try #require(report["contributed"] as? [[String: Any]])
        #expect(contributed.map { $0["line"] as? Int } == [1, 2])
        #expect((report["failed"] as? [[String: Any]])?.map { $0["line"] as? Int } == [4, 5])
        let stopped = try tributary(["datanet", "contribute", "\(datanet)", "--file", file, "--stop-on-error"], environment: asAda)
        #expect(stopped.status == 1 && stopped.errors.contains("\(file):1: already_exists"))
        #expect(!stopped.errors.contains("\(file):2:"))

        let fileIDs = try contributed.map { try #require(($0["record"] as? [String: Any])?["id"] as? Int) }
        let recordIDs = [try #require(first["id"] as? Int), pairID] + fileIDs
        let records = try tributary(["datanet", "records", "\(datanet)", "--status", "pending", "--json"], environment: asAda)
        if !Self.notServedYet(records) {
            #expect((try records.json() as? [[String: Any]])?.compactMap { $0["id"] as? Int } == recordIDs)
        }
        let approved = try tributary(["datanet", "approve"] + recordIDs.map(String.init), environment: asAda)
        #expect(approved.status == 0, "\(approved.errors)")
        #expect(approved.output.split(separator: "\n").filter { $0.contains(" approved in datanet \(datanet)") }.count == 4)
        let again = try tributary(["datanet", "reject", "\(pairID)", "--note", "twice"], environment: asAda)
        #expect(again.status == 1 && again.errors.contains("record \(pairID): failed_precondition"))

        let published = try tributary(["datanet", "publish", "\(datanet)", "--json"], environment: asAda)
        let version = try #require(try published.json() as? [String: Any], "\(published.errors)")
        #expect(version["number"] as? Int == 1 && version["record_count"] as? Int == 4)

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cli-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let exportPath = folder.appendingPathComponent("recipes-v1.jsonl").path
        let export = try tributary(["datanet", "export", "\(datanet)", "1", "--out", exportPath], environment: asAda)
        if Self.notServedYet(export) {
            #expect(!FileManager.default.fileExists(atPath: exportPath) && !FileManager.default.fileExists(atPath: exportPath + ".partial"))
        } else {
            #expect(export.status == 0, "\(export.errors)")
            let store = try Store(directory: engine.data)
            let expected = try store.exportJSONL(DatanetVersionRef(datanet: DatanetID(Int64(datanet)), number: 1))
            #expect(FileManager.default.contents(atPath: exportPath) == expected)
        }

        let adapters = try tributary(["adapter", "list", "--json"] + server)
        #expect(try adapters.status == 0 && (adapters.json() as? [Any])?.isEmpty == true)

        let infer = try tributary(["infer", "--prompt", "Leek soup", "--max-tokens", "5", "--method", "off", "--json"] + server)
        #expect(infer.status == 0, "\(infer.errors)")
        let frames = try infer.jsonLines()
        #expect(frames.filter { $0["type"] as? String == "token" }.count == 5)
        let end = try #require(frames.last)
        #expect(end["type"] as? String == "infer_end" && end["completion_tokens"] as? Int == 5 && end["stop_reason"] as? String == "max_tokens")
        let humanInfer = try tributary(["infer", "--prompt", "Leek soup", "--max-tokens", "3"] + server)
        #expect(humanInfer.output.contains("0 completion tokens") == false && humanInfer.output.contains("3 completion tokens, stopped by max_tokens"))

        let balances = try tributary(["ledger", "balances", "--json"] + server)
        #expect(try balances.status == 0 && (balances.json() as? [Any]) != nil)
        let entries = try tributary(["ledger", "entries", "--limit", "10", "--json"] + server)
        #expect(try entries.status == 0 && (entries.json() as? [Any]) != nil)
        let verify = try tributary(["ledger", "verify", "--json"] + server)
        if !Self.notServedYet(verify) {
            #expect(try verify.status == 0 && (verify.json() as? [String: Any])?["broken"] is NSNull)
        }

        // Deposits: an operator's credits Ada once per key; Ada herself may not deposit.
        let treasurer = try Store(directory: engine.data).createContributor(displayName: "treasurer", role: .operator)
        let asTreasurer = ["TRIBUTARY_SERVER": engine.address, "TRIBUTARY_TOKEN": treasurer.token]
        let deposit = ["ledger", "deposit", "--contributor", "\(contributor)", "--amount", "5000", "--memo", "prepaid", "--idempotency-key", "cli-1"]
        let credited = try tributary(deposit + ["--json"], environment: asTreasurer)
        let receipt = try #require(try credited.json() as? [String: Any], "\(credited.errors)")
        #expect(receipt["balance"] as? Int == 5000 && receipt["replayed"] as? Bool == false && receipt["idempotency_key"] as? String == "cli-1")
        #expect((receipt["entry"] as? [String: Any])?["kind"] as? String == "deposit")
        let retried = try tributary(deposit, environment: asTreasurer)
        #expect(retried.status == 0 && retried.output.hasPrefix("already deposited (key cli-1): 5000 to contributor \(contributor)"), "\(retried.errors)")
        let refused = try tributary(deposit, environment: asAda)
        #expect(refused.status == 77 && refused.errors.contains("permission denied: deposit needs an operator: contributor \(contributor) is not one"), "\(refused.errors)")
        let adaBalance = try tributary(["ledger", "balances", "--contributor", "\(contributor)", "--json"] + server)
        #expect((try adaBalance.json() as? [[String: Any]])?.first?["amount"] as? Int == 5000)
    }

    @Test func aPrivateDatanetIsReadOnlyByThoseItsOwnerGrants() throws {
        let engine = try ServingEngine()
        defer { engine.stop() }
        let server = ["--server", engine.address]
        func signUp(_ name: String) throws -> (id: Int, environment: [String: String]) {
            let identity = try #require(try tributary(["signup", "--name", name, "--json"] + server).json() as? [String: Any])
            let token = try #require(identity["token"] as? String)
            return (try #require(identity["contributor"] as? Int), ["TRIBUTARY_SERVER": engine.address, "TRIBUTARY_TOKEN": token])
        }
        let (_, ada) = try signUp("Ada")
        let (bob, asBob) = try signUp("Bob")
        let created = try tributary(["datanet", "create", "diary", "--license", "proprietary", "--private", "--json"], environment: ada)
        let datanet = try #require((try created.json() as? [String: Any])?["id"] as? Int, "\(created.errors)")
        _ = try tributary(["datanet", "contribute", "\(datanet)", "--text", "Dear diary."], environment: ada)
        _ = try tributary(["datanet", "approve", "--all-pending", "\(datanet)"], environment: ada)
        #expect(try tributary(["datanet", "publish", "\(datanet)"], environment: ada).status == 0)

        let refused = try tributary(["datanet", "records", "\(datanet)", "--json"], environment: asBob)
        #expect(refused.status == 77 && refused.errors.contains("its owner grants read access"), "\(refused.errors)")
        let notTheirs = try tributary(["datanet", "grant", "\(datanet)", "--contributor", "\(bob)"], environment: asBob)
        #expect(notTheirs.status == 77, "\(notTheirs.errors)")

        let granted = try tributary(["datanet", "grant", "\(datanet)", "--contributor", "\(bob)", "--json"], environment: ada)
        let grants = try #require((try granted.json() as? [String: Any])?["grants"] as? [[String: Any]], "\(granted.errors)")
        #expect(grants.map { $0["grantee"] as? Int } == [bob])
        let read = try tributary(["datanet", "records", "\(datanet)", "--json"], environment: asBob)
        #expect(try read.status == 0 && (read.json() as? [Any])?.count == 1, "\(read.errors)")
        let revoked = try tributary(["datanet", "grant", "\(datanet)", "--contributor", "\(bob)", "--revoke"], environment: ada)
        #expect(revoked.status == 0 && revoked.output.contains("no read grants"), "\(revoked.output)")
        #expect(try tributary(["datanet", "records", "\(datanet)"], environment: asBob).status == 77)

        let penalties = try tributary(["penalties", "--contributor", "\(bob)", "--json"] + server)
        #expect(try penalties.status == 0 && (penalties.json() as? [Any])?.isEmpty == true, "\(penalties.errors)")
    }

    @Test func refusedTokensAndMissingServersGiveShortMessagesAndDistinctStatuses() throws {
        let engine = try ServingEngine()
        defer { engine.stop() }

        let anonymous = try tributary(["datanet", "create", "anything", "--license", "MIT", "--server", engine.address])
        #expect(anonymous.status == 77)
        #expect(anonymous.errors == "tributary: unauthenticated: set TRIBUTARY_TOKEN (tributary signup)\n")

        let wrong = try tributary(["datanet", "create", "anything", "--license", "MIT"], environment: ["TRIBUTARY_SERVER": engine.address, "TRIBUTARY_TOKEN": "trb_wrong"])
        #expect(wrong.status == 77)
        #expect(wrong.errors.hasPrefix("tributary: unauthenticated: the server refused the token"))
        #expect(wrong.errors.hasSuffix("set TRIBUTARY_TOKEN to a valid token (tributary signup)\n"))

        let missing = try tributary(["datanet", "publish", "999", "--server", engine.address, "--token", try signUp(engine)])
        #expect(missing.status == 65 && missing.errors.hasPrefix("tributary: not_found:"))

        // A port nothing listens on (an engine stopped right after it starts may miss SIGTERM: its handler is
        // installed after it prints its address).
        let nowhere = "127.0.0.1:1"
        let down = try tributary(["health", "--json"], environment: ["TRIBUTARY_SERVER": nowhere])
        #expect(down.status == 69)
        #expect(down.output.isEmpty)
        #expect(down.errors == "tributary: cannot connect to engine at \(nowhere): is `tributary-engine serve` running? (set TRIBUTARY_SERVER)\n")
        let coordinator = try tributary(["train", "status", "1", "--coordinator", nowhere])
        #expect(coordinator.status == 69 && coordinator.errors.contains("is `tributary-coordinator` running? (set TRIBUTARY_COORDINATOR)"))

        let badAddress = try tributary(["health", "--server", "localhost"])
        #expect(badAddress.status == 64 && badAddress.errors.contains("--server: \"localhost\" is not HOST:PORT"))
        let badMethod = try tributary(["infer", "--prompt", "x", "--method", "magic", "--server", engine.address])
        #expect(badMethod.status == 64 && badMethod.errors.contains("off, datainf, tracin, gradcos, fisher"))
        // The built-in base model has no chat template: a chat is refused, naming why; --system needs --chat.
        let chat = try tributary(["infer", "--chat", "--system", "s", "--prompt", "x", "--server", engine.address])
        #expect(chat.status != 0 && chat.errors.contains("failed_precondition") && chat.errors.contains("no chat template"), "\(chat.errors)")
        let systemAlone = try tributary(["infer", "--system", "s", "--prompt", "x", "--server", engine.address])
        #expect(systemAlone.status == 64 && systemAlone.errors.contains("--system is a chat message"))
        let noForm = try tributary(["datanet", "contribute", "1", "--server", engine.address])
        #expect(noForm.status == 64)
    }

    private func signUp(_ engine: ServingEngine) throws -> String {
        let run = try tributary(["signup", "--name", "Cy", "--json", "--server", engine.address])
        return try #require((try run.json() as? [String: Any])?["token"] as? String)
    }
}
