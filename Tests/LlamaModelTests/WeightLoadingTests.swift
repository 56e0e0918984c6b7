import Foundation
import Testing
import TensorCore
@testable import LlamaModel

/// fp32 safetensors are used in place from the map; only tensors the file leaves misaligned for Float are copied.
@Suite struct WeightLoadingTests {
    static func matrices(_ weights: LlamaWeights) -> [Tensor] {
        [weights.embedding] + weights.layers.flatMap { [$0.query, $0.key, $0.value, $0.output, $0.gate, $0.up, $0.down] }
    }

    static func allTensors(_ weights: LlamaWeights) -> [Tensor] {
        matrices(weights) + [weights.finalNorm] + weights.layers.flatMap { [$0.inputNorm, $0.postAttentionNorm] }
    }

    @Test func alignedF32WeightsAreMappedInPlace() throws {
        let folder = fixture("tiny-llama-tied")
        let config = try LlamaConfig(contentsOf: folder + "/config.json")
        let weights = try LlamaWeights(folder: folder, config: config)
        let fileBytes = Self.allTensors(weights).reduce(0) { $0 + $1.count * 4 }
        #expect(weights.alignmentCopyBytes == 0)
        #expect(weights.mappedBytes == fileBytes)
        for tensor in Self.allTensors(weights) { #expect(tensor.isBorrowed) }
        // The safetensors writer's 8-byte alignment leaves most matrices off a 64-byte line: none is copied for it.
        let offLine = Self.matrices(weights).filter { $0.withUnsafePointer { Int(bitPattern: $0) % 64 != 0 } }
        #expect(!offLine.isEmpty)
    }

    /// The same file with its data buffer moved 2 bytes off Float alignment: every tensor is copied and
    /// counted, the weights are equal, and the logits still match transformers'.
    @Test(arguments: [2, 4])
    func misalignedF32TensorsAreCopiedAndCounted(shift: Int) throws {
        let source = fixture("tiny-llama-tied")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source + "/model.safetensors")))
        var headerLength = 0
        for index in 0..<8 { headerLength |= Int(bytes[index]) << (8 * index) }
        // Pad the JSON header with spaces so the data starts `shift` bytes past where it did.
        let newLength = headerLength + shift
        var moved: [UInt8] = (0..<8).map { (index: Int) -> UInt8 in UInt8((newLength >> (8 * index)) & 0xFF) }
        moved.append(contentsOf: bytes[8..<(8 + headerLength)])
        moved.append(contentsOf: [UInt8](repeating: 0x20, count: shift))
        moved.append(contentsOf: bytes[(8 + headerLength)...])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("misaligned-\(shift)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: folder + "/config.json")
        try Data(moved).write(to: URL(fileURLWithPath: folder + "/model.safetensors"))

        let config = try LlamaConfig(contentsOf: folder + "/config.json")
        let original = try LlamaWeights(folder: source, config: config)
        let loaded = try LlamaWeights(folder: folder, config: config)
        let fileBytes = Self.allTensors(original).reduce(0) { $0 + $1.count * 4 }
        if shift % 4 == 0 {
            #expect(loaded.alignmentCopyBytes == 0 && loaded.mappedBytes == fileBytes)
        } else {
            #expect(loaded.alignmentCopyBytes == fileBytes && loaded.mappedBytes == 0)
        }
        for (a, b) in zip(Self.allTensors(loaded), Self.allTensors(original)) { #expect(a == b) }

        let model = LlamaModel(config: config, weights: loaded)
        let reference = try expectedLogits("tiny-llama-tied")
        #expect(worstRelativeError(try model.logits(reference.tokens), reference.logits) <= 1e-4)
    }
}
