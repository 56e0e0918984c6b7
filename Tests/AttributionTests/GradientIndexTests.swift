import Foundation
import LlamaModel
import TensorCore
import Testing
import Training
@testable import Attribution

/// Trains a small adapter for 3 steps with a checkpoint per step into a new folder.
func trainedAdapterFolder(_ model: LlamaModel, records: [TrainingRecord], seed: UInt64) throws -> String {
    let folder = try temporaryFolder() + "/adapter"
    let adapter = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: [.query, .value, .down]), model: model.config, seed: seed)
    var options = TrainingOptions(totalSteps: 3)
    options.learningRate = 5e-2
    options.batchSize = 4
    options.checkpointEvery = 1
    options.seed = seed
    var trainer = LoRATrainer(model: model, adapter: adapter, records: records.map(\.sequence), options: options)
    try trainer.run(output: folder) { _ in }
    return folder
}

@Suite struct GradientIndexTests {
    let model: LlamaModel
    let records: [TrainingRecord]
    let adapterFolder: String

    init() throws {
        model = try tinyLlama()
        records = randomRecords(7, seed: 41, vocabularySize: model.config.vocabularySize)
        adapterFolder = try trainedAdapterFolder(model, records: records, seed: 42)
    }

    func expectedRows(checkpoint: String, _ records: [TrainingRecord], projection: ProjectionSpec = .none) throws -> Tensor {
        let adapter = try LoRAAdapter(folder: "\(adapterFolder)/\(checkpoint)", model: model.config)
        return try GradientExtractor(model: model, adapter: adapter, layout: GradientLayout(adapter: adapter, projection: projection)).rows(for: records.map(\.sequence))
    }

