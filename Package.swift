// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Tributary",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .executable(name: "tributary-engine", targets: ["tributary-engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Compute core: the only place with unsafe pointers and C.
        .target(name: "CBLASShim", linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]),
        .target(name: "CKernels", linkerSettings: [.linkedLibrary("m")]),
        .target(name: "TensorCore", dependencies: ["CBLASShim", "CKernels"]),

        .executableTarget(
            name: "tributary-engine",
            dependencies: [
                "TensorCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        // Runs the built executables as a user would.
        .testTarget(name: "TributaryEngineTests", dependencies: ["tributary-engine", "TensorCore"]),
    ]
)
