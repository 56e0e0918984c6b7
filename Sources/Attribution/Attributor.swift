import LlamaModel
import TensorCore
import Training

/// Attributes model outputs to the records of a gradient index. Query gradients are computed exactly as the
/// index rows were: the same adapter checkpoints, projection and loss (mean cross-entropy over the output's
/// tokens), so a query scores against the index in the index's own units.
public struct Attributor: Sendable {
    public let index: GradientIndex
    /// The index's record table, row by row.
    public let table: RecordTable
    let extractors: [GradientExtractor]
    let checkpoints: [CheckpointGradients]
    /// What scoring may allocate beyond the memory-mapped rows: every scorer is estimated against it first.
    public let memoryLimit: MemoryBudget

    /// Opens `index` for scoring with `model` and the adapter folder it was built from (refused otherwise).
    public init(index: GradientIndex, model: LlamaModel, adapterFolder: String, memoryLimit: MemoryBudget = .physicalDefault) throws {
        try index.requireAdapter(adapterFolder)
        let blocks = try GradientBlocks(index.blockColumns)
        // An index of several shards is joined into one copy of its rows per checkpoint.
        if index.manifest.shards.count > 1 {
            let bytes = 4 * Double(index.records.count) * Double(index.manifest.width) * Double(index.checkpoints.count)
            guard bytes <= Double(memoryLimit.bytes) else {
                throw AttributionInputError(
                    "the index's \(index.manifest.shards.count) shards are joined in memory for scoring: \(MemoryBudget.format(bytes)), over the memory limit of \(memoryLimit) (--memory-limit-mib); build the index with a projection (`tributary-engine index --projection factored --dim N`) to make its rows narrower")
            }
        }
        var extractors: [GradientExtractor] = []
        var checkpoints: [CheckpointGradients] = []
        for position in index.checkpoints.indices {
            extractors.append(try index.extractor(model: model, adapterFolder: adapterFolder, checkpoint: position))
            checkpoints.append(try CheckpointGradients(
                rows: try index.rows(checkpoint: position), blocks: blocks, learningRate: index.learningRates[position]))
        }
        self.index = index
        self.memoryLimit = memoryLimit
        self.extractors = extractors
        self.checkpoints = checkpoints
        table = RecordTable(index.records.map(RecordInfo.init))
    }

    /// The gradients of `outputs` at each checkpoint of the index: q x D per checkpoint.
    public func queryGradients(_ outputs: [TrainingSequence]) throws -> [Tensor] {
        for (position, output) in outputs.enumerated() where !output.labels.dropFirst().contains(where: { $0 != TrainingSequence.ignoreIndex }) {
            throw AttributionInputError("output \(position) scores no tokens: give it a non-empty completion")
        }
        return try extractors.map { try $0.rows(for: outputs) }
    }

    /// A scorer over the index with every query-independent term computed; refused when its matrices would not fit
    /// `memoryLimit`.
    public func scorer(_ kind: ScorerKind, damping: Float = 0.1) throws -> AttributionScorer {
        try AttributionScorer(kind: kind, checkpoints: checkpoints, damping: damping, memoryLimit: memoryLimit)
    }

    /// Who shaped each output: its top-K records, and the contributor and datanet shares.
    public func attribute(_ outputs: [TrainingSequence], method: ScorerKind, topK: Int) throws -> [OutputAttribution] {
        let scores = try scorer(method).scores(queries: try queryGradients(outputs))
        return try Shares.attribute(scores: scores, table: table, topK: topK)
    }

    /// Ranks the index's records by self-influence and by influence on `validation`, flagging harmful ones.
    public func curate(
        validation: [TrainingSequence], method: ScorerKind, aggregation: ValidationAggregation = .mean,
        harmfulThreshold: Float = 0
    ) throws -> CurationReport {
        try Curation.curate(
            scorer: try scorer(method), validation: try queryGradients(validation), table: table,
            aggregation: aggregation, harmfulThreshold: harmfulThreshold)
    }
}

extension RecordInfo {
    /// Records indexed without a datanet are grouped under `unassigned`, version 0.
    public init(_ record: IndexedRecord) {
        self.init(
            id: record.id, contributor: record.contributor, datanet: record.datanet ?? "unassigned",
            datanetVersion: record.datanetVersion ?? 0)
    }
}
