#if canImport(Glibc)
import Glibc
#endif

/// What `tributary-engine doctor` reports: the BLAS in use, its threads, the CPU, and a measured sgemm rate.
public struct ComputeDiagnostics: Codable, Sendable {
    public var blasCore: String
    public var blasCoreSource: BLASRuntime.CoreSource
    /// An inherited `OPENBLAS_CORETYPE` that Tributary overrode.
    public var blasCoreOverridden: String?
    public var blasLibrary: String
    public var blasConfig: String
    public var blasThreads: Int
    public var availableCores: Int
    public var cpuFeatures: [String]
    public var avx512KernelsActive: Bool
    public var sgemmSize: Int
    public var sgemmGflops: Double

    enum CodingKeys: String, CodingKey {
        case blasCore = "blas_core"
        case blasCoreSource = "blas_core_source"
        case blasCoreOverridden = "blas_core_overridden"
        case blasLibrary = "blas_library"
        case blasConfig = "blas_config"
        case blasThreads = "blas_threads"
        case availableCores = "available_cores"
        case cpuFeatures = "cpu_features"
        case avx512KernelsActive = "avx512_kernels_active"
        case sgemmSize = "sgemm_n"
        case sgemmGflops = "sgemm_gflops"
    }

    /// Loads BLAS and measures square sgemm of order `n` through `BLAS.gemm`, best of `repetitions`.
    public static func collect(sgemmSize n: Int = 1024, repetitions: Int = 5) throws(BLASLoadError) -> ComputeDiagnostics {
        try BLASRuntime.load()
        let features = CPUFeatures.current
        let core = BLASRuntime.coreName
        return ComputeDiagnostics(
            blasCore: core,
            blasCoreSource: BLASRuntime.coreSource,
            blasCoreOverridden: BLASRuntime.overriddenCoreSetting,
            blasLibrary: BLASRuntime.libraryPath,
            blasConfig: BLASRuntime.configuration,
            blasThreads: BLASRuntime.threads,
            availableCores: BLASRuntime.availableCores,
            cpuFeatures: features.names,
            avx512KernelsActive: BLASRuntime.isAVX512Core(core),
            sgemmSize: n,
            sgemmGflops: measureSGEMM(n: n, repetitions: repetitions))
    }

    /// GFLOP/s of `BLAS.gemm` on square matrices of order `n`: the best of `repetitions` after one warm-up.
    public static func measureSGEMM(n: Int, repetitions: Int) -> Double {
        var random = SeededRandom(seed: 1)
        let a = random.uniformTensor(shape: [n, n], in: -1..<1)
        let b = random.uniformTensor(shape: [n, n], in: -1..<1)
        var c = Tensor(zeros: [n, n])
        BLAS.gemm(a, b, into: &c)
        var best = Double.infinity
        for _ in 0..<max(repetitions, 1) {
            let start = monotonicSeconds()
            BLAS.gemm(a, b, into: &c)
            best = min(best, monotonicSeconds() - start)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}
