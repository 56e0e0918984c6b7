import Benchmark
import RawCBLAS
import TensorCore

#if canImport(Glibc)
import Glibc
#endif

/// sgemm, C[m, n] = A[m, k] B[k, n], through Tributary and through raw cblas, paired: every iteration
/// measures each implementation in turn, so that drift on a shared machine hits them alike.
/// Each OpenBLAS instance has its own thread pool whose workers spin for about 2^28 cycles after a call,
/// so each turn first pauses for the other pools to park, warms its own pool with one call, and takes
/// the median of 5 timed calls.
/// - "Tributary": `BLAS.gemm`, with the kernel set Tributary chose;
/// - "cblas": `cblas_sgemm` of the very library Tributary loaded, called directly (the shim's overhead);
/// - "cblas Haswell": a private OpenBLAS with OPENBLAS_CORETYPE=Haswell, as this machine's environment exports;
/// - "cblas detect": a private OpenBLAS left to its own CPU detection.
/// Ratios are per iteration, in percent: "Tributary % of X" = 100 * Tributary GFLOP/s / X GFLOP/s.
let benchmarks: @Sendable () -> Void = {
    let shapes: [(name: String, m: Int, k: Int, n: Int)] = [
        ("square n=1024", 1024, 1024, 1024),
        ("square n=2048", 2048, 2048, 2048),
        // The reference model (hidden 256, intermediate 688, vocab 512, head dim 32), 8 x 256 tokens.
        ("ref q_proj 2048x256x256", 2048, 256, 256),
        ("ref kv_proj 2048x256x128", 2048, 256, 128),
        ("ref mlp_up 2048x256x688", 2048, 256, 688),
        ("ref mlp_down 2048x688x256", 2048, 688, 256),
        ("ref lm_head 2048x256x512", 2048, 256, 512),
        ("ref weight_grad 256x2048x688", 256, 2048, 688),
        ("ref attn_scores 256x32x256", 256, 32, 256),
    ]

    do {
        try BLASRuntime.load()
    } catch {
        fatalError("\(error)")
    }
    var peers: [(label: String, blas: raw_cblas)] = []
    var loaded = raw_cblas()
    if raw_cblas_open_loaded(&loaded) == 0 { peers.append(("cblas", loaded)) }
    var haswell = raw_cblas()
    if raw_cblas_open_private("Haswell", &haswell) == 0 { peers.append(("cblas Haswell", haswell)) }
    var detect = raw_cblas()
    if raw_cblas_open_private(nil, &detect) == 0 { peers.append(("cblas detect", detect)) }
    precondition(peers.count == 3, "could not load the raw cblas peers")
    for peer in peers { peer.blas.set_threads(Int32(BLASRuntime.threads)) }

    func metric(_ name: String) -> BenchmarkMetric {
        .custom(name, polarity: .prefersLarger, useScalingFactor: false)
    }
    let tributaryRate = metric("Tributary GFLOP/s")
    let peerRates = peers.map { metric("\($0.label) GFLOP/s") }
    let ratios = peers.map { metric("Tributary % of \($0.label)") }
    Benchmark.defaultConfiguration = .init(
        metrics: [tributaryRate] + peerRates + ratios, timeUnits: .microseconds,
        warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 12)

    for shape in shapes {
        Benchmark("sgemm \(shape.name)") { benchmark in
            var random = SeededRandom(seed: 42)
            let a = random.uniformTensor(shape: [shape.m, shape.k], in: -1..<1)
            let b = random.uniformTensor(shape: [shape.k, shape.n], in: -1..<1)
            var c = Tensor(zeros: [shape.m, shape.n])
            var peerC = Tensor(zeros: [shape.m, shape.n])
            let flops = 2 * Double(shape.m) * Double(shape.n) * Double(shape.k)
            func rate(_ work: () -> Void) -> Double {
                usleep(200_000)
                work()
                let times = (0..<5).map { _ in
                    let start = seconds()
                    work()
                    return seconds() - start
                }
                return flops / times.sorted()[2] / 1e9
            }
            a.withUnsafePointer { pa in
                b.withUnsafePointer { pb in
                    peerC.withUnsafeMutablePointer { pc in
                        for _ in benchmark.scaledIterations {
                            let ours = rate { BLAS.gemm(a, b, into: &c) }
                            benchmark.measurement(tributaryRate, Int(ours.rounded()))
                            for (index, peer) in peers.enumerated() {
                                var blas = peer.blas
                                let theirs = rate {
                                    raw_cblas_sgemm(&blas, Int32(shape.m), Int32(shape.n), Int32(shape.k), pa, pb, pc)
                                }
                                benchmark.measurement(peerRates[index], Int(theirs.rounded()))
                                benchmark.measurement(ratios[index], Int((100 * ours / theirs).rounded()))
                            }
                        }
                    }
                }
            }
            blackHole(c)
            blackHole(peerC)
        }
    }
}

func seconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}
