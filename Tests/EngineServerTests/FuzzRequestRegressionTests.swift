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

        /// Found by fuzz-engine-requests (an `internal` error, not a crash): INFER takes any fee up to Int64.max,
        /// and the ledger's balances are SQLite sums, which overflow once paid fees add up past Int64.max. From
        /// then on LEDGER_BALANCES (all, or the protocol's or a contributor's) fails for everyone with
        /// "SQLite error 1: integer overflow" (its SQL in the message): any contributor can make the balances
        /// unreadable for good with a few paid inferences (here six of Int64.max; alice's share passes Int64.max).
        /// Left to the store's owners (Store/Ledger.swift, Inferences.swift: bound the fee, or sum without
        /// overflowing); this test fails once it is fixed, to be turned into a plain expectation then.
        @Test func largeFeesOverflowTheLedgerBalances() async throws {
            let harness = try await EngineRequestHarness.start()
            let paid = Wire.Infer(
                adapter: 1, prompt: "Whisk two", maxTokens: 2, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [],
                method: .datainf, topRecords: 1, fee: .max)
            let (answers, findings) = await harness.run(EngineRequestHarness.input(
                Array(repeating: FuzzRequest(.alice, .infer(paid)), count: 6) + [
                    FuzzRequest(.anonymous, .ledgerBalances(Wire.LedgerBalances(contributor: nil))),
                    FuzzRequest(.anonymous, .ledgerBalances(Wire.LedgerBalances(contributor: 2))),
                ]))
            #expect(findings.isEmpty)
            #expect(answers.prefix(6).allSatisfy { $0.replies.last == .rewardSplit }, "\(answers)")
            withKnownIssue("LEDGER_BALANCES fails with SQLite's integer overflow once paid fees pass Int64.max") {
                for answer in answers.dropFirst(6) {
                    #expect(answer.error == nil, "\(answer)")
                }
            }
            try await harness.stop()
        }

        /// Found by fuzz-engine-requests (regressions-requests/oversized-datanet-listing-on-narrow-connection, after
        /// the fuzzer had created datanets): replies are not kept within the client's max_frame_size, which
        /// PROTOCOL.md ("Limits") forbids; the client refuses the frame and its connection ends. Only EXPORT_CHUNK
        /// (cut) and ATTRIBUTION with all_scores (refused with too_large) respect it. Left to ProtocolServer's and
        /// EngineServer's owners (a Replier-wide check answering too_large, or paging); this test fails once it is
        /// fixed, to be turned into a plain expectation then.
        @Test func repliesOverTheClientsMaxFrameSizeBreakItsConnection() async throws {
            let harness = try await EngineRequestHarness.start()
            let long = String(repeating: "d", count: 5000)
            let (_, findings) = await harness.run(EngineRequestHarness.input([
                FuzzRequest(.alice, narrow: true, .datanetCreate(Wire.DatanetCreate(
                    name: "long", summary: "", description: long, tags: [], license: "MIT", visibility: .public))),
                FuzzRequest(.anonymous, narrow: true, .datanetList(Wire.DatanetList(datanet: nil, owner: nil))),
            ]))
            #expect(findings.allSatisfy { $0.knownIssue == EngineRequestHarness.oversizedReply }, "\(findings)")
            withKnownIssue("replies are not kept within the client's max_frame_size") {
                #expect(findings.isEmpty, "\(findings)")
            }
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
                // Known issues have tests of their own, below.
                #expect(findings.filter { $0.knownIssue == nil }.isEmpty, "\(name): \(findings)")
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
