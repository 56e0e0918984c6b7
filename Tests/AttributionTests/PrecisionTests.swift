import Foundation
import LlamaModel
import TensorCore
import Testing
import Training
@testable import Attribution

/// Issue 19: per-example gradients from `index` against a Float64 reference (PyTorch float64 through transformers and
/// PEFT, make_real_width_reference.py) on a Llama with SmolLM2-135M's widths (hidden 576, intermediate 1536, 9 query
/// and 3 key/value heads of 64, tied embeddings), 2 layers, vocabulary 8,192, LoRA rank 4 on all seven projections,
/// records of 127 and 122 tokens.
@Suite struct PrecisionTests {
    struct TensorSpec: Decodable {
        var name: String
        var shape: [Int]
        var seed: UInt64
    }

    struct FixtureSpec: Decodable {
        var rank: Int
        var alpha: Double
        var targets: [String]
        var tensors: [TensorSpec]
    }

    /// bound * (2u - 1) (+ offset), u the top 24 bits of splitmix64(seed + (i + 1) * golden), every step in Float
    /// as the fixture script computes it: the same bits as its weights.
    static func filled(seed: UInt64, count: Int, bound: Float, offset: Float?) -> [Float] {
        (0..<count).map { i in
            var z = seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let scaled = (2 * (Float(z >> 40) * 0x1p-24) - 1) * bound
            return offset.map { scaled + $0 } ?? scaled
        }
    }

    /// Writes the fixture's model and adapter as Hugging Face and PEFT folders under `folder`.
    static func writeModelAndAdapter(to folder: String) throws {
        let specPath = fixture("real-width/tensors.json")
        let data = try Data(contentsOf: URL(fileURLWithPath: specPath))
        let spec = try JSONDecoder().decode(FixtureSpec.self, from: data)
        var config = try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["config"] as? [String: Any])
        config["architectures"] = ["LlamaForCausalLM"]
        config["model_type"] = "llama"
        config["hidden_act"] = "silu"
        var base: [(name: String, tensor: Tensor)] = [], lora: [(name: String, tensor: Tensor)] = []
        for entry in spec.tensors {
            let bound: Float = entry.name.contains("embed_tokens") ? 0.25
                : entry.name.contains("lora_A") ? 0.04 : entry.name.contains("lora_B") ? 0.05 : 0.08
            let isNorm = entry.shape.count == 1
            let values = filled(seed: entry.seed, count: entry.shape.reduce(1, *), bound: isNorm ? 0.5 : bound, offset: isNorm ? 1 : nil)
            let tensor = Tensor(shape: entry.shape, scalars: values)
            if entry.name.contains(".lora_") {
                lora.append((entry.name, tensor))
            } else {
                // PEFT's names of the base tensors: the transformers name under base_model.model, adapted layers' as base_layer.
                base.append((String(entry.name.dropFirst("base_model.model.".count)).replacingOccurrences(of: ".base_layer", with: ""), tensor))
            }
        }
        for name in ["model", "adapter"] { try FileManager.default.createDirectory(atPath: "\(folder)/\(name)", withIntermediateDirectories: true) }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: "\(folder)/model/config.json"))
        try SafeTensors.write(base, to: "\(folder)/model/model.safetensors")
        let adapterConfig: [String: Any] = [
            "peft_type": "LORA", "r": spec.rank, "lora_alpha": spec.alpha, "lora_dropout": 0.0, "bias": "none",
            "target_modules": spec.targets,
        ]
        try JSONSerialization.data(withJSONObject: adapterConfig).write(to: URL(fileURLWithPath: "\(folder)/adapter/adapter_config.json"))
        try SafeTensors.write(lora, to: "\(folder)/adapter/adapter_model.safetensors")
    }

    /// |a - b| / |b| and max |a - b| / max |b|, in Double.
    static func errors(_ a: ArraySlice<Float>, _ b: [Float]) -> (norm: Double, max: Double) {
        var difference = 0.0, norm = 0.0, largestDifference = 0.0, largest = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x) - Double(y)
            difference += d * d
            norm += Double(y) * Double(y)
            largestDifference = max(largestDifference, abs(d))
            largest = max(largest, abs(Double(y)))
        }
        return ((difference / max(norm, 1e-300)).squareRoot(), largestDifference / max(largest, 1e-300))
    }

    /// `index`'s rows (default options: packed passes, concurrent passes) within 1e-5 of Float64 in every LoRA block.
    @Test func indexRowsMatchFloat64AtRealWidths() throws {
        let folder = try temporaryFolder()
        try Self.writeModelAndAdapter(to: folder)
        let run = try IndexCommandTests().engine([
            "index", "--model", "\(folder)/model", "--adapter", "\(folder)/adapter", "--data", fixture("real-width/records.jsonl"),
            "--out", "\(folder)/index", "--threads", "2",
        ])
        try #require(run.status == 0, "\(run.error)")
        let index = try GradientIndex(folder: "\(folder)/index")
        let rows = try index.rows(checkpoint: 0).scalars
        let reference = try SafeTensorsFile(path: fixture("real-width/reference-gradients.safetensors"))
        #expect(index.blocks.count == 28 && index.records.map(\.id) == ["text", "chat"])
        var worst = (norm: 0.0, max: 0.0, block: "")
        for (row, record) in index.records.enumerated() {
            for block in index.blocks {
                let expected = try reference.tensor(named: "\(record.id)/\(block.name)").scalars
                let start = row * index.manifest.width
                let error = Self.errors(rows[start + block.columns[0]..<start + block.columns[1]], expected)
                if error.norm > worst.norm { worst = (error.norm, worst.max, "\(record.id) \(block.name)") }
                worst.max = max(worst.max, error.max)
            }
        }
        print("index rows vs Float64: worst block |g - ref| / |ref| \(worst.norm) (\(worst.block)); worst max |g - ref| / max |ref| \(worst.max)")
        #expect(worst.norm <= 1e-5, "worst block \(worst.block): \(worst.norm)")
        #expect(worst.max <= 1e-5)
    }
}
