// swift-tools-version: 6.1
import PackageDescription

// Benchmarks live in their own package so that `swift test` never builds them.
// Run: cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
let package = Package(
    name: "TributaryBenchmarks",
    dependencies: [
        .package(name: "Tributary", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    ],
    targets: [
        // The peer: OpenBLAS's cblas_sgemm called directly, loaded as a user who links it would get it.
        .target(name: "RawCBLAS", linkerSettings: [.linkedLibrary("dl")]),
        // The floor under the protocol benchmarks: a plain loopback TCP ping-pong in C (and a spinner that keeps
        // virtual CPUs from parking, for runs that separate the hypervisor's wake-up latency from ours).
        .target(name: "RawLoopback", linkerSettings: [.linkedLibrary("pthread")]),
        // The machine's memory bandwidth, STREAM-style: the ceiling of a weight-bound decode step.
        .target(name: "RawMemory", linkerSettings: [.linkedLibrary("pthread")]),
        .executableTarget(
            name: "MemoryBandwidth",
            dependencies: ["RawMemory", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/MemoryBandwidth"
        ),
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
        // The 'decode' workload timed as the peer's generate is (Benchmarks/peer/decode.py runs both).
        .executableTarget(
            name: "Decode",
            dependencies: [
                .product(name: "LlamaModel", package: "Tributary"), .product(name: "TensorCore", package: "Tributary"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/Decode"
        ),
        // BPETokenizer's encode throughput per family on the shared tokenizer corpus, with a parity check first (a plain
        // executable; Benchmarks/peer/tokenizer_throughput.py times the `tokenizers` library on the same strings and can run it).
        .executableTarget(
            name: "TokenizerThroughput",
            dependencies: [.product(name: "Tokenizers", package: "Tributary")],
            path: "Benchmarks/TokenizerThroughput"
        ),
        // The skinny product against sgemm and sgemv on the reference weights (a plain executable).
        .executableTarget(
            name: "SkinnyProduct",
            dependencies: [.product(name: "LlamaModel", package: "Tributary"), .product(name: "TensorCore", package: "Tributary")],
            path: "Benchmarks/SkinnyProduct"
        ),
        // What attribution and a fee split add to an inference on the engine server (a plain executable: it runs one).
        // Run: cd Benchmarks && swift run -c release AttributedInference
        .executableTarget(
            name: "AttributedInference",
            dependencies: [
                .product(name: "EngineServer", package: "Tributary"),
                .product(name: "TributaryClient", package: "Tributary"),
                .product(name: "WireProtocol", package: "Tributary"),
                .product(name: "Store", package: "Tributary"),
                .product(name: "Serving", package: "Tributary"),
                .product(name: "Attribution", package: "Tributary"),
                .product(name: "SampleCorpus", package: "Tributary"),
                .product(name: "LlamaModel", package: "Tributary"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/AttributedInference"
        ),
        // Tributary's protocol beside a grpc-swift-2 echo service, in one run (a plain executable: it runs servers).
        // Run: cd Benchmarks && swift run -c release WireRoundTrip
        .executableTarget(
            name: "WireRoundTrip",
            dependencies: [
                .product(name: "EngineServer", package: "Tributary"),
                .product(name: "TributaryClient", package: "Tributary"),
                .product(name: "WireProtocol", package: "Tributary"),
                .product(name: "Store", package: "Tributary"),
                .product(name: "LlamaModel", package: "Tributary"),
                .product(name: "Tokenizers", package: "Tributary"),
                .product(name: "TensorCore", package: "Tributary"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                "RawLoopback",
            ],
            path: "Benchmarks/WireRoundTrip"
        ),
    ]
)
