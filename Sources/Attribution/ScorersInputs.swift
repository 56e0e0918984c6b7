import TensorCore

/// Bad input to the scorers, shares or curation, naming what is wrong.
public struct AttributionInputError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How the D gradient columns split into blocks, one per LoRA matrix (each lora_A and each lora_B
/// separately). The blocks partition `0..<width` in order; DataInf and projected Fisher work per block.
public struct GradientBlocks: Sendable, Equatable {
    public let ranges: [Range<Int>]

    /// Blocks that tile `0..<width` without gaps or overlaps, in column order.
    public init(_ ranges: [Range<Int>]) throws(AttributionInputError) {
        guard !ranges.isEmpty else { throw AttributionInputError("gradient blocks: no blocks given") }
        var next = 0
        for (index, range) in ranges.enumerated() {
            guard !range.isEmpty else { throw AttributionInputError("gradient block \(index) (\(range)) is empty") }
            guard range.lowerBound == next else {
                throw AttributionInputError(
                    "gradient block \(index) starts at column \(range.lowerBound), expected \(next): blocks must tile the columns in order")
            }
            next = range.upperBound
        }
        self.ranges = ranges
    }

    /// `count` blocks of `width` columns each.
    public init(uniform width: Int, count: Int) throws(AttributionInputError) {
        guard width > 0, count > 0 else { throw AttributionInputError("gradient blocks: \(count) blocks of width \(width)") }
        try self.init((0..<count).map { $0 * width..<($0 + 1) * width })
    }

    /// D, the total number of gradient columns.
    public var width: Int { ranges.last!.upperBound }
}

/// One checkpoint's gradient index: n training rows x D columns (float32; may be a memory-mapped
/// view with dense rows), their blocks, and the learning rate in effect at the checkpoint.
public struct CheckpointGradients: Sendable {
    public let rows: Tensor
    public let blocks: GradientBlocks
    public let learningRate: Float

    public init(rows: Tensor, blocks: GradientBlocks, learningRate: Float) throws(AttributionInputError) {
        guard rows.rank == 2 else { throw AttributionInputError("checkpoint gradients must be a matrix, got shape \(rows.shape)") }
        guard rows.shape[1] == blocks.width else {
            throw AttributionInputError("checkpoint gradients have \(rows.shape[1]) columns but the blocks cover \(blocks.width)")
        }
        guard rows.shape[0] > 0 else { throw AttributionInputError("checkpoint gradients hold no training rows") }
        guard learningRate.isFinite, learningRate > 0 else {
            throw AttributionInputError("checkpoint learning rate must be finite and positive, got \(learningRate)")
        }
        self.rows = rows.hasDenseRows ? rows : rows.contiguous()
        self.blocks = blocks
        self.learningRate = learningRate
    }

    /// n, the number of training records.
    public var recordCount: Int { rows.shape[0] }
}

/// One training record of the index, in row order: who contributed it, to which datanet version.
public struct RecordInfo: Sendable, Hashable, Codable {
    public var id: String
    public var contributor: String
    public var datanet: String
    public var datanetVersion: Int

    public init(id: String, contributor: String, datanet: String, datanetVersion: Int) {
        self.id = id
        self.contributor = contributor
        self.datanet = datanet
        self.datanetVersion = datanetVersion
    }

    enum CodingKeys: String, CodingKey {
        case id, contributor, datanet
        case datanetVersion = "datanet_version"
    }
}
