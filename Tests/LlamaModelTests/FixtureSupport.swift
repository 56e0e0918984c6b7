import Foundation
import TensorCore

/// The fixtures are tiny random Llamas and PEFT adapters saved by transformers and PEFT, with their
/// fp32 logits (make_fixtures.py) and generations (make_generation_fixtures.py).
func fixture(_ name: String) -> String {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures/\(name)").path
}

/// A fixture's `expected_logits.json`: the tokens and the reference logits, one row per position.
func expectedLogits(_ name: String) throws -> (tokens: [Int], logits: [[Float]]) {
    struct Expected: Decodable { let tokens: [Int]; let logits: [[Float]] }
    let url = URL(fileURLWithPath: fixture(name) + "/expected_logits.json")
    let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url))
    return (expected.tokens, expected.logits)
}

/// The largest |actual - expected| relative to the largest |expected| of each row.
func worstRelativeError(_ actual: Tensor, _ expected: [[Float]]) -> Float {
    var worst: Float = 0
    for (row, values) in expected.enumerated() {
        let scale = values.map(abs).max()!
        for (column, value) in values.enumerated() { worst = max(worst, abs(actual[row, column] - value) / scale) }
    }
    return worst
}
