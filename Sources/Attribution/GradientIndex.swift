import Foundation
import LlamaModel
import TensorCore
import Training

/// A training record as the index lists it.
public struct IndexedRecord: Sendable, Equatable, Codable {
    public var id: String
    public var contributor: String
    public var datanet: String?
    public var datanetVersion: Int?
    /// Tokens its loss is the mean over.
    public var scoredTokens: Int

    enum CodingKeys: String, CodingKey {
        case id, contributor, datanet
        case datanetVersion = "datanet_version"
        case scoredTokens = "scored_tokens"
    }

    public init(_ record: TrainingRecord) {
        id = record.id
        contributor = record.contributor
        datanet = record.datanet
        datanetVersion = record.datanetVersion
        scoredTokens = record.sequence.labels.dropFirst().filter { $0 != TrainingSequence.ignoreIndex }.count
    }
}

/// `index.json`: everything about an index but its rows. See docs/ATTRIBUTION.md.
public struct IndexManifest: Sendable, Equatable, Codable {
    public struct Block: Sendable, Equatable, Codable {
        public var name: String
        public var shape: [Int]
        /// [begin, end) of the row's columns.
        public var columns: [Int]
        public var factoredShape: [Int]?

        enum CodingKeys: String, CodingKey {
            case name, shape, columns
            case factoredShape = "factored_shape"
        }

        init(_ block: GradientBlock) {
            name = block.name
            shape = block.shape
            columns = [block.columns.lowerBound, block.columns.upperBound]
            factoredShape = block.factoredShape
        }
    }

    /// A group of records appended together; `files[c]` holds their rows at checkpoint c.
    public struct Shard: Sendable, Equatable, Codable {
        public var firstRecord: Int
        public var count: Int
        public var files: [String]

        enum CodingKeys: String, CodingKey {
            case firstRecord = "first_record"
            case count, files
        }
    }

    public var format = "tributary.gradient-index"
    public var version = 1
    /// `AdapterCheckpoint.fingerprint` of the adapter folder the index was built from.
    public var adapterSHA256: String
    public var rank: Int
    public var alpha: Double
    public var useRSLoRA: Bool
    public var projection: ProjectionSpec
    public var width: Int
    public var blocks: [Block]
    public var checkpoints: [AdapterCheckpoint]
    public var shards: [Shard]
    public var records: [IndexedRecord]
    /// The model and adapter folders the index was built from, as absolute paths, so that scoring needs only
    /// the index folder. The adapter is still checked by its SHA-256 before any scoring.
    public var modelFolder: String?
    public var adapterFolder: String?

    enum CodingKeys: String, CodingKey {
        case format, version, rank, alpha, projection, width, blocks, checkpoints, shards, records
        case modelFolder = "model_folder", adapterFolder = "adapter_folder"
        case adapterSHA256 = "adapter_sha256"
        case useRSLoRA = "use_rslora"
    }
}

/// Where an index build or append stands.
public struct IndexProgress: Sendable {
    public var checkpoint: String
    /// Record gradients done, over all checkpoints, and to do.
    public var done: Int
    public var total: Int
    public var tokens: Int
}

/// The per-example (projected) gradients of a training set at one or more checkpoints of an adapter,
/// with its record table: a folder with `index.json` and one safetensors file per shard and checkpoint,
/// read through memory maps. Tied to the exact adapter files it was computed from.
public struct GradientIndex: Sendable {
    public let folder: String
    public private(set) var manifest: IndexManifest

    public var records: [IndexedRecord] { manifest.records }
    public var checkpoints: [AdapterCheckpoint] { manifest.checkpoints }
    public var learningRates: [Float] { manifest.checkpoints.map(\.learningRate) }
    /// The row's blocks, one per LoRA matrix, as `GradientLayout` gives them.
    public var blocks: [IndexManifest.Block] { manifest.blocks }
    public var blockColumns: [Range<Int>] { manifest.blocks.map { $0.columns[0]..<$0.columns[1] } }

    static let manifestName = "index.json"

