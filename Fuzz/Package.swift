// swift-tools-version: 6.1
// The libFuzzer targets, their own package so that `swift test` never builds them with the sanitizers. Build
// and run with `make fuzz` (see README.md here).
import PackageDescription

let package = Package(
    name: "TributaryFuzz",
    dependencies: [.package(name: "Tributary", path: "..")],
    targets: [
        .executableTarget(
            name: "fuzz-wire-decoder",
            dependencies: [.product(name: "WireProtocol", package: "Tributary")]
        ),
        .executableTarget(
            name: "fuzz-engine-requests",
            dependencies: [.product(name: "EngineRequestFuzzing", package: "Tributary")]
        ),
    ]
)