    @Test func roundTripAppendAndRecordTable() throws {
        let folder = try temporaryFolder() + "/index"
        var seen: [IndexProgress] = []
        _ = try GradientIndex.build(
            folder: folder, model: model, adapterFolder: adapterFolder, records: Array(records.prefix(4)),
            projection: .none, checkpoints: .all) { seen.append($0) }
        #expect(seen.last.map { ($0.done, $0.total) } ?? (0, 0) == (12, 12))

        var index = try GradientIndex(folder: folder)
        #expect(index.checkpoints.map(\.name) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"])
        #expect(index.checkpoints.map(\.step) == [1, 2, 3])
        // The learning rates of the steps, as the trainer saved them: the cosine schedule's.
        for checkpoint in index.checkpoints {
            let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(adapterFolder)/\(checkpoint.name)/trainer_state.json"))) as! [String: Any]
            #expect(checkpoint.learningRate == (state["learningRate"] as! NSNumber).floatValue)
        }
        #expect(Set(index.learningRates).count == 3)
        #expect(index.records == records.prefix(4).map(IndexedRecord.init))
        #expect(index.records[0].datanet == "dn-0" && index.records[0].datanetVersion == 1 && index.records[1].datanet == nil)
        #expect(index.blockColumns.last!.upperBound == index.manifest.width)
        for (position, checkpoint) in index.checkpoints.enumerated() {
            #expect(try index.rows(checkpoint: position) == expectedRows(checkpoint: checkpoint.name, Array(records.prefix(4))))
        }

        try index.append(records: Array(records.dropFirst(4)), model: model, adapterFolder: adapterFolder)
        let reopened = try GradientIndex(folder: folder)
        #expect(reopened.manifest.shards.map(\.count) == [4, 3])
        #expect(reopened.records.map(\.id) == records.map(\.id))
        for (position, checkpoint) in reopened.checkpoints.enumerated() {
            #expect(try reopened.shardRows(checkpoint: position).count == 2)
            let joined = try reopened.rows(checkpoint: position)
            #expect(joined.slice(0, 0..<4).contiguous() == (try expectedRows(checkpoint: checkpoint.name, Array(records.prefix(4)))))
            #expect(joined.slice(0, 4..<7).contiguous() == (try expectedRows(checkpoint: checkpoint.name, Array(records.dropFirst(4)))))
        }
        #expect(throws: AttributionError.duplicateRecord(id: "r5")) {
            var again = reopened
            try again.append(records: [records[5]], model: model, adapterFolder: adapterFolder)
        }
    }

    @Test func lastCheckpointWithAProjection() throws {
        let folder = try temporaryFolder() + "/index"
        let projection = ProjectionSpec(kind: .factored, dimension: 6, seed: 9)
        let index = try GradientIndex.build(folder: folder, model: model, adapterFolder: adapterFolder, records: records, projection: projection, checkpoints: .last)
        #expect(index.checkpoints.map(\.name) == ["checkpoint-3"])
        #expect(try GradientIndex(folder: folder).manifest == index.manifest)
        #expect(try index.rows(checkpoint: 0) == expectedRows(checkpoint: "checkpoint-3", records, projection: projection))
        // Query gradients come from the same extractor (alone in its pass, so equal up to rounding).
        let extractor = try index.extractor(model: model, adapterFolder: adapterFolder, checkpoint: 0)
        let query = try extractor.rows(for: [records[2].sequence])
        #expect(relativeError(query.scalars, try index.rows(checkpoint: 0).slice(0, 2..<3).scalars) <= 1e-5)
    }

    @Test func refusesAnyOtherAdapterOrCheckpoint() throws {
        let folder = try temporaryFolder() + "/index"
        let index = try GradientIndex.build(folder: folder, model: model, adapterFolder: adapterFolder, records: records, projection: .none, checkpoints: .all)
        let other = try trainedAdapterFolder(model, records: records, seed: 43)
        #expect(try index.checkpoint(matching: "\(adapterFolder)/checkpoint-2") == 1)
        #expect(throws: AttributionError.self) { try index.checkpoint(matching: "\(other)/checkpoint-2") }
        do {
            try index.requireAdapter(other)
            Issue.record("a different adapter was accepted")
        } catch {
            #expect(error.description.contains("is not the adapter the gradient index"), "\(error)")
        }
        var appending = index
        #expect(throws: AttributionError.self) { try appending.append(records: [records[0]], model: model, adapterFolder: other) }
        // One changed byte of the weights is another adapter.
        let copy = try temporaryFolder() + "/copy"
        try FileManager.default.copyItem(atPath: adapterFolder, toPath: copy)
        var weights = try Data(contentsOf: URL(fileURLWithPath: "\(copy)/adapter_model.safetensors"))
        weights[weights.count - 1] ^= 1
        try weights.write(to: URL(fileURLWithPath: "\(copy)/adapter_model.safetensors"))
        #expect(throws: AttributionError.self) { try index.requireAdapter(copy) }
        // A changed checkpoint of the same adapter folder is refused too.
        let changed = try temporaryFolder() + "/changed"
        try FileManager.default.copyItem(atPath: adapterFolder, toPath: changed)
        try FileManager.default.removeItem(atPath: "\(changed)/checkpoint-2/adapter_model.safetensors")
        try FileManager.default.copyItem(atPath: "\(changed)/checkpoint-1/adapter_model.safetensors", toPath: "\(changed)/checkpoint-2/adapter_model.safetensors")
        do {
            try appending.append(records: [randomRecords(1, seed: 44, vocabularySize: 300, idPrefix: "new")[0]], model: model, adapterFolder: changed)
            Issue.record("a changed checkpoint was accepted")
        } catch {
            #expect("\(error)".contains("is not checkpoint checkpoint-2 of the gradient index"), "\(error)")
        }
        #expect(throws: AttributionError.self) {
            try GradientIndex.build(folder: folder, model: model, adapterFolder: adapterFolder, records: records, projection: .none, checkpoints: .all)
        }
    }

    @Test func aFolderWithoutAnIndexIsAClearError() throws {
        let folder = try temporaryFolder()
        do {
            _ = try GradientIndex(folder: folder)
            Issue.record("opened an empty folder")
        } catch {
            #expect(error.description.hasPrefix("gradient index \(folder): cannot read index.json"), "\(error)")
        }
    }
}
