import EngineRequestFuzzing
import Foundation
import Testing
import WireProtocol

/// Fuzz/regressions-requests (inputs with which `fuzz-engine-requests` crashed the engine, kept after the fix)
/// and its seed corpus, through the fuzz target's own harness: a real server on a fresh store, each input's
/// requests sent as their callers. A handler that crashes ends this test process; what a client sees wrong
/// (a hang, a reply that does not decode, a connection closed under a well-formed request) fails the test.
/// The harness trains two tiny adapters: it runs with the suites that train in this process.
extension ProcessWideSuites {
    @Suite("Engine request fuzz regressions and corpus") struct FuzzRequestRegressionTests {
        static let fuzzFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fuzz").standardized

        static func files(in folder: String) -> [URL] {
            let url = fuzzFolder.appendingPathComponent(folder)
            return ((try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? [])
                .filter { !$0.lastPathComponent.hasPrefix(".") }
                .sorted { $0.path < $1.path }
        }

        @Test func theCommittedCorpusIsTheHarnessSeeds() throws {
            let committed = Self.files(in: "corpus-requests")
            let seeds = EngineRequestHarness.seeds
            #expect(committed.map(\.lastPathComponent) == seeds.map(\.name).sorted())
            for (name, input) in seeds {
                let file = Self.fuzzFolder.appendingPathComponent("corpus-requests/\(name)")
                #expect((try? Data(contentsOf: file)) == Data(input), "\(name): run fuzz-engine-requests -write_seeds=Fuzz/corpus-requests")
            }
        }

        @Test func everySeedIsReadBackAsRequests() {
            for (name, input) in EngineRequestHarness.seeds {
                let requests = EngineRequestHarness.requests(in: input)
                #expect(!requests.isEmpty, "\(name)")
                #expect(requests.allSatisfy { $0.message.type.direction == .request }, "\(name)")
            }
        }

        /// Found by fuzz-engine-requests: INFER took any fee up to Int64.max and the ledger's balances were SQLite
        /// sums, so six paid inferences of Int64.max made LEDGER_BALANCES fail for everyone with SQLite's integer
        /// overflow. Fees are now bounded (10^15 micro-units) and paid from the caller's account: such an inference
        /// is refused before any token, and the balances stay readable.
        @Test func largeFeesAreRefusedAndTheBalancesStayReadable() async throws {
            let harness = try await EngineRequestHarness.start()
            let paid = Wire.Infer(
                adapter: 1, prompt: "Whisk two", maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [],
                method: .datainf, topRecords: 1, fee: .max, idempotencyKey: "")
            let (answers, findings) = await harness.run(EngineRequestHarness.input(
                Array(repeating: FuzzRequest(.alice, .infer(paid)), count: 6) + [
                    FuzzRequest(.anonymous, .ledgerBalances(Wire.LedgerBalances(contributor: nil))),
                    FuzzRequest(.anonymous, .ledgerBalances(Wire.LedgerBalances(contributor: 2))),
                ]))
            #expect(findings.isEmpty, "\(findings)")
            #expect(answers.prefix(6).allSatisfy { $0.error?.errorCode == .invalidArgument }, "\(answers)")
            #expect(answers.dropFirst(6).allSatisfy { $0.error == nil && $0.replies.last == .balances }, "\(answers)")
            try await harness.stop()
        }

        /// Found by fuzz-engine-requests (regressions-requests/oversized-datanet-listing-on-narrow-connection): a
        /// reply over the client's max_frame_size broke its connection. Such a reply now goes out as `too_large` on
        /// its request, and the connection goes on.
        @Test func repliesOverTheClientsMaxFrameSizeAreTooLarge() async throws {
            let harness = try await EngineRequestHarness.start()
            let long = String(repeating: "d", count: 5000)
            let (answers, findings) = await harness.run(EngineRequestHarness.input([
                FuzzRequest(.alice, narrow: true, .datanetCreate(Wire.DatanetCreate(
                    name: "long", summary: "", description: long, tags: [], license: "MIT", visibility: .public))),
                FuzzRequest(.anonymous, narrow: true, .datanetList(Wire.DatanetList(datanet: nil, owner: nil))),
                FuzzRequest(.anonymous, narrow: true, .health(Wire.Health())),
            ]))
            #expect(findings.isEmpty, "\(findings)")
            #expect(answers.prefix(2).allSatisfy { $0.error?.errorCode == .tooLarge }, "\(answers)")
            #expect(answers.last?.replies.last == .healthStatus, "\(answers)")
            try await harness.stop()
        }

        @Test func regressionsAndSeedsRunWithoutFindings() async throws {
            let harness = try await EngineRequestHarness.start()
            var inputs = EngineRequestHarness.seeds
            for url in Self.files(in: "regressions-requests") {
                inputs.append((url.lastPathComponent, Array(try Data(contentsOf: url))))
            }
            var answers: [String: [EngineRequestHarness.Answer]] = [:]
            for (name, input) in inputs {
                let (answered, findings) = await harness.run(input)
                #expect(findings.isEmpty, "\(name): \(findings)")
                answers[name] = answered
            }
            // The seeds reach real objects and real work, not only refusals: their last replies.
            let expected: [String: MessageType] = [
                "infer": .inferEnd, "infer-attributed": .attribution, "infer-paid": .rewardSplit,
                "attribute-text": .attribution, "attribute-inference": .attribution, "curate": .curationReport,
                "curate-apply": .curationReport, "export-private": .exportEnd, "record-list": .recordListing,
                "adapter-load-unload": .adapterState, "publish": .versionInfo, "datanet-grant": .datanetGrants,
                "ledger-entries-inference": .ledgerPage, "narrow-export": .exportEnd, "narrow-infer": .inferEnd,
            ]
            for (name, last) in expected {
                #expect(answers[name]?.last?.replies.last == last, "\(name): \(answers[name] ?? [])")
            }
            #expect(answers["datanet-grant-refused"]?.last?.error?.errorCode == .permissionDenied)
            try await harness.stop()
        }
    }
}
