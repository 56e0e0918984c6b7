import Foundation
import TensorCore
import Testing

/// `tributary-engine doctor` in fresh processes, since OpenBLAS picks its kernel set once per process.
@Suite struct DoctorTests {
    struct Report: Decodable {
        let blas_core: String
        let blas_core_source: String
        let blas_core_overridden: String?
        let blas_threads: Int
        let cpu_features: [String]
        let sgemm_gflops: Double
    }

    /// Runs `doctor --json` with the given BLAS variables set (nil: unset) over this process's environment.
    func doctor(_ variables: [String: String?]) throws -> Report {
        var environment: [String: String?] = [:]
        for name in ["OPENBLAS_CORETYPE", "TRIBUTARY_BLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"] {
            environment[name] = .some(nil)
        }
        for (name, value) in variables { environment[name] = .some(value) }
        let run = try runEngine(["doctor", "--json", "--size", "128"], environment: environment)
        #expect(run.status == 0, "\(run.errors)")
        return try JSONDecoder().decode(Report.self, from: run.output)
    }

    static let hasAVX512 = CPUFeatures.current.isSuperset(of: .avx512Kernels)

    @Test func reportsTheDocumentedKeys() throws {
        let report = try doctor([:])
        #expect(!report.blas_core.isEmpty)
        #expect(report.blas_threads >= 1)
        #expect(report.cpu_features.contains(where: { $0.hasPrefix("sse") || $0 == "neon" }))
        #expect(report.sgemm_gflops > 0)
    }

    @Test(.enabled(if: hasAVX512)) func avx512KernelsWithNoSetting() throws {
        let report = try doctor([:])
        #expect(BLASRuntime.isAVX512Core(report.blas_core), "got \(report.blas_core)")
        #expect(report.blas_core_source == "tributary")
        #expect(report.blas_core_overridden == nil)
    }

    @Test(.enabled(if: hasAVX512)) func inheritedAVX2SettingIsOverriddenAndReported() throws {
        let report = try doctor(["OPENBLAS_CORETYPE": "Haswell"])
        #expect(BLASRuntime.isAVX512Core(report.blas_core), "got \(report.blas_core)")
        #expect(report.blas_core_overridden == "Haswell")
    }

    @Test func inheritedAVX512SettingIsKept() throws {
        guard Self.hasAVX512 else { return }
        let report = try doctor(["OPENBLAS_CORETYPE": "SkylakeX"])
        #expect(report.blas_core == "SkylakeX")
        #expect(report.blas_core_source == "user")
    }

    @Test func explicitSettingAlwaysWins() throws {
        let report = try doctor(["TRIBUTARY_BLAS_CORETYPE": "Haswell", "OPENBLAS_CORETYPE": "SkylakeX"])
        #expect(report.blas_core == "Haswell")
        #expect(report.blas_core_source == "user")
    }

    @Test func userThreadSettingWins() throws {
        #expect(try doctor(["OPENBLAS_NUM_THREADS": "1"]).blas_threads == 1)
        #expect(try doctor([:]).blas_threads == BLASRuntime.availableCores)
    }
}
