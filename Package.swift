// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Tributary",
    products: [
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
        .library(name: "ChatTemplates", targets: ["ChatTemplates"]),
        .library(name: "LlamaModel", targets: ["LlamaModel"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Attribution", targets: ["Attribution"]),
        .library(name: "SampleCorpus", targets: ["SampleCorpus"]),
        .library(name: "Store", targets: ["Store"]),
        .library(name: "WireProtocol", targets: ["WireProtocol"]),
        .library(name: "ProtocolServer", targets: ["ProtocolServer"]),
        .library(name: "Authorization", targets: ["Authorization"]),
        .library(name: "EngineServer", targets: ["EngineServer"]),
        .library(name: "TributaryClient", targets: ["TributaryClient"]),
        .library(name: "Serving", targets: ["Serving"]),
        .library(name: "Coordinator", targets: ["Coordinator"]),
        .library(name: "EngineAgent", targets: ["EngineAgent"]),
        .library(name: "EngineRequestFuzzing", targets: ["EngineRequestFuzzing"]),
        .executable(name: "tributary-engine", targets: ["tributary-engine"]),
        .executable(name: "tributary-coordinator", targets: ["tributary-coordinator"]),
        .executable(name: "tributary", targets: ["tributary"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Compute core: the only place with unsafe pointers and C.
        .target(name: "CBLASShim", linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]),
        .target(name: "CKernels", linkerSettings: [.linkedLibrary("m"), .linkedLibrary("pthread")]),
        .target(name: "TensorCore", dependencies: ["CBLASShim", "CKernels"]),

        // Model: tokenizers, then the Llama architecture on the compute core.
        .target(name: "Tokenizers"),
        // Chat templates: the Jinja subset of instruct checkpoints' templates, rendered as transformers does.
        .target(name: "ChatTemplates"),
        .target(name: "LlamaModel", dependencies: ["TensorCore", "Tokenizers"]),
        // The project's own multi-domain corpus, for the built-in base model and the demos.
        .target(name: "SampleCorpus", dependencies: ["TensorCore"]),
        .target(name: "Training", dependencies: ["LlamaModel", "TensorCore", "Tokenizers", "SampleCorpus"]),
        // Per-example gradients, projections, the gradient index, scorers, shares and curation; Crypto ties an
        // index to its adapter files.
        .target(
            name: "Attribution",
            dependencies: ["Training", "LlamaModel", "TensorCore", .product(name: "Crypto", package: "swift-crypto")]),

        // Datanets, adapter registry, inference records and the hash-chained ledger, on SQLite.
        .target(
            name: "Store",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // An engine's work on the store: jobs (train, index) run under their lease, and inference's way to
        // attribution, inference records and the ledger.
        .target(
            name: "Serving",
            dependencies: [
                "Store", "Attribution", "Training", "LlamaModel", "Tokenizers",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // The coordinator: engine registry, heartbeats, least-loaded dispatch of the store's durable job queue,
        // served on the protocol server.
        .target(
            name: "Coordinator",
            dependencies: [
                "Store", "Serving", "WireProtocol", "ProtocolServer", "Authorization",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The binary protocol of protocol/PROTOCOL.md: a pure codec over ByteBuffer, no sockets.
        .target(name: "WireProtocol", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // Async code that runs on a channel's event loop: no thread hop between a task and its socket.
        .target(name: "LoopExecution", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),

        // A server of the protocol for any service: handshake, multiplexed streams, limits, credits, drain.
        .target(
            name: "ProtocolServer",
            dependencies: [
                "WireProtocol", "LoopExecution", "Store",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Who may send each request (docs/SECURITY.md): one rule per request type, checked against the store.
        .target(name: "Authorization", dependencies: ["ProtocolServer", "WireProtocol", "Store"]),
        // The engine's server: every engine request of the catalogue on the protocol server, attribution and fees
        // through Serving; compute on a bounded pool.
        .target(
            name: "EngineServer",
            dependencies: [
                "ProtocolServer", "Authorization", "WireProtocol", "Store", "Serving", "Attribution", "LlamaModel",
                "TensorCore", "ChatTemplates", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The client library: one connection, requests multiplexed by id, streamed replies, credits, cancel.
        .target(
            name: "TributaryClient",
            dependencies: [
                "WireProtocol", "LoopExecution",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        // An engine's agent: registers with the coordinator, heartbeats, runs the attempts leased to it.
        .target(
            name: "EngineAgent",
            dependencies: [
                "TributaryClient", "Serving", "Store", "WireProtocol",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The engine's request handlers driven over a real connection, on a real store and a tiny model: the
        // harness of Fuzz/'s fuzz-engine-requests, and of its regressions replayed in EngineServerTests.
        .target(
            name: "EngineRequestFuzzing",
            dependencies: [
                "EngineServer", "TributaryClient", "WireProtocol", "Store", "Serving", "Attribution", "LlamaModel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .executableTarget(
            name: "tributary-coordinator",
            dependencies: [
                "Coordinator", "ProtocolServer", "Store",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The client CLI's logic: addresses and tokens, typed requests, human and JSON renderings.
        .target(
            name: "ClientCommands",
            dependencies: ["TributaryClient", "WireProtocol", .product(name: "Crypto", package: "swift-crypto")]),
        .executableTarget(
            name: "tributary",
            dependencies: [
                "ClientCommands", "TributaryClient", "WireProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .executableTarget(
            name: "tributary-engine",
            dependencies: [
                "TensorCore",
                "LlamaModel",
                "Tokenizers",
                "ChatTemplates",
                "Training",
                "Attribution",
                "SampleCorpus",
                "EngineServer",
                "EngineAgent",
                "Serving",
                "Store",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "ChatTemplatesTests", dependencies: ["ChatTemplates"], exclude: ["make_fixtures.py"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "TensorCore"], exclude: ["make_fixtures.py"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "LlamaModelTests", dependencies: ["LlamaModel", "Tokenizers"],
            exclude: ["make_fixtures.py", "make_generation_fixtures.py", "make_family_fixtures.py"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "TrainingTests", dependencies: ["Training", "LlamaModel", "TensorCore", "SampleCorpus", "Tokenizers"],
            exclude: ["make_fixtures.py"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "AttributionTests", dependencies: [
                "Attribution", "Training", "LlamaModel", "TensorCore", "SampleCorpus", "tributary-engine"],
            exclude: ["make_fixtures.py", "check_index_row.py", "make_real_width_reference.py"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SampleCorpusTests", dependencies: ["SampleCorpus", "Training", "Tokenizers", "TensorCore"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "store-crash-writer"]),
        // A child process for the store's crash test: writes a burst, reporting each acknowledged write.
        .executableTarget(name: "store-crash-writer", dependencies: ["Store"], path: "Tests/StoreCrashWriter"),
        .testTarget(
            name: "WireProtocolTests",
            dependencies: [
                "WireProtocol",
                "TensorCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ProtocolServerTests",
            dependencies: [
                "ProtocolServer", "WireProtocol", "TensorCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EngineServerTests",
            dependencies: [
                "EngineServer", "TributaryClient", "WireProtocol", "Store", "LlamaModel", "Tokenizers", "TensorCore",
                "Serving", "Attribution", "SampleCorpus", "EngineRequestFuzzing",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "AuthorizationTests", dependencies: ["Authorization", "ProtocolServer", "WireProtocol", "Store"]),
        .testTarget(name: "ServingTests", dependencies: ["Serving", "Store", "Attribution", "Training", "LlamaModel", "SampleCorpus", "TensorCore"]),
        .testTarget(
            name: "CoordinatorTests",
            dependencies: ["Coordinator", "ProtocolServer", "Store", "Serving", "WireProtocol", "TributaryClient", .product(name: "Logging", package: "swift-log")]),
        // A coordinator and engines as processes on one data directory, driven over the wire.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "tributary-coordinator", "tributary-engine", "TributaryClient", "WireProtocol", "Store", "SampleCorpus", "TensorCore",
            ]),
        // Runs the built executables as a user would.
        .testTarget(
            name: "TributaryEngineTests",
            dependencies: ["tributary-engine", "TensorCore", "LlamaModel", "Tokenizers", "Training", "TributaryClient", "WireProtocol", "Store"]),
        // Runs the built `tributary` against a real `tributary-engine serve`; unit-tests its renderings.
        .testTarget(
            name: "TributaryCLITests",
            dependencies: ["ClientCommands", "TributaryClient", "WireProtocol", "Store", "TensorCore", "tributary", "tributary-engine", .product(name: "Crypto", package: "swift-crypto")]),
    ]
)
