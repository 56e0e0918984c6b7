import Attribution
import Foundation
import LlamaModel
import Store
import Training

/// An inference's way from output to money: the output is attributed to the adapter's training records through
/// its gradient index, the inference and its record shares are recorded, and a paid inference's fee is split on
/// the ledger, all through the store.
public struct InferencePipeline: Sendable {
    public let store: Store
    public let generator: TextGenerator

    public init(store: Store, generator: TextGenerator) {
        self.store = store
        self.generator = generator
    }

    /// Who shaped `completion` (the generated token ids) after `prompt` on `adapter`: every record of its
    /// index scored with `method`, the top `topRecords` listed. `promptTokens`, when given, are the ids generation
    /// ran on (a rendered chat template's, which must not be encoded again with the tokenizer's own BOS).
    ///
    /// - Throws: ``JobRunError/invalidData(_:)`` when the adapter has no index yet.
    public func attribute(
        adapter: AdapterID, prompt: String, promptTokens: [Int]? = nil, completion: [Int], method: ScorerKind, topRecords: Int
    ) throws -> OutputAttribution {
        try scoredAttribution(
            adapter: adapter, prompt: prompt, promptTokens: promptTokens, completion: completion, method: method, topRecords: topRecords
        ).attribution
    }

    /// ``attribute(adapter:prompt:promptTokens:completion:method:topRecords:)`` with the score of every record of
    /// the index, in index rows (the training order).
    public func scoredAttribution(
        adapter: AdapterID, prompt: String, promptTokens: [Int]? = nil, completion: [Int], method: ScorerKind, topRecords: Int
    ) throws -> (attribution: OutputAttribution, scores: [Float]) {
        let attributor = try attributor(for: adapter)
        let promptIDs = promptTokens ?? generator.promptPrefix + generator.tokenizer.promptTokens(prompt)
        let query = TrainingSequence(prompt: promptIDs, completion: completion)
        let scores = try attributor.scorer(method).scores(queries: try attributor.queryGradients([query])).scalars
        // Every record's share goes to the fee split; the listing keeps the top ones.
        let attribution = try Shares.attribute(scores: scores, table: attributor.table, topK: attributor.table.count)
        return (attribution.listing(top: topRecords), scores)
    }

    /// The tokens `completion` adds after `prompt`, as generation would have produced them: the joint text's
    /// tokens after the prompt's own.
    ///
    /// - Throws: ``JobRunError/invalidData(_:)`` when the prompt's last token merges into the completion.
    public func completionTokens(prompt: String, completion: String) throws -> [Int] {
        let promptTokens = generator.tokenizer.promptTokens(prompt)
        let joint = generator.tokenizer.promptTokens(prompt + completion)
        guard joint.starts(with: promptTokens) else {
            throw JobRunError.invalidData("the prompt's last token merges with the completion: end the prompt at a token boundary")
        }
        return Array(joint.dropFirst(promptTokens.count))
    }

    /// Curation of the adapter's training records against the records of `evaluation`: each record's net
    /// influence on them, the harmful (negative) ones flagged in the report, nothing written.
    public func curate(adapter: AdapterID, evaluation: DatanetVersionRef, method: ScorerKind) throws -> CurationReport {
        let attributor = try attributor(for: adapter)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("curation-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let records = try store.trainingRecords(
            of: [evaluation], exportedTo: path, vocabularySize: generator.model.config.vocabularySize)
        guard !records.isEmpty else { throw JobRunError.invalidData("evaluation version \(evaluation) holds no records") }
        return try attributor.curate(validation: records.map(\.sequence), method: method)
    }

    /// The adapter's gradient index, opened for scoring.
    func attributor(for adapter: AdapterID) throws -> Attributor {
        guard let indexFolder = try store.adapter(adapter).gradientIndexLocation else {
            throw JobRunError.invalidData("\(adapter) has no gradient index: run an index job for it first")
        }
        return try Attributor(
            index: try GradientIndex(folder: indexFolder), model: generator.model,
            adapterFolder: (indexFolder as NSString).deletingLastPathComponent)
    }

    /// Records the inference with its record shares (positive scores over the whole index) and, for a fee
    /// above 0, debits it from `payer` and splits it on the ledger. A request id is recorded once, and so is a
    /// payer's idempotency key: a retry is never paid twice, and a retry under the same key gets the original
    /// inference and split back (``InferenceReceipt/isReplay``) while the attribution is this output's.
    /// `promptTokens` as for ``attribute(adapter:prompt:promptTokens:completion:method:topRecords:)``.
    public func settle(
        requestID: String, adapter: AdapterID, prompt: String, promptTokens: [Int]? = nil, output: String, completion: [Int],
        method: ScorerKind, fee: Int64, payer: ContributorID?, idempotencyKey: String? = nil
    ) throws -> (attribution: OutputAttribution, receipt: InferenceReceipt) {
        let full = try attribute(
            adapter: adapter, prompt: prompt, promptTokens: promptTokens, completion: completion, method: method, topRecords: .max)
        var shares: [RecordID: Double] = [:]
        for record in full.records where record.share > 0 {
            guard let id = Int64(record.record.id) else {
                throw JobRunError.invalidData("index record \(record.record.id) is not a store record id")
            }
            shares[RecordID(id)] = record.share
        }
        let receipt = try store.recordInference(
            NewInference(
                requestID: requestID, adapter: adapter, promptOutputHash: InferenceHash.of(prompt: prompt, output: output),
                method: method.rawValue, fee: fee, recordShares: shares, payer: payer, idempotencyKey: idempotencyKey))
        return (full, receipt)
    }
}

extension OutputAttribution {
    /// This attribution with only its `count` top and most negative records listed; the group shares stay whole.
    public func listing(top count: Int) -> OutputAttribution {
        var listed = self
        listed.records = Array(records.prefix(count))
        listed.opposingRecords = Array(opposingRecords.prefix(count))
        return listed
    }
}
