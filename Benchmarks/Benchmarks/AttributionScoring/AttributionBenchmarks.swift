import Attribution
import Benchmark
import TensorCore

/// Attribution scoring (issue 4), beside the compute core's own GEMM peak measured in the same run.
/// Each benchmark runs its closure once and records one sample per repeat, so that the index is
/// built and prepared once (the 100,000-record index is 1.6 GB).
///
/// - "scoring throughput": a batch of 512 queries against 20,000 records x 4,096 columns (32 blocks of
///   128: LoRA r = 8 on q, k, v, o of the 4-layer reference model, A and B separately, projected).
///   GFLOP/s counts the index GEMM, 2 q n D; "% of sgemm peak" divides it by `BLAS.gemm` at n = 2048
///   measured right after each repeat.
/// - "attribute one output": one query against 100,000 records x 4,096, scored and turned into the
///   top-10 records and contributor / datanet shares ("ms"); "scoring ms" is the score row alone, and
///   "index GB/s" the 1.6 GB pass over the index it makes; "prepare ms" is the one-off preparation.
let benchmarks: @Sendable () -> Void = {
    do {
        try BLASRuntime.load()
    } catch {
        fatalError("\(error)")
    }
    let width = 4096
    let blocks = try! GradientBlocks(uniform: 128, count: 32)
    let scorers: [ScorerKind] = [.gradDot, .gradCos, .dataInf, .fisher]

    func metric(_ name: String, larger: Bool = true) -> BenchmarkMetric {
        .custom(name, polarity: larger ? .prefersLarger : .prefersSmaller, useScalingFactor: false)
    }
    func seconds(_ work: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try work()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }
    func sgemmPeak() -> Double {
        var random = SeededRandom(seed: 1)
        let a = random.uniformTensor(shape: [2048, 2048], in: -1..<1)
        var c = Tensor(zeros: [2048, 2048])
        BLAS.gemm(a, a, into: &c)
        let times = (0..<3).map { _ in seconds { BLAS.gemm(a, a, into: &c) } }
        return 2 * 2048 * 2048 * 2048 / times.sorted()[1] / 1e9
    }
    func records(_ count: Int) -> [RecordInfo] {
        (0..<count).map { RecordInfo(id: "record-\($0)", contributor: "contributor-\($0 % 97)", datanet: "datanet-\($0 % 5)", datanetVersion: 1) }
    }

    let (throughputRecords, queryCount, repeats) = (20_000, 512, 7)
    let throughputMetrics = [metric("M pairs/s"), metric("GFLOP/s"), metric("sgemm peak GFLOP/s"), metric("% of sgemm peak")]
    for kind in scorers {
        Benchmark(
            "scoring throughput \(kind.rawValue) n=\(throughputRecords) D=\(width) q=\(queryCount)",
            configuration: .init(metrics: throughputMetrics, warmupIterations: 0, maxIterations: 1)
        ) { benchmark in
            var random = SeededRandom(seed: 7)
            let index = try CheckpointGradients(
                rows: random.uniformTensor(shape: [throughputRecords, width], in: -1..<1), blocks: blocks, learningRate: 1e-3)
            let queries = random.uniformTensor(shape: [queryCount, width], in: -1..<1)
            let scorer = try AttributionScorer(kind: kind, checkpoints: [index])
            var scores = try scorer.scores(queries: [queries])  // warm the BLAS pool
            for _ in 0..<repeats {
                let elapsed = try seconds { scores = try scorer.scores(queries: [queries]) }
                let rate = 2 * Double(queryCount) * Double(throughputRecords) * Double(width) / elapsed / 1e9
                let peak = sgemmPeak()
                benchmark.measurement(throughputMetrics[0], Int((Double(queryCount * throughputRecords) / elapsed / 1e6).rounded()))
                benchmark.measurement(throughputMetrics[1], Int(rate.rounded()))
                benchmark.measurement(throughputMetrics[2], Int(peak.rounded()))
                benchmark.measurement(throughputMetrics[3], Int((100 * rate / peak).rounded()))
            }
            blackHole(scores)
        }
    }

    let indexRecords = 100_000
    let latencyMetrics = scorers.map {
        (latency: metric("\($0.rawValue) ms", larger: false), scoring: metric("\($0.rawValue) scoring ms", larger: false),
         bandwidth: metric("\($0.rawValue) index GB/s"))
    }
    let prepareMetrics = scorers.map { metric("\($0.rawValue) prepare ms", larger: false) }
    Benchmark(
        "attribute one output n=\(indexRecords) D=\(width)",
        configuration: .init(
            metrics: [.peakMemoryResident] + latencyMetrics.flatMap { [$0.latency, $0.scoring, $0.bandwidth] } + prepareMetrics,
            warmupIterations: 0, maxIterations: 1)
    ) { benchmark in
        var random = SeededRandom(seed: 9)
        let index = try CheckpointGradients(
            rows: random.uniformTensor(shape: [indexRecords, width], in: -1..<1), blocks: blocks, learningRate: 1e-3)
        let table = RecordTable(records(indexRecords))
        let query = random.uniformTensor(shape: [1, width], in: -1..<1)
        let gigabytes = Double(indexRecords * width * 4) / 1e9
        var prepared: [AttributionScorer] = []
        for (position, kind) in scorers.enumerated() {
            let preparation = try seconds { prepared.append(try AttributionScorer(kind: kind, checkpoints: [index])) }
            benchmark.measurement(prepareMetrics[position], Int((preparation * 1000).rounded()))
        }
        // Each round measures every scorer in turn, so that drift on a shared machine hits them alike.
        var attribution: [OutputAttribution] = []
        for round in 0...repeats {  // round 0 warms the BLAS pool
            for (position, scorer) in prepared.enumerated() {
                var scoringTime = 0.0
                let elapsed = try seconds {
                    var scores = Tensor(zeros: [])
                    scoringTime = try seconds { scores = try scorer.scores(queries: [query]) }
                    attribution = try Shares.attribute(scores: scores, table: table, topK: 10)
                }
                if round == 0 { continue }
                benchmark.measurement(latencyMetrics[position].latency, Int((elapsed * 1000).rounded()))
                benchmark.measurement(latencyMetrics[position].scoring, Int((scoringTime * 1000).rounded()))
                benchmark.measurement(latencyMetrics[position].bandwidth, Int((gigabytes / scoringTime).rounded()))
            }
        }
        blackHole(attribution)
    }
}
