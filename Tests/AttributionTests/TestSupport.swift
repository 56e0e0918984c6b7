import Foundation
import LlamaModel
import TensorCore
import Training

/// Fixtures/tiny-llama: a tiny random Llama saved by transformers (make_fixtures.py).
func fixture(_ name: String) -> String {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures/\(name)").path
}

func tinyLlama() throws -> LlamaModel { try LlamaModel(folder: fixture("tiny-llama")) }

/// An adapter whose B is non-zero too (a fresh one has B = 0, so dL/dA = 0).
func randomAdapter(_ model: LlamaModel, _ config: LoRAConfig, seed: UInt64) throws -> LoRAAdapter {
    var adapter = try LoRAAdapter(config: config, model: model.config, seed: seed)
    var random = SeededRandom(seed: seed + 1)
    for layer in adapter.pairs.indices {
        for target in adapter.pairs[layer].keys.sorted() {
            adapter.pairs[layer][target]!.b = random.normalTensor(shape: adapter.pairs[layer][target]!.b.shape, standardDeviation: 0.3)
        }
    }
    return adapter
}

/// Seeded records of different lengths: prompt/completion and text records alternately.
func randomRecords(_ count: Int, seed: UInt64, vocabularySize: Int, idPrefix: String = "r") -> [TrainingRecord] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { index in
        let length = 3 + Int(random.next() % 14)
        let tokens = (0..<length).map { _ in Int(random.next() % UInt64(vocabularySize)) }
        let sequence = index % 2 == 0
            ? TrainingSequence(prompt: Array(tokens.prefix(length / 2)), completion: Array(tokens.dropFirst(length / 2)))
            : TrainingSequence(text: tokens)
        return TrainingRecord(
            id: "\(idPrefix)\(index)", contributor: "c\(index % 3)", sequence: sequence,
            datanet: index % 2 == 0 ? "dn-\(index % 4)" : nil, datanetVersion: index % 2 == 0 ? 1 + index % 3 : nil)
    }
}

/// |a - b| / |b| over all elements.
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "\(a.count) vs \(b.count) elements")
    var difference = 0.0, norm = 0.0
    for (x, y) in zip(a, b) {
        difference += Double(x - y) * Double(x - y)
        norm += Double(y) * Double(y)
    }
    return (difference / max(norm, 1e-30)).squareRoot()
}

/// A fresh temporary folder.
func temporaryFolder() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("attribution-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
