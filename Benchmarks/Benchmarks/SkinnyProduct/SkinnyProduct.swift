// The linear layers of a decoding step on the reference model's weight shapes (4 layers of q, k, v,
// o, gate, up, down and the LM head, 12.6 MB in fp32): one pass over all of them with m activation
// rows, through `Kernels.skinnyProduct` and through sgemm (`BLAS.gemm`, x Wᵀ), and for one row
// also sgemv (`BLAS.gemv`, W x), with the same thread count (OPENBLAS_NUM_THREADS). The best of
// 5 timings of 200 passes each, alternating the three so that drift on a shared machine hits all.
// It chose `Kernels.skinnyRowLimit`.
//
// Run: cd Benchmarks && swift run -c release SkinnyProduct [path/to/reference-llama.json]
import Foundation
import LlamaModel
import TensorCore

let configPath = CommandLine.arguments.dropFirst().first ?? "../../shared/reference/reference-llama.json"
let config = try LlamaConfig(contentsOf: configPath)
let (h, i, v) = (config.hiddenSize, config.intermediateSize, config.vocabularySize)
let (qWidth, kvWidth) = (config.headCount * config.headDimension, config.keyValueHeadCount * config.headDimension)
var random = SeededRandom(seed: 0)
let shapes = Array(repeating: [(qWidth, h), (kvWidth, h), (kvWidth, h), (h, qWidth), (i, h), (i, h), (h, i)], count: config.layerCount)
    .flatMap { $0 } + [(v, h)]
let weights = shapes.map { random.normalTensor(shape: [$0.0, $0.1], standardDeviation: 0.02) }
let megabytes = Double(weights.reduce(0) { $0 + $1.count } * 4) / 1e6

func microsecondsPerPass(_ pass: () -> Void) -> Double {
    let start = ContinuousClock.now
    for _ in 0..<200 { pass() }
    let elapsed = ContinuousClock.now - start
    return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18) / 200 * 1e6
}

print(String(format: "one pass over the reference model's linear weights (%.1f MB), %d threads, microseconds (best of 5):", megabytes, BLASRuntime.threads))
print("  rows   skinny    sgemm    sgemv   sgemm / skinny")
for m in [1, 2, 4, 8, 12, 16, 24, 32] {
    let inputs = Dictionary(grouping: shapes.map(\.1), by: { $0 }).mapValues { random.normalTensor(shape: [m, $0.first!]) }
    var outputs = shapes.map { Tensor(zeros: [m, $0.0]) }
    var vectors = shapes.map { Tensor(zeros: [$0.0]) }
    var best = [Double.infinity, .infinity, .infinity]
    for _ in 0..<5 {
        best[0] = min(best[0], microsecondsPerPass {
            for (index, w) in weights.enumerated() { Kernels.skinnyProduct(inputs[w.shape[1]]!, transposedWeight: w, into: &outputs[index]) }
        })
        best[1] = min(best[1], microsecondsPerPass {
            for (index, w) in weights.enumerated() { BLAS.gemm(inputs[w.shape[1]]!, w.transposed(), into: &outputs[index]) }
        })
        if m == 1 {
            best[2] = min(best[2], microsecondsPerPass {
                for (index, w) in weights.enumerated() { BLAS.gemv(w, inputs[w.shape[1]]!.reshaped([w.shape[1]]), into: &vectors[index]) }
            })
        }
    }
    let sgemv = m == 1 ? String(format: "%8.1f", best[2]) : "       -"
    print(String(format: "  %4d %8.1f %8.1f %@ %10.2fx", m, best[0], best[1], sgemv, best[1] / best[0]))
}
