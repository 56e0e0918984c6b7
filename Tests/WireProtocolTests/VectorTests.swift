import Foundation
import NIOCore
import TensorCore
import Testing

@testable import WireProtocol

@Suite("protocol/vectors/frames.json")
struct VectorTests {
    static let vectors = try! Vectors.load()

    @Test func validFramesDecodeAndEncodeToTheSameBytes() throws {
        #expect(Self.vectors.valid.count >= MessageType.allCases.count)
        for vector in Self.vectors.valid {
            let envelope = try decodeFrame(ByteBuffer(hex: vector.hex))
            #expect(envelope.message.type.rawValue == vector.type, "\(vector.name)")
            #expect(envelope.requestID == vector.requestID, "\(vector.name)")
            #expect(envelope.flags.rawValue == vector.flags, "\(vector.name)")
            #expect(envelope.frameBytes.hex == vector.hex, "\(vector.name)")
        }
    }

    @Test func everyMessageTypeHasAVector() {
        let covered = Set(Self.vectors.valid.map(\.type))
        #expect(covered == Set(MessageType.allCases.map(\.rawValue)))
    }

    @Test func invalidFramesGiveTheirError() {
        for vector in Self.vectors.invalid {
            do {
                _ = try decodeFrame(ByteBuffer(hex: vector.hex), maxPayload: vector.maxPayload)
                Issue.record("\(vector.name) decoded")
            } catch {
                #expect(error.kind == vector.error, "\(vector.name): \(error)")
            }
        }
    }

    /// Typed Swift values, written by hand from the spec, against the vectors' bytes: the meaning, not just the bytes.
    @Test func handWrittenValuesEncodeToTheVectors() throws {
        let expected: [String: Envelope] = [
            "hello": Envelope(requestID: 0, message: .hello(.init(
                magic: WireVersion.helloMagic, minVersion: 1, maxVersion: 1, features: 0, authToken: "trb_token",
                maxFrameSize: 1 << 20, streamCredits: 64, clientName: "py"))),
            "infer": Envelope(requestID: 5, message: .infer(.init(
                adapter: 3, prompt: "Hi", maxTokens: 16, temperature: 0.5, topK: 40, topP: 0.875, seed: 42, stop: ["\n"],
                method: .datainf, topRecords: 5, fee: 1_000_000, idempotencyKey: "k-1"))),
            "token": Envelope(requestID: 5, message: .token(.init(index: 0, token: 72, text: "H"))),
            "infer_end": Envelope(requestID: 5, message: .inferEnd(.init(
                stopReason: .maxTokens, promptTokens: 2, completionTokens: 16, promptUs: 1500, generationUs: 64000))),
            "attribution_with_tensor": Envelope(requestID: 5, message: .attribution(.init(
                method: .datainf, inference: 9,
                top: [.init(record: 1, contributor: 3, datanet: 2, score: 0.75)],
                negative: [.init(record: 4, contributor: 5, datanet: 2, score: -0.125)],
                contributors: [.init(contributor: 3, share: 1)], datanets: [.init(datanet: 2, share: 1)],
                allScores: FloatTensor(shape: [2], values: [0.75, -0.125])))),
            "reward_split_final": Envelope(requestID: 5, flags: .final, message: .rewardSplit(.init(
                inference: 9, fee: 19, contributorPool: 13, owner: 3, protocolShare: 3, forfeited: 0,
                payouts: [.init(contributor: 3, share: 0.6, gross: 8, paid: 8, penaltyPoints: 0)],
                ledgerHead: .init(seq: 4, hash: Array(0..<32))))),
            "error_overloaded": Envelope(requestID: 6, flags: .final, message: .errorReply(.init(
                code: ErrorCode.overloaded.rawValue, retryAfterMs: 250, message: "overloaded"))),
            "contribute_pair": Envelope(requestID: 11, message: .contribute(.init(
                datanet: 2, content: .pair(.init(prompt: Array("Q?".utf8), completion: Array("A.".utf8)))))),
            "health": Envelope(requestID: .max, message: .health(.init())),
        ]
        for (name, envelope) in expected {
            let vector = try #require(Self.vectors.valid.first { $0.name == name })
            #expect(envelope.frameBytes.hex == vector.hex, "\(name)")
            #expect(try decodeFrame(ByteBuffer(hex: vector.hex)) == envelope, "\(name)")
        }
    }

    @Test("the Python client passes the vectors", .enabled(if: python3 != nil))
    func pythonClientPassesTheVectors() throws {
        let (status, output) = try runPython(
            ["test_client.py"], in: repositoryRoot.appendingPathComponent("protocol/client"))
        #expect(status == 0, "\(output)")
    }

    @Test("the Python client decodes what the Swift codec writes, to the same bytes", .enabled(if: python3 != nil))
    func pythonClientReadsSwiftFrames() throws {
        var rng = SeededRandom(seed: 6)
        var lines: [String] = []
        for type in MessageType.allCases {
            for _ in 0..<20 {
                let envelope = Envelope(
                    requestID: .random(using: &rng), flags: Bool.random(using: &rng) ? .final : [],
                    message: .random(type, using: &rng))
                lines.append(envelope.frameBytes.hex)
            }
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swift-frames-\(getpid()).txt")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .ascii)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, output) = try runPython(
            ["test_client.py", "ForeignFrames"], in: repositoryRoot.appendingPathComponent("protocol/client"),
            environment: ["TRIBUTARY_FRAMES": file.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("Ran 1 test"), "\(output)")
    }
}
