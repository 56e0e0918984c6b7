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
    /// index scored with `method`, the top `topRecords` listed.
    ///
    /// - Throws: ``JobRunError/invalidData(_:)`` when the adapter has no index yet.
    public func attribute(
        adapter: AdapterID, prompt: String, completion: [Int], method: ScorerKind, topRecords: Int
    ) throws -> OutputAttribution {
        guard let indexFolder = try store.adapter(adapter).gradientIndexLocation else {
            throw JobRunError.invalidData("\(adapter) has no gradient index: run an index job for it first")
        }
        let attributor = try Attributor(
            index: try GradientIndex(folder: indexFolder), model: generator.model,
            adapterFolder: (indexFolder as NSString).deletingLastPathComponent)
        let query = TrainingSequence(prompt: generator.promptPrefix + generator.tokenizer.promptTokens(prompt), completion: completion)
        var attribution = try attributor.attribute([query], method: method, topK: attributor.table.count)[0]
        // Every record's share goes to the fee split; the listing keeps the top ones.
        attribution.records = Array(attribution.records.prefix(topRecords))
        return attribution
    }

    /// Records the inference with its record shares (positive scores over the whole index) and, for a fee
    /// above 0, splits the fee on the ledger. A request id is recorded once: a retry is never paid twice.
    public func settle(
        requestID: String, adapter: AdapterID, prompt: String, output: String, completion: [Int], method: ScorerKind,
        fee: Int64
    ) throws -> (attribution: OutputAttribution, receipt: InferenceReceipt) {
        let full = try attribute(adapter: adapter, prompt: prompt, completion: completion, method: method, topRecords: .max)
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
                method: method.rawValue, fee: fee, recordShares: shares))
        return (full, receipt)
    }
}
