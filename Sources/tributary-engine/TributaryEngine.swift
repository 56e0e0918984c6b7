import ArgumentParser
import Foundation
import TensorCore

@main
struct TributaryEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary-engine",
        abstract: "Tributary's engine: training, attribution and inference for LoRA-adapted models.",
        subcommands: [Doctor.self])
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report the BLAS library, its kernel set and threads, the CPU's SIMD features, and measured sgemm speed.")

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "Order of the square sgemm to time.")
    var size = 1024

    func run() throws {
        let report: ComputeDiagnostics
        do {
            report = try ComputeDiagnostics.collect(sgemmSize: size)
        } catch {
            throw ValidationError(error.description)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        let overridden = report.blasCoreOverridden.map {
            "\n               (overrode OPENBLAS_CORETYPE=\($0) from the environment; TRIBUTARY_BLAS_CORETYPE=\($0) forces it)"
        } ?? ""
        print("""
            BLAS library   \(report.blasLibrary)
            BLAS config    \(report.blasConfig)
            kernel set     \(report.blasCore) (chosen by \(report.blasCoreSource.rawValue))\(report.avx512KernelsActive ? ", AVX-512" : "")\(overridden)
            BLAS threads   \(report.blasThreads) of \(report.availableCores) available cores
            CPU features   \(report.cpuFeatures.joined(separator: " "))
            sgemm n=\(report.sgemmSize)  \(String(format: "%.1f", report.sgemmGflops)) GFLOP/s
            """)
    }
}
