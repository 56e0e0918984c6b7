import Foundation
import NIOCore
import Testing

@testable import WireProtocol

/// Every input in Fuzz/regressions (crashes the fuzzer found, kept after the fix) and Fuzz/corpus, through the
/// fuzz target's check: read frames, decode each, and every frame that decodes encodes back to its exact bytes.
@Suite("Fuzz regressions and corpus")
struct FuzzRegressionTests {
    static let inputs: [URL] = ["Fuzz/regressions", "Fuzz/corpus"].flatMap { folder in
        let url = repositoryRoot.appendingPathComponent(folder)
        return (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? []
    }.sorted { $0.path < $1.path }

    @Test func thereAreInputs() {
        #expect(Self.inputs.contains { $0.path.contains("/regressions/") })
        #expect(Self.inputs.count > 50)
    }

    @Test func everyInputDecodesOrIsRefusedAndDecodedFramesReencodeExactly() throws {
        for url in Self.inputs {
            var buffer = ByteBuffer(bytes: try Data(contentsOf: url))
            while true {
                let before = buffer
                guard let frame = try? Frame.read(from: &buffer, maxPayload: FrameLimits.defaultMaxPayload) else { break }
                guard let envelope = try? Envelope(decoding: frame) else { continue }
                let original = before.getSlice(at: before.readerIndex, length: buffer.readerIndex - before.readerIndex)!
                #expect(envelope.frameBytes == original, "\(url.lastPathComponent)")
            }
        }
    }
}
