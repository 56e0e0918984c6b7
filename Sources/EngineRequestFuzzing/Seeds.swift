import WireProtocol

extension EngineRequestHarness {
    /// The seed corpus of `fuzz-engine-requests` (Fuzz/corpus-requests, written by
    /// `fuzz-engine-requests -write_seeds=FOLDER`): every request of the catalogue at least once, naming the
    /// objects ``start()`` creates, sent by a caller who may send it and, for the state-changing ones, by one who
    /// may not, so that the fuzzer starts from answers as well as refusals.
    public static var seeds: [(name: String, input: [UInt8])] {
        let pair = Wire.RecordContent.pair(Wire.PairRecord(prompt: Array("q: ".utf8), completion: Array("a".utf8)))
        let infer = Wire.Infer(
            adapter: 1, prompt: "Whisk two", maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], method: .off,
            topRecords: 0, fee: 0, idempotencyKey: "")
        var attributed = infer
        attributed.method = .datainf
        attributed.topRecords = 3
        var paid = attributed
        paid.fee = 10
        paid.method = .tracin
        var sampled = infer
        sampled.adapter = nil
        sampled.temperature = 0.8
        sampled.topK = 5
        sampled.topP = 0.9
        sampled.seed = 3
        sampled.stop = ["e"]
        sampled.maxTokens = 200
        let requests: [(String, [FuzzRequest])] = [
            ("health", [FuzzRequest(.anonymous, .health(Wire.Health()))]),
            ("stats", [FuzzRequest(.anonymous, .stats(Wire.Stats()))]),
            ("echo", [FuzzRequest(.anonymous, .echo(Wire.Echo(payload: [1, 2, 3])))]),
            ("sign-up", [FuzzRequest(.anonymous, .signUp(Wire.SignUp(displayName: "carol")))]),
            ("datanet-create", [FuzzRequest(.alice, .datanetCreate(Wire.DatanetCreate(
                name: "notes", summary: "s", description: "d", tags: ["t"], license: "MIT", visibility: .private)))]),
            ("contribute-text", [FuzzRequest(.alice, .contribute(Wire.Contribute(datanet: 1, content: .text(Wire.TextRecord(text: Array("Boil.".utf8))))))]),
            ("contribute-pair-private-refused", [FuzzRequest(.alice, .contribute(Wire.Contribute(datanet: 2, content: pair)))]),
            ("review-approve-pending", [FuzzRequest(.alice, .review(Wire.Review(record: 5, decision: .approve, note: nil)))]),
            ("review-by-other", [FuzzRequest(.bob, .review(Wire.Review(record: 5, decision: .reject, note: "no")))]),
            ("publish", [FuzzRequest(.alice, .publish(Wire.Publish(datanet: 1)))]),
            ("publish-by-operator", [FuzzRequest(.operator, .publish(Wire.Publish(datanet: 2)))]),
            ("export-public", [FuzzRequest(.anonymous, .export(Wire.Export(version: Wire.VersionRef(datanet: 1, number: 1))))]),
            ("export-private", [FuzzRequest(.alice, .export(Wire.Export(version: Wire.VersionRef(datanet: 2, number: 1))))]),
            ("datanet-list", [FuzzRequest(.anonymous, .datanetList(Wire.DatanetList(datanet: nil, owner: nil)))]),
            ("datanet-list-one", [FuzzRequest(.bob, .datanetList(Wire.DatanetList(datanet: 2, owner: 3)))]),
            ("record-list", [FuzzRequest(.alice, .recordList(Wire.RecordList(datanet: 1, status: .pending, after: 0, limit: 10)))]),
            ("adapter-list", [FuzzRequest(.anonymous, .adapterList(Wire.AdapterList(owner: nil)))]),
            ("adapter-load-unload", [
                FuzzRequest(.bob, .adapterLoad(Wire.AdapterLoad(adapter: 2))), FuzzRequest(.bob, .adapterUnload(Wire.AdapterUnload(adapter: 2))),
            ]),
            ("infer", [FuzzRequest(.anonymous, .infer(infer))]),
            ("infer-sampled-base", [FuzzRequest(.alice, .infer(sampled))]),
            ("infer-attributed", [FuzzRequest(.alice, .infer(attributed))]),
            ("infer-paid", [FuzzRequest(.alice, .infer(paid))]),
            ("attribute-text", [FuzzRequest(.alice, .attribute(Wire.Attribute(
                target: .text(Wire.TextTarget(adapter: 1, prompt: "Whisk two", completion: " eggs")), method: .gradcos,
                topRecords: 3, allScores: true)))]),
            ("attribute-inference", [FuzzRequest(.alice, .attribute(Wire.Attribute(
                target: .inference(Wire.InferenceTarget(requestId: "1")), method: .datainf, topRecords: 5, allScores: false)))]),
            ("curate", [FuzzRequest(.alice, .curate(Wire.Curate(
                adapter: 1, evaluation: Wire.VersionRef(datanet: 1, number: 1), method: .fisher, maxFlags: 4, points: 3,
                apply: false)))]),
            ("curate-apply", [FuzzRequest(.operator, .curate(Wire.Curate(
                adapter: 1, evaluation: Wire.VersionRef(datanet: 2, number: 1), method: .tracin, maxFlags: 2, points: 5,
                apply: true)))]),
            ("penalty-list", [FuzzRequest(.anonymous, .penaltyList(Wire.PenaltyList(contributor: nil, adapter: 1)))]),
            ("ledger-balances", [FuzzRequest(.anonymous, .ledgerBalances(Wire.LedgerBalances(contributor: nil)))]),
            ("ledger-balance-one", [FuzzRequest(.bob, .ledgerBalances(Wire.LedgerBalances(contributor: 3)))]),
            ("ledger-entries", [FuzzRequest(.anonymous, .ledgerEntries(Wire.LedgerEntries(afterSeq: 0, limit: 50, inference: nil)))]),
            ("ledger-entries-inference", [FuzzRequest(.alice, .ledgerEntries(Wire.LedgerEntries(afterSeq: 0, limit: 10, inference: 1)))]),
            ("ledger-verify", [FuzzRequest(.anonymous, .ledgerVerify(Wire.LedgerVerify(anchors: [Wire.LedgerHead(seq: 1, hash: [UInt8](repeating: 0, count: 32))])))]),
            ("datanet-grant", [FuzzRequest(.bob, .datanetGrant(Wire.DatanetGrant(datanet: 2, grantee: 2, grant: false)))]),
            ("datanet-grant-refused", [FuzzRequest(.alice, .datanetGrant(Wire.DatanetGrant(datanet: 2, grantee: 2, grant: true)))]),
            ("coordinator-request", [FuzzRequest(.operator, .jobStatus(Wire.JobStatus(job: 1)))]),
            ("narrow-export", [FuzzRequest(.anonymous, narrow: true, .export(Wire.Export(version: Wire.VersionRef(datanet: 1, number: 1))))]),
            ("narrow-infer", [FuzzRequest(.anonymous, narrow: true, .infer(sampled))]),
            ("narrow-attribute-all-scores", [FuzzRequest(.alice, narrow: true, .attribute(Wire.Attribute(
                target: .text(Wire.TextTarget(adapter: 1, prompt: "Rain", completion: " tomorrow")), method: .tracin,
                topRecords: 8, allScores: true)))]),
            ("concurrent-infers-and-unload", [
                FuzzRequest(.bob, .adapterLoad(Wire.AdapterLoad(adapter: 2))),
                FuzzRequest(.alice, .infer(attributed)), FuzzRequest(.bob, concurrent: true, .infer(sampled)),
                FuzzRequest(.operator, concurrent: true, .adapterUnload(Wire.AdapterUnload(adapter: 1))),
                FuzzRequest(.anonymous, concurrent: true, .stats(Wire.Stats())),
            ]),
            ("cancelled-infer", [FuzzRequest(.alice, cancelled: true, .infer(paid))]),
            ("cancelled-curate", [FuzzRequest(.alice, concurrent: true, cancelled: true, .curate(Wire.Curate(
                adapter: 1, evaluation: Wire.VersionRef(datanet: 1, number: 1), method: .datainf, maxFlags: 4, points: 3,
                apply: true)))]),
            ("mixed", [
                FuzzRequest(.alice, .contribute(Wire.Contribute(datanet: 1, content: pair))),
                FuzzRequest(.alice, .review(Wire.Review(record: 11, decision: .approve, note: nil))),
                FuzzRequest(.alice, .publish(Wire.Publish(datanet: 1))),
                FuzzRequest(.anonymous, .export(Wire.Export(version: Wire.VersionRef(datanet: 1, number: 2)))),
            ]),
        ]
        return requests.map { ($0.0, input($0.1)) }
    }
}