    /// Opens the index in `folder`.
    public init(folder: String) throws(AttributionError) {
        self.folder = folder
        let path = "\(folder)/\(Self.manifestName)"
        do {
            manifest = try JSONDecoder().decode(IndexManifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .invalidIndex(path: folder, message: "cannot read \(Self.manifestName): \(error)")
        }
        guard manifest.format == "tributary.gradient-index", manifest.version == 1 else {
            throw .invalidIndex(path: folder, message: "\(Self.manifestName) is format \(manifest.format) version \(manifest.version), expected tributary.gradient-index version 1")
        }
    }

    /// Computes the gradients of `records` at the checkpoints of the adapter folder `adapterFolder` and
    /// writes a new index to `folder` (which must not hold one).
    public static func build(
        folder: String, model: LlamaModel, adapterFolder: String, records: [TrainingRecord],
        projection: ProjectionSpec, checkpoints selection: AdapterCheckpoint.Selection, tokensPerPass: Int = GradientExtractor.defaultTokensPerPass,
        concurrentPasses: Int = 1, modelFolder: String? = nil, progress: (IndexProgress) -> Void = { _ in }
    ) throws -> GradientIndex {
        guard !FileManager.default.fileExists(atPath: "\(folder)/\(manifestName)") else {
            throw AttributionError.invalidIndex(path: folder, message: "already holds an index; append to it instead")
        }
        let checkpoints = try AdapterCheckpoint.discover(in: adapterFolder, selection: selection)
        let adapter = try loadAdapter(checkpoints[0].path(in: adapterFolder), model: model)
        let layout = try GradientLayout(adapter: adapter, projection: projection)
        var index = GradientIndex(folder: folder, manifest: IndexManifest(
            adapterSHA256: try AdapterCheckpoint.fingerprint(folder: adapterFolder), rank: adapter.config.rank,
            alpha: adapter.config.alpha, useRSLoRA: adapter.config.useRSLoRA, projection: projection, width: layout.width,
            blocks: layout.blocks.map(IndexManifest.Block.init),
            checkpoints: checkpoints, shards: [], records: [],
            modelFolder: modelFolder.map(absolutePath), adapterFolder: absolutePath(adapterFolder)))
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw AttributionError.invalidIndex(path: folder, message: "cannot create folder: \(error.localizedDescription)")
        }
        try index.append(records: records, model: model, adapterFolder: adapterFolder, tokensPerPass: tokensPerPass,
                         concurrentPasses: concurrentPasses, progress: progress)
        return index
    }

    private init(folder: String, manifest: IndexManifest) {
        self.folder = folder
        self.manifest = manifest
    }

    /// Adds `records` (ids new to the index) as a new shard, computed at every checkpoint of the index
    /// from the adapter folder it was built from; refuses any other adapter.
    public mutating func append(
        records new: [TrainingRecord], model: LlamaModel, adapterFolder: String, tokensPerPass: Int = GradientExtractor.defaultTokensPerPass,
        concurrentPasses: Int = 1, progress: (IndexProgress) -> Void = { _ in }
    ) throws {
        try requireAdapter(adapterFolder)
        var seen = Set(manifest.records.map(\.id))
        for record in new where !seen.insert(record.id).inserted { throw AttributionError.duplicateRecord(id: record.id) }
        let shardNumber = manifest.shards.count
        var shard = IndexManifest.Shard(firstRecord: manifest.records.count, count: new.count, files: [])
        let sequences = new.map(\.sequence)
        let tokens = sequences.map(\.tokens.count)
        var tokensDone = 0
        for (position, checkpoint) in manifest.checkpoints.enumerated() {
            let path = checkpoint.path(in: adapterFolder)
            guard try AdapterCheckpoint.fingerprint(folder: path) == checkpoint.adapterSHA256 else {
                throw AttributionError.adapterMismatch(path: path, message: "is not checkpoint \(checkpoint.name) of the gradient index \(folder) (its adapter files changed)")
            }
            let adapter = try Self.loadAdapter(path, model: model)
            let extractor = GradientExtractor(
                model: model, adapter: adapter, layout: try GradientLayout(adapter: adapter, projection: manifest.projection),
                tokensPerPass: tokensPerPass, concurrentPasses: concurrentPasses)
            guard extractor.layout.blocks.map(IndexManifest.Block.init) == manifest.blocks else {
                throw AttributionError.adapterMismatch(path: path, message: "its LoRA matrices differ from the blocks of the gradient index \(folder)")
            }
            var counted = 0
            let rows = try extractor.rows(for: sequences) { done in
                tokensDone += tokens[counted..<done].reduce(0, +)
                counted = done
                progress(IndexProgress(checkpoint: checkpoint.name, done: position * new.count + done, total: manifest.checkpoints.count * new.count, tokens: tokensDone))
            }
            let file = String(format: "gradients-%05d-%@.safetensors", shardNumber, checkpoint.name == "." ? "adapter" : checkpoint.name)
            do {
                try SafeTensors.write(
                    [("gradients", rows)], metadata: ["checkpoint": checkpoint.name, "first_record": "\(shard.firstRecord)"],
                    to: "\(folder)/\(file)")
            } catch {
                throw AttributionError.invalidIndex(path: folder, message: error.description)
            }
            shard.files.append(file)
        }
        var updated = manifest
        updated.shards.append(shard)
        updated.records += new.map(IndexedRecord.init)
        try Self.write(updated, to: folder)
        manifest = updated
    }

