@testable import EngineServer
import ProtocolServer
import TensorCore
import Testing
import WireProtocol

/// Replies that can outgrow the client's largest frame are refused with a code and a reason, never sent.
@Suite struct ReplySizeTests {
    @Test func anAttributionWithMoreScoresThanTheClientAcceptsIsRefusedAsTooLarge() throws {
        var random = SeededRandom(seed: 206)
        func attribution(scores: Int) -> Wire.Attribution {
            Wire.Attribution(
                method: .gradcos, inference: nil, top: [], negative: [], contributors: [], datanets: [],
                allScores: FloatTensor(shape: [scores], values: (0..<scores).map { _ in random.normal() }))
        }
        let limit = FrameLimits.minimumMaxPayload
        try RequestRouter.requireFits(attribution(scores: 1_000), maxPayload: limit)
        let refusal = #expect(throws: RequestFailure.self) { try RequestRouter.requireFits(attribution(scores: 1_100), maxPayload: limit) }
        #expect(refusal?.code == .tooLarge)
        #expect(refusal?.message.contains("1100 scores") == true && refusal?.message.contains("max_frame_size 4096") == true)
    }
}
