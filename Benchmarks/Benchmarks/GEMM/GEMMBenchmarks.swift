import Benchmark
import RawCBLAS
import TensorCore

#if canImport(Glibc)
import Glibc
#endif

/// sgemm, C[m, n] = A[m, k] B[k, n], through Tributary and through raw cblas in the same process:
/// - "tributary": `BLAS.gemm`, with the kernel set Tributary chose;
/// - "cblas": `cblas_sgemm` of the very library Tributary loaded, called directly (the shim's overhead);
/// - "cblas Haswell": a private OpenBLAS with OPENBLAS_CORETYPE=Haswell, as this machine's environment exports;
/// - "cblas detect": a private OpenBLAS left to its own CPU detection.
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
    let threads = BLASRuntime.threads
    var peers: [(label: String, blas: raw_cblas)] = []
    var loaded = raw_cblas()
    if raw_cblas_open_loaded(&loaded) == 0 { peers.append(("cblas", loaded)) }
    var haswell = raw_cblas()
    if raw_cblas_open_private("Haswell", &haswell) == 0 { peers.append(("cblas Haswell", haswell)) }
    var detect = raw_cblas()
    if raw_cblas_open_private(nil, &detect) == 0 { peers.append(("cblas detect", detect)) }
    for peer in peers { peer.blas.set_threads(Int32(threads)) }

    print("Tributary kernel set: \(BLASRuntime.coreName) (\(BLASRuntime.coreSource.rawValue)), BLAS threads \(threads)")
    for peer in peers { print("peer \(peer.label): \(String(cString: peer.blas.corename()!))") }

    let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, gflops], timeUnits: .microseconds,
        warmupIterations: 2, maxDuration: .seconds(2), maxIterations: 60)

    for shape in shapes {
        var random = SeededRandom(seed: 42)
        let a = random.uniformTensor(shape: [shape.m, shape.k], in: -1..<1)
        let b = random.uniformTensor(shape: [shape.k, shape.n], in: -1..<1)
        let flops = 2 * Double(shape.m) * Double(shape.n) * Double(shape.k)

        func record(_ benchmark: Benchmark, _ work: () -> Void) {
            for _ in benchmark.scaledIterations {
                let start = seconds()
                work()
                benchmark.measurement(gflops, Int((flops / (seconds() - start) / 1e9).rounded()))
            }
        }

        Benchmark("sgemm \(shape.name) tributary") { benchmark in
            var c = Tensor(zeros: [shape.m, shape.n])
            record(benchmark) { BLAS.gemm(a, b, into: &c) }
            blackHole(c)
        }
        for peer in peers {
            Benchmark("sgemm \(shape.name) \(peer.label)") { benchmark in
                var c = Tensor(zeros: [shape.m, shape.n])
                a.withUnsafePointer { pa in
                    b.withUnsafePointer { pb in
                        c.withUnsafeMutablePointer { pc in
                            var blas = peer.blas
                            record(benchmark) {
                                raw_cblas_sgemm(&blas, Int32(shape.m), Int32(shape.n), Int32(shape.k), pa, pb, pc)
                            }
                        }
                    }
                }
                blackHole(c)
            }
        }
    }
}

func seconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}