    /// The rows of checkpoint `checkpoint`, [records.count, width]: the memory map itself when the
    /// index has one shard, a copy joining the shards otherwise.
    public func rows(checkpoint: Int) throws(AttributionError) -> Tensor {
        let shards = try shardRows(checkpoint: checkpoint)
        if shards.count == 1 { return shards[0] }
        return Tensor(shape: [records.count, manifest.width], scalars: shards.flatMap(\.scalars))
    }

    /// Each shard's rows of checkpoint `checkpoint`, memory-mapped, in record order.
    public func shardRows(checkpoint: Int) throws(AttributionError) -> [Tensor] {
        precondition(manifest.checkpoints.indices.contains(checkpoint), "checkpoint \(checkpoint) outside 0..<\(manifest.checkpoints.count)")
        var result: [Tensor] = []
        for shard in manifest.shards {
            let path = "\(folder)/\(shard.files[checkpoint])"
            let rows: Tensor
            do { rows = try SafeTensorsFile(path: path).tensor(named: "gradients") } catch {
                throw .invalidIndex(path: folder, message: error.description)
            }
            guard rows.shape == [shard.count, manifest.width] else {
                throw .invalidIndex(path: path, message: "\"gradients\" has shape \(rows.shape), expected \([shard.count, manifest.width])")
            }
            result.append(rows)
        }
        return result
    }

    /// Throws unless `adapterFolder` holds exactly the adapter the index was built from.
    public func requireAdapter(_ adapterFolder: String) throws(AttributionError) {
        let fingerprint = try AdapterCheckpoint.fingerprint(folder: adapterFolder)
        guard fingerprint == manifest.adapterSHA256 else {
            throw .adapterMismatch(path: adapterFolder, message: "is not the adapter the gradient index \(folder) was built from (adapter SHA-256 \(fingerprint), index \(manifest.adapterSHA256))")
        }
    }

    /// The position of the checkpoint whose adapter files `checkpointFolder` holds; throws for any other.
    public func checkpoint(matching checkpointFolder: String) throws(AttributionError) -> Int {
        let fingerprint = try AdapterCheckpoint.fingerprint(folder: checkpointFolder)
        guard let position = manifest.checkpoints.firstIndex(where: { $0.adapterSHA256 == fingerprint }) else {
            throw .adapterMismatch(path: checkpointFolder, message: "is none of the checkpoints of the gradient index \(folder) (\(manifest.checkpoints.map(\.name).joined(separator: ", ")))")
        }
        return position
    }

    /// The extractor for query gradients at checkpoint `checkpoint`, after checking `adapterFolder`:
    /// the same gradients and projection as the index rows.
    public func extractor(model: LlamaModel, adapterFolder: String, checkpoint: Int) throws -> GradientExtractor {
        try requireAdapter(adapterFolder)
        let checkpointFolder = manifest.checkpoints[checkpoint].path(in: adapterFolder)
        guard try self.checkpoint(matching: checkpointFolder) == checkpoint else {
            throw AttributionError.adapterMismatch(path: checkpointFolder, message: "does not hold checkpoint \(manifest.checkpoints[checkpoint].name) of the index")
        }
        let adapter = try Self.loadAdapter(checkpointFolder, model: model)
        return GradientExtractor(model: model, adapter: adapter, layout: try GradientLayout(adapter: adapter, projection: manifest.projection))
    }

    static func loadAdapter(_ folder: String, model: LlamaModel) throws(AttributionError) -> LoRAAdapter {
        do { return try LoRAAdapter(folder: folder, model: model.config) } catch {
            throw .invalidAdapter(path: folder, message: error.description)
        }
    }

    static func write(_ manifest: IndexManifest, to folder: String) throws(AttributionError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try encoder.encode(manifest).write(to: URL(fileURLWithPath: "\(folder)/\(manifestName)"), options: .atomic)
        } catch {
            throw .invalidIndex(path: folder, message: "cannot write \(manifestName): \(error.localizedDescription)")
        }
    }
}

/// `path` made absolute against the current directory.
func absolutePath(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.path
}
