import ClientCommands
import Crypto
import Foundation
import Testing
import TensorCore
@testable import TributaryClient
import WireProtocol

/// The client's logic on hand-built catalogue values: no server needed.
@Suite struct ClientCommandsTests {
    static let attribution = Wire.Attribution(
        method: .datainf, inference: 42,
        top: [
            Wire.ScoredRecord(record: 7, contributor: 3, datanet: 1, score: 0.25),
            Wire.ScoredRecord(record: 9, contributor: 4, datanet: 2, score: 0.125),
        ],
        negative: [Wire.ScoredRecord(record: 11, contributor: 4, datanet: 2, score: -0.5)],
        contributors: [Wire.ContributorWeight(contributor: 3, share: 0.625), Wire.ContributorWeight(contributor: 4, share: 0.375)],
        datanets: [Wire.DatanetWeight(datanet: 1, share: 0.625), Wire.DatanetWeight(datanet: 2, share: 0.375)], allScores: nil)

    static let split = Wire.RewardSplit(
        inference: 42, fee: 1000, contributorPool: 700, owner: 200, protocolShare: 100, forfeited: 70,
        payouts: [
            Wire.ContributorPayout(contributor: 3, share: 0.625, gross: 437, paid: 437, penaltyPoints: 0),
            Wire.ContributorPayout(contributor: 4, share: 0.375, gross: 263, paid: 193, penaltyPoints: 2),
        ],
        ledgerHead: Wire.LedgerHead(seq: 17, hash: [0xAB, 0xCD, 0x01]))

