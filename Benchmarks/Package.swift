// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so that `swift test` never builds them.
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
let package = Package(
    name: "TributaryBenchmarks",
    dependencies: [
        .package(name: "Tributary", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The peer: OpenBLAS's cblas_sgemm called directly, loaded as a user who links it would get it.
        .target(name: "RawCBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .executableTarget(
            name: "GEMM",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TensorCore", package: "Tributary"),
                "RawCBLAS",
            ],
            path: "Benchmarks/GEMM",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Attribution scoring throughput and one-output latency, beside the compute core's GEMM peak.
        .executableTarget(
            name: "AttributionScoring",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TensorCore", package: "Tributary"),
                .product(name: "Attribution", package: "Tributary"),
            ],
            path: "Benchmarks/AttributionScoring",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A plain executable: it times two engines' configurations against each other and prints the ratio.
        .executableTarget(
            name: "MixedAdapterDecode",
            dependencies: [.product(name: "LlamaModel", package: "Tributary"), .product(name: "TensorCore", package: "Tributary")],
            path: "Benchmarks/MixedAdapterDecode"
        ),
    ]
)
