import EngineServer
import Foundation
import LlamaModel
import Store
import TensorCore
import Testing
import TributaryClient
import WireProtocol

/// A real server on a loopback port and the Swift client.
@Suite(.serialized) struct LoopbackTests {
    @Test func handshakeWelcomesTheTokensContributorAndAnswersHealth() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect()
        #expect(connection.welcome.contributor == server.contributor.rawValue)
        #expect(connection.welcome.maxConcurrentRequests == 64)
        guard case .healthStatus(let health) = try await connection.call(.health(Wire.Health())) else {
            Issue.record("expected HEALTH_STATUS")
            return
        }
        #expect(health.state == .serving && health.serverVersion == EngineServer.version)
        let anonymous = try await server.connect(token: "")
        #expect(anonymous.welcome.contributor == nil)
        await connection.close()
        await anonymous.close()
        try await server.stop()
    }

    @Test func streamedInferenceEqualsInProcessGenerationAndEndsWithUsage() async throws {
        let generator = try randomGenerator()
        let server = try await TestServer.start(generator: generator)
        let connection = try await server.connect(streamCredits: 2)
        let streamed = try await collect(try await connection.stream(inferRequest("hello wire", maxTokens: 40)))
        let local = try generator.generate(prompt: "hello wire", options: GenerationOptions(maxNewTokens: 40))
        #expect(streamed.tokens.map { Int($0.token) } == local.tokens)
        #expect(streamed.tokens.map(\.index) == Array(0..<40))
        #expect(streamed.text == local.text)
        let end = try #require(streamed.end)
        #expect(end.stopReason == .maxTokens && end.completionTokens == 40 && end.promptTokens == UInt32(local.promptTokenCount))
        #expect(end.generationUs > 0)
        await connection.close()
        try await server.stop()
    }

    @Test func aStopSequenceEndsTheStreamBeforeItAndABadOneIsRefused() async throws {
        let generator = try randomGenerator()
        let server = try await TestServer.start(generator: generator)
        let connection = try await server.connect(streamCredits: 3)
        let local = try generator.generate(prompt: "stop me", options: GenerationOptions(maxNewTokens: 50))
        let characters = Array(local.text)
        let stop = String(characters[characters.count / 2..<characters.count / 2 + 2])
        let streamed = try await collect(try await connection.stream(inferRequest("stop me", maxTokens: 50, stop: [stop])))
        let expected = try generator.generate(prompt: "stop me", options: GenerationOptions(maxNewTokens: 50, stopSequences: [stop]))
        #expect(expected.stopReason == .stopSequence && !expected.text.contains(stop) && local.text.hasPrefix(expected.text))
        #expect(streamed.text == expected.text && streamed.end?.stopReason == .stopSequence)
        #expect(streamed.end?.completionTokens == UInt32(expected.tokens.count))
        let refused = await #expect(throws: ServerError.self) {
            _ = try await connection.call(inferRequest("stop me", maxTokens: 5, stop: [""]))
        }
        #expect(refused?.code == ErrorCode.invalidArgument.rawValue && refused?.message.contains("stop sequence") == true)
        await connection.close()
        try await server.stop()
    }

    @Test func echoesComeBackWhileAnInferenceStreamsFromAnyTaskAndFromTheConnectionsLoop() async throws {
        let server = try await TestServer.start(generator: try randomGenerator())
        let connection = try await server.connect(streamCredits: 4)
        let inference = try await connection.stream(inferRequest("a long one", maxTokens: 60))
        var random = SeededRandom(seed: 75)
        for size in [0, 1, 64, 4093] {
            let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            guard case .echoed(let echoed) = try await connection.call(.echo(Wire.Echo(payload: payload))) else {
                Issue.record("expected ECHOED")
                return
            }
            #expect(echoed.payload == payload)
            let pinned = try await withTaskExecutorPreference(connection.executor) {
                try await connection.call(.echo(Wire.Echo(payload: payload)))
            }
            #expect(pinned == .echoed(Wire.Echoed(payload: payload)))
        }
        #expect(try await collect(inference).tokens.count == 60)
        await connection.close()
        try await server.stop()
    }

    @Test func repliesOfConcurrentRequestsArriveOutOfOrderOnOneConnection() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect(streamCredits: 1)
        // A long stream (one credit: it advances only as it is read) and then a quick request.
        let long = try await connection.stream(inferRequest("a", maxTokens: 200))
        let health = try await connection.call(.health(Wire.Health()))
        guard case .healthStatus = health else {
            Issue.record("expected HEALTH_STATUS, got \(health.type)")
            return
        }
        // The quick reply overtook the stream, which is still going and completes afterwards.
        let streamed = try await collect(long)
        #expect(streamed.tokens.count == 200 && streamed.end?.stopReason == .maxTokens)
        await connection.close()
        try await server.stop()
    }

    @Test func cancelStopsGenerationAndEndsTheStreamAsCancelled() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect(streamCredits: 1)
        let replies = try await connection.stream(inferRequest("cancel me", maxTokens: 240))
        var iterator = replies.makeAsyncIterator()
        var tokens = 0
        var end: Wire.InferEnd?
        while let reply = try await iterator.next() {
            switch reply {
            case .token:
                tokens += 1
                if tokens == 3 { try await connection.cancel(replies.requestID) }
            case .inferEnd(let value): end = value
            default: Issue.record("unexpected \(reply.type)")
            }
        }
        let finished = try #require(end)
        #expect(finished.stopReason == .cancelled)
        #expect(finished.completionTokens < 240 && tokens < 240)
        // The connection goes on.
        guard case .healthStatus = try await connection.call(.health(Wire.Health())) else {
            Issue.record("expected HEALTH_STATUS")
            return
        }
        await connection.close()
        try await server.stop()
    }

    @Test func mutatingRequestsNeedAValidTokenAndAWrongOneChangesNothing() async throws {
        let server = try await TestServer.start()
        let create = Message.datanetCreate(Wire.DatanetCreate(
            name: "wire-notes", summary: "notes", description: "", tags: ["x"], license: "CC-BY-4.0", visibility: .public))

        await #expect(throws: ServerError.self) { _ = try await server.connect(token: "trb_" + String(repeating: "0", count: 64)) }
        await #expect(throws: ServerError.self) { _ = try await server.connect(token: "not a token") }
        let anonymous = try await server.connect(token: "")
        let refusal = await #expect(throws: ServerError.self) { _ = try await anonymous.call(create) }
        #expect(refusal?.errorCode == .unauthenticated)
        #expect(try server.store.datanets().isEmpty)

        let owner = try await server.connect()
        guard case .datanetInfo(let info) = try await owner.call(create) else {
            Issue.record("expected DATANET_INFO")
            return
        }
        #expect(info.datanet.name == "wire-notes" && info.datanet.owner == server.contributor.rawValue)
        #expect(try server.store.datanets().map(\.name) == ["wire-notes"])
        let duplicate = await #expect(throws: ServerError.self) { _ = try await owner.call(create) }
        #expect(duplicate?.errorCode == .alreadyExists)

        let record = try await owner.call(.contribute(Wire.Contribute(datanet: info.datanet.id, content: .text(Wire.TextRecord(text: Array("a record".utf8))))))
        guard case .recordInfo(let contributed) = record else {
            Issue.record("expected RECORD_INFO")
            return
        }
        #expect(contributed.record.status == .pending && contributed.record.byteSize == 8)
        await anonymous.close()
        await owner.close()
        try await server.stop()
    }

    @Test func aConnectionsConcurrentRequestsAreLimited() async throws {
        let server = try await TestServer.start { $0.maxConcurrentRequests = 2 }
        let connection = try await server.connect(streamCredits: 1)
        // Two streams that stall after their first token, because nobody reads them.
        let first = try await connection.stream(inferRequest("one", maxTokens: 100))
        let second = try await connection.stream(inferRequest("two", maxTokens: 100))
        let refusal = await #expect(throws: ServerError.self) { _ = try await connection.call(.health(Wire.Health())) }
        #expect(refusal?.errorCode == .tooManyRequests && refusal?.retryClass == .overloaded && refusal?.retryAfterMs == 10)
        let (one, two) = (try await collect(first), try await collect(second))
        #expect(one.tokens.count == 100 && one.end?.completionTokens == 100, "\(one.tokens.count) \(String(describing: one.end))")
        #expect(two.tokens.count == 100 && two.end?.completionTokens == 100, "\(two.tokens.count) \(String(describing: two.end))")
        guard case .healthStatus = try await connection.call(.health(Wire.Health())) else {
            Issue.record("expected HEALTH_STATUS once the streams ended")
            return
        }
        await connection.close()
        try await server.stop()
    }

    @Test func shutdownLetsInFlightRequestsFinishAndRefusesNewOnes() async throws {
        let server = try await TestServer.start()
        let connection = try await server.connect(streamCredits: 1)
        // Read on the connection's loop: one credit per token must not wait for a cooperative thread, which the
        // suites running beside this one may hold for seconds while the drain timeout runs.
        let (tokens, end) = try await withTaskExecutorPreference(connection.executor) {
            let stream = try await connection.stream(inferRequest("drain", maxTokens: 150))
            var iterator = stream.makeAsyncIterator()
            _ = try await iterator.next()
            server.server.shutdown()
            var tokens = 1
            var end: Wire.InferEnd?
            while let reply = try await iterator.next() {
                if case .token(let token) = reply, token.token != UInt32.max { tokens += 1 }
                if case .inferEnd(let value) = reply { end = value }
            }
            return (tokens, end)
        }
        #expect(tokens == 150 && end?.stopReason == .maxTokens)
        await #expect(throws: (any Error).self) { _ = try await connection.call(.health(Wire.Health())) }
        try await server.serving.value
        await #expect(throws: (any Error).self) { _ = try await server.connect() }
        await connection.close()
    }

    @Test("A client that leaves while its connection drains: run() waits for the drain before it stops the event loops")
    func shutdownOutlivesTheDrainOfAConnectionThatEnded() async throws {
        for _ in 0..<5 {
            let server = try await TestServer.start()
            let connection = try await server.connect(streamCredits: 1)
            try await withTaskExecutorPreference(connection.executor) {
                var replies = try await connection.stream(inferRequest("leave", maxTokens: 200)).makeAsyncIterator()
                _ = try await replies.next()  // in flight, waiting for a credit
                server.server.shutdown()  // its drain waits for the request
            }
            // Leaving ends the connection (its request is cancelled) while the drain still polls. Before, run()
            // stopped the event loops then, and the drain's close scheduled work on a stopped loop, which
            // SWIFTNIO_STRICT (set by `make test`) turns into a trap.
            await connection.close()
            try await server.serving.value
        }
    }

    @Test func generationStopsWhenAskedTo() throws {
        let generator = try randomGenerator()
        var seen = 0
        let result = try generator.generate(
            prompt: "stop", options: GenerationOptions(maxNewTokens: 50), onPiece: { _ in seen += 1 }, shouldStop: { seen >= 4 })
        #expect(result.stopReason == .cancelled && result.tokens.count == 4)
    }
}