    @Test func catalogueValuesBecomeJSONAsTheVectorsSpellThem() throws {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(WireJSON.line(Self.attribution).utf8)) as? [String: Any])
        #expect(json["method"] as? String == "datainf")
        #expect(json["inference"] as? Int == 42)
        #expect(json["all_scores"] is NSNull)
        let top = try #require(json["top"] as? [[String: Any]])
        #expect(top.map { $0["record"] as? Int } == [7, 9] && top[0]["score"] as? Double == 0.25)

        let end = try #require(
            try JSONSerialization.jsonObject(with: Data(WireJSON.event(.inferEnd(Wire.InferEnd(
                stopReason: .stopToken, promptTokens: 3, completionTokens: 4, promptUs: 10, generationUs: 20))).utf8)) as? [String: Any])
        #expect(end["type"] as? String == "infer_end" && end["stop_reason"] as? String == "stop_token" && end["prompt_us"] as? Int == 10)

        let spec = Wire.JobSpec.index(Wire.IndexSpec(adapter: 5, method: .tracin, projectionDim: 64))
        let union = try #require(try JSONSerialization.jsonObject(with: Data(WireJSON.line(spec).utf8)) as? [String: Any])
        #expect(union["arm"] as? String == "index" && union["projection_dim"] as? Int == 64 && union["method"] as? String == "tracin")

        let head = try #require(try JSONSerialization.jsonObject(with: Data(WireJSON.line(Self.split.ledgerHead).utf8)) as? [String: Any])
        #expect(head["hash"] as? String == "abcd01")
        let loss = WireJSON.line(Wire.JobEvent(job: 1, seq: 2, kind: .progress, timeMs: 0, step: 3, loss: 0.1, checkpoint: nil, message: ""))
        #expect(loss.contains("\"loss\":0.1,") && loss.contains("\"checkpoint\":null"))
        // Empty lists stay lists, whatever their element type; only bytes become hex.
        #expect(WireJSON.line([Wire.Adapter]()) == "[]")
        #expect(WireJSON.line(Wire.LedgerHead(seq: 1, hash: [])) == #"{"hash":"","seq":1}"#)
    }

    @Test func catalogueNamesParseAndListTheAlternatives() throws {
        #expect(Wire.AttributionMethod(catalogueName: "gradcos") == .gradcos)
        #expect(Wire.StopReason.contextFull.catalogueName == "context_full")
        #expect(Wire.Visibility.private.catalogueName == "private")
        #expect(throws: ClientFailure(.usage, "--status: \"done\" is not one of pending, approved, rejected")) {
            try catalogueValue("done", of: Wire.RecordStatus.self, option: "--status")
        }
        #expect(try Wire.VersionRef(parsing: "4:2") == Wire.VersionRef(datanet: 4, number: 2))
        for bad in ["4", "4:", ":2", "4:0", "x:1", "4:2:1"] {
            #expect(throws: ClientFailure.self) { try Wire.VersionRef(parsing: bad) }
        }
    }

    @Test func addressesAndTokensComeFromFlagsThenEnvironmentThenDefaults() throws {
        let defaults = try ClientSettings.resolve(server: nil, coordinator: nil, token: nil, environment: [:])
        #expect(defaults == ClientSettings(server: ServerAddress(host: "127.0.0.1", port: 7070), coordinator: ServerAddress(host: "127.0.0.1", port: 7080), token: ""))
        let environment = ["TRIBUTARY_SERVER": "engine.local:9000", "TRIBUTARY_COORDINATOR": "[::1]:9001", "TRIBUTARY_TOKEN": "trb_env"]
        let fromEnvironment = try ClientSettings.resolve(server: nil, coordinator: nil, token: nil, environment: environment)
        #expect(fromEnvironment.server == ServerAddress(host: "engine.local", port: 9000))
        #expect(fromEnvironment.coordinator == ServerAddress(host: "::1", port: 9001) && fromEnvironment.coordinator.description == "[::1]:9001")
        #expect(fromEnvironment.token == "trb_env")
        let fromFlags = try ClientSettings.resolve(server: "a:1", coordinator: "b:2", token: "trb_flag", environment: environment)
        #expect(fromFlags == ClientSettings(server: ServerAddress(host: "a", port: 1), coordinator: ServerAddress(host: "b", port: 2), token: "trb_flag"))
        #expect(throws: ClientFailure(.usage, "TRIBUTARY_SERVER: \"engine\" is not HOST:PORT (e.g. 127.0.0.1:7070)")) {
            try ClientSettings.resolve(server: nil, coordinator: nil, token: nil, environment: ["TRIBUTARY_SERVER": "engine"])
        }
        #expect(throws: ClientFailure.self) { try ServerAddress(parsing: "host:70000", source: "--server") }
    }

    @Test func serverErrorsBecomeWhatFailedAndWhatToDo() {
        let engine = ServerAddress(host: "127.0.0.1", port: 7070)
        func explain(_ code: ErrorCode, _ message: String = "m", retryAfter: UInt32 = 0, token: Bool = false) -> ClientFailure {
            ClientFailure.explaining(
                ServerError(code: code.rawValue, retryAfterMs: retryAfter, message: message), role: .engine, address: engine, hadToken: token)
        }
        #expect(explain(.unauthenticated) == ClientFailure(.permission, "unauthenticated: set TRIBUTARY_TOKEN (tributary signup)"))
        #expect(explain(.unauthenticated, token: true).message.contains("refused the token"))
        #expect(explain(.permissionDenied, "not the owner") == ClientFailure(.permission, "permission denied: not the owner"))
        #expect(explain(.notFound, "no datanet 9") == ClientFailure(.refused, "not_found: no datanet 9"))
        #expect(explain(.overloaded, "queue full", retryAfter: 250) == ClientFailure(.temporary, "overloaded: queue full; try again in 250 ms"))
        #expect(explain(.invalidMessage).kind == .protocolError)
        let lost = ClientFailure.explaining(ConnectionError.closed, role: .coordinator, address: engine, hadToken: false)
        #expect(lost.kind == .connection && lost.message.hasPrefix("lost the connection to coordinator at 127.0.0.1:7070"))
        struct Refused: Error {}
        #expect(
            ClientFailure.explaining(Refused(), role: .coordinator, address: ServerAddress(host: "h", port: 1), hadToken: false)
                == ClientFailure(.connection, "cannot connect to coordinator at h:1: is `tributary-coordinator` running? (set TRIBUTARY_COORDINATOR)"))
    }

    @Test func contributionFilesKeepEveryLineWithItsNumber() throws {
        let file = ContributionFile(
            path: "r.jsonl",
            data: Data(
                """
                {"id": "a", "text": "one"}

                {"prompt": "p", "completion": "c", "contributor": "x"}
                [1, 2]
                {"text": 3}
                {"text": "t", "prompt": "p", "completion": "c"}
                {"completion": "c"}
                {"id": "nothing"}
                """.utf8))
        #expect(file.lines.map(\.number) == [1, 3, 4, 5, 6, 7, 8])
        #expect(try file.lines[0].content.get() == .text(Wire.TextRecord(text: Array("one".utf8))))
        #expect(try file.lines[1].content.get() == .pair(Wire.PairRecord(prompt: Array("p".utf8), completion: Array("c".utf8))))
        let reasons = file.lines.dropFirst(2).map { line -> String in
            if case .failure(let invalid) = line.content { return invalid.reason }
            return "accepted"
        }
        #expect(
            reasons == [
                "not a JSON object", "\"text\" is not a string", "give either \"text\" or \"prompt\" and \"completion\", not both",
                "a pair record needs both \"prompt\" and \"completion\"", "no \"text\", or \"prompt\" and \"completion\"",
            ])
        #expect(file.location(7) == "r.jsonl:7")
        #expect(throws: ClientFailure.self) { try ContributionFile(path: "/nonexistent/records.jsonl") }
    }

    @Test func exportsAreCheckedAgainstTheirAnnouncedLengthAndHash() throws {
        var random = SeededRandom(seed: 7)
        let chunks = (0..<5).map { _ in (0..<Int.random(in: 1...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) } }
        let whole = chunks.flatMap { $0 }
        let end = Wire.ExportEnd(records: 5, bytes: UInt64(whole.count), sha256: Array(SHA256.hash(data: whole)))
        var verifier = ExportVerifier()
        chunks.forEach { verifier.add($0) }
        try verifier.verify(end)

        var damaged = ExportVerifier()
        chunks.dropLast().forEach { damaged.add($0) }
        var flipped = chunks.last!
        flipped[0] ^= 1
        damaged.add(flipped)
        #expect(throws: ClientFailure.self) { try damaged.verify(end) }
        var short = ExportVerifier()
        chunks.dropLast().forEach { short.add($0) }
        #expect { try short.verify(end) } throws: { ($0 as? ClientFailure)?.message.contains("received") == true }
    }

    @Test func humanTextShowsSharesAsPercentagesAndFlagsBrokenLedgers() {
        let attribution = HumanText.attribution(Self.attribution)
        #expect(attribution.hasPrefix("attribution (datainf), inference 42"))
        #expect(attribution.contains("contributors  3 62.5%, 4 37.5%"))
        #expect(attribution.contains("most negative records"))
        let lines = attribution.split(separator: "\n")
        #expect(lines.contains { $0.contains("7") && $0.contains("0.25") })

        let split = HumanText.rewardSplit(Self.split)
        #expect(split.hasPrefix("reward split of inference 42: fee 1000 = contributors 700 + owner 200 + protocol 100 (70 forfeited by penalties)"))
        #expect(split.contains("ledger head 17 abcd01"))

        let intact = Wire.LedgerVerification(
            checked: 12, head: Wire.LedgerHead(seq: 12, hash: [1]), broken: nil, deposits: 5_000, balances: 5_000)
        #expect(HumanText.verification(intact) == "ledger intact: 12 entries checked, head 12 01; balances 5000, deposits 5000")
        let broken = Wire.LedgerVerification(
            checked: 5, head: nil, broken: Wire.LedgerBreak(kind: .hashMismatch, seq: 4, found: 4, reason: "hash differs"),
            deposits: 0, balances: 0)
        #expect(HumanText.verification(broken) == "ledger BROKEN at entry 4 (hash_mismatch): hash differs; 5 entries checked")

        let job = Wire.Job(id: 8, kind: .train, state: .running, step: 30, totalSteps: 100, adapter: nil, engine: "e1", createdAtMs: 0, message: "")
        #expect(HumanText.job(job) == "job 8 train running, step 30/100, on e1")
        let event = Wire.JobEvent(job: 8, seq: 5, kind: .progress, timeMs: 0, step: 30, loss: 1.5, checkpoint: nil, message: "")
        #expect(HumanText.jobEvent(event, totalSteps: 100) == "job 8 #5 progress step 30/100 loss 1.5000")
        let failed = Wire.JobEvent(job: 8, seq: 9, kind: .failed, timeMs: 0, step: 0, loss: nil, checkpoint: nil, message: "out of memory")
        #expect(HumanText.jobEvent(failed, totalSteps: 100) == "job 8 #9 failed: out of memory")
        #expect(Wire.JobEventKind.allCases.filter(\.isFinal) == [.done, .failed, .cancelled])

        let report = Wire.CurationReport(evaluated: 20, applied: false, flagged: [Wire.FlaggedRecord(record: 3, contributor: 2, score: -0.75, reason: "harmful")])
        #expect(HumanText.curation(report).hasPrefix("20 training records scored; 1 flagged (dry run: nothing applied)"))
        #expect(HumanText.balances([Wire.Balance(contributor: nil, amount: 5), Wire.Balance(contributor: 3, amount: 7)])
            == "account        balance\nprotocol       5\ncontributor 3  7")
    }

    @Test func inferenceStreamsCollectAndPrintEveryFrame() {
        let frames: [Message] = [
            .token(Wire.Token(index: 0, token: 72, text: "He")),
            .token(Wire.Token(index: 1, token: UInt32.max, text: "llo")),
            .inferEnd(Wire.InferEnd(stopReason: .maxTokens, promptTokens: 3, completionTokens: 2, promptUs: 1000, generationUs: 500_000)),
            .attribution(Self.attribution),
            .rewardSplit(Self.split),
        ]
        var result = InferenceResult()
        let taken = frames.map { result.take($0) }
        #expect(taken.allSatisfy { $0 })
        #expect(result.text == "Hello" && result.end?.completionTokens == 2 && result.attribution == Self.attribution && result.rewardSplit == Self.split)
        let takesOthers = result.take(.health(Wire.Health()))
        #expect(!takesOthers)

        let printed = frames.map(HumanText.inferenceFrame).joined()
        #expect(printed.hasPrefix("Hello\n\n3 prompt + 2 completion tokens, stopped by max_tokens (prompt 0.001 s, generation 0.500 s, 4.0 tokens/s)\n"))
        #expect(printed.contains("\nattribution (datainf), inference 42\n") && printed.hasSuffix("ledger head 17 abcd01\n"))
        let types = frames.map { frame in
            ((try? JSONSerialization.jsonObject(with: Data(WireJSON.event(frame).utf8))) as? [String: Any])?["type"] as? String
        }
        #expect(types == ["token", "token", "infer_end", "attribution", "reward_split"])
    }

    @Test func progressBarsFillInProportion() {
        #expect(ProgressBar.line(done: 3, total: 6, detail: "loss 1.0", width: 4) == "██·· 3/6  loss 1.0")
        #expect(ProgressBar.line(done: 9, total: 6, detail: "", width: 4) == "████ 9/6")
        #expect(ProgressBar.line(done: 2, total: 0, detail: "", width: 2) == "·· 2")
    }

    @Test func plainProgressLinesKeepTheFirstEveryTwentiethAndTheLastStep() {
        #expect((1...150).filter { HumanText.isMilestone(step: UInt64($0), of: 150) } == [1] + Array(stride(from: 7, through: 147, by: 7)) + [150])
        #expect((1...5).allSatisfy { HumanText.isMilestone(step: UInt64($0), of: 5) })
        #expect(HumanText.isMilestone(step: 37, of: 0), "an unknown total shows every step")
    }
}
