import Foundation
import NIOCore
import NIOPosix
import TensorCore
import Testing
import TributaryClient
import WireProtocol

@testable import EngineServer

// Nested in ProcessWideSuites (not re-indented, to keep this file's history readable): it measures this process.
/// Bounded-time load and misbehaving clients; memory is the resident set of this process, which runs the server.
extension ProcessWideSuites { @Suite(.serialized) struct ReliabilityTests {
    static let mebibyte = 1 << 20

    @Test func sixtyFourClientsStreamInferenceWithoutErrorsAndBoundedMemory() async throws {
        // Sixty-four anonymous clients at once, within bounds their operator raised: by default anonymous
        // connections together hold at most 16 compute requests (see ComputeQueueTests for the refusals).
        let server = try await TestServer.start(computeLimits: ComputeLimits(maxQueued: 64, maxQueuedPerContributor: 64))
        let clients = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let duration = Duration.seconds(3)
        let connections = try await withThrowingTaskGroup(of: TributaryConnection.self) { group in
            for _ in 0..<64 { group.addTask { try await TributaryConnection.connect(host: "127.0.0.1", port: server.port, streamCredits: 4, group: clients) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let baseline = residentBytes()
        var peak = baseline
        let deadline = ContinuousClock.now + duration
        let (completed, errors) = try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
            for (index, connection) in connections.enumerated() {
                group.addTask {
                    var completed = 0
                    var errors: [String] = []
                    while ContinuousClock.now < deadline {
                        do {
                            let streamed = try await collect(try await connection.stream(inferRequest("client \(index)", maxTokens: 12)))
                            if streamed.tokens.count == 12 && streamed.end?.completionTokens == 12 { completed += 1 } else { errors.append("short stream") }
                        } catch {
                            errors.append("\(error)")
                        }
                    }
                    return (completed, errors)
                }
            }
            group.addTask {
                var peak = 0
                while ContinuousClock.now < deadline {
                    peak = max(peak, residentBytes())
                    try await Task.sleep(for: .milliseconds(100))
                }
                return (-peak, [])
            }
            return try await group.reduce(into: (0, [String]())) { total, result in
                if result.0 < 0 { peak = max(peak, -result.0) } else { total.0 += result.0 }
                total.1 += result.1
            }
        }
        #expect(errors.isEmpty, "\(errors.prefix(3))")
        #expect(completed >= 64, "every client completed at least one stream")
        let growth = peak - baseline
        #expect(growth < 64 * Self.mebibyte, "resident memory grew by \(growth / Self.mebibyte) MiB under load")
        for connection in connections { await connection.close() }
        try await clients.shutdownGracefully()
        try await server.stop()
    }

    /// A client that sends requests and pings but never reads: the server stops reading it once its replies
    /// back up, holds a bounded amount, keeps serving others, and frees everything when it goes.
    @Test func aClientThatStopsReadingDoesNotGrowServerMemory() async throws {
        let server = try await TestServer.start { $0.maxBufferedBytes = 64 * 1024 }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let silent = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .connect(host: "127.0.0.1", port: server.port).get()
        // Credits far beyond what is generated, so only the socket's back pressure holds the server back; then
        // 400,000 pings, whose 9.6 MB of pongs the server would have to hold if it kept reading. All of it is
        // encoded before the baseline, so the client's side of this process does not grow.
        var flood = ByteBufferAllocator().buffer(capacity: 10 << 20)
        Envelope(requestID: 0, message: .hello(Wire.Hello(
            magic: WireVersion.helloMagic, minVersion: 1, maxVersion: 1, features: 0, authToken: "",
            maxFrameSize: 1 << 20, streamCredits: 65_535, clientName: "silent"))).write(to: &flood)
        for id in 1...64 { Envelope(requestID: UInt64(id), message: inferRequest("never read \(id)", maxTokens: 250)).write(to: &flood) }
        for opaque in 0..<400_000 { Envelope(requestID: 0, message: .ping(Wire.Ping(opaque: UInt64(opaque)))).write(to: &flood) }
        let statistics = server.server.engine.statistics
        let baseline = residentBytes()
        silent.writeAndFlush(flood, promise: nil)
        try await Task.sleep(for: .seconds(3))
        let later = residentBytes()
        // The server reads the client only as fast as the client takes replies: most of the flood stays unread.
        #expect(statistics.framesReceived < 100_000, "read \(statistics.framesReceived) frames of 400,065")
        #expect(later - baseline < 16 * Self.mebibyte, "resident memory grew by \((later - baseline) / 1024) KiB while the client did not read")

        // Other connections are served meanwhile.
        let other = try await server.connect()
        guard case .statsReport(let stats) = try await other.call(.stats(Wire.Stats())) else {
            Issue.record("expected STATS_REPORT")
            return
        }
        #expect(stats.connections == 2)
        try await silent.close()
        // The silent client's requests are cancelled and its connection freed.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        var connections = UInt32.max
        while clock.now < deadline {
            if case .statsReport(let now) = try await other.call(.stats(Wire.Stats())) { connections = now.connections }
            if connections == 1 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(connections == 1)
        await other.close()
        try await group.shutdownGracefully()
        try await server.stop()
    }

    /// 300 unauthenticated connections each send a frame of 1 MB (under the server's post-handshake limit)
    /// before any HELLO: each is refused from its length bytes and closed, and the server does not grow. (Before
    /// the handshake limit was checked from the length, 500 such connections grew this process by 528 MiB.)
    @Test func framesAboveTheHandshakeLimitBeforeHelloAreNotBuffered() async throws {
        let server = try await TestServer.start { $0.maxHandshakingConnections = 10_000 }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let length = 1_000_000
        var frame = ByteBufferAllocator().buffer(capacity: length + FrameLimits.headerSize)
        frame.writeMultipleIntegers(UInt32(length), UInt8(1), MessageType.hello.rawValue, UInt16(0), UInt64(0), endianness: .big)
        frame.writeRepeatingByte(0x41, count: length)
        let baseline = residentBytes()
        var connections: [RawConnection] = []
        for _ in 0..<300 {
            let raw = try await RawConnection.open(port: server.port, group: group)
            // The same storage for every connection: the clients' side of this process does not grow.
            raw.channel.writeAndFlush(frame, promise: nil)
            connections.append(raw)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while clock.now < deadline, !connections.allSatisfy({ $0.received.snapshot.closed }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let grown = residentBytes() - baseline
        #expect(connections.allSatisfy { $0.received.snapshot.closed })
        #expect(connections.allSatisfy { errorReply($0.received.snapshot.envelopes.first)?.code == ErrorCode.frameTooLarge.rawValue })
        #expect(grown < 32 * Self.mebibyte, "resident memory grew by \(grown / 1024) KiB")
        for raw in connections { try? await raw.channel.close() }
        try await group.shutdownGracefully()
        try await server.stop()
    }

    /// Garbage on many connections, before and after a valid HELLO: each is refused or closed, and the server
    /// goes on serving.
    @Test func garbageNeverTakesTheServerDown() async throws {
        let server = try await TestServer.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var random = SeededRandom(seed: 99)
        var hello = ByteBufferAllocator().buffer(capacity: 64)
        Envelope(requestID: 0, message: .hello(Wire.Hello(
            magic: WireVersion.helloMagic, minVersion: 1, maxVersion: 1, features: 0, authToken: "", maxFrameSize: 1 << 20,
            streamCredits: 4, clientName: "garbage"))).write(to: &hello)
        for attempt in 0..<40 {
            let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: server.port).get()
            var bytes = ByteBufferAllocator().buffer(capacity: 4096)
            if attempt % 2 == 1 { bytes.writeImmutableBuffer(hello) }
            // Random frames: a plausible header (small length, version 1, any type, flags and id), random payload.
            for _ in 0..<8 {
                let length = UInt32(random.next() % 64)
                bytes.writeMultipleIntegers(
                    length, UInt8(1), UInt8(truncatingIfNeeded: random.next()), UInt16(random.next() % 2), random.next() % 4,
                    endianness: .big)
                for _ in 0..<length { bytes.writeInteger(UInt8(truncatingIfNeeded: random.next())) }
            }
            for _ in 0..<(random.next() % 256) { bytes.writeInteger(UInt8(truncatingIfNeeded: random.next())) }
            // The server may close first (that is one right answer): then these fail, which is fine.
            try? await channel.writeAndFlush(bytes).get()
            try? await channel.close()
        }
        let connection = try await server.connect()
        guard case .healthStatus(let health) = try await connection.call(.health(Wire.Health())) else {
            Issue.record("expected HEALTH_STATUS")
            return
        }
        #expect(health.state == .serving)
        await connection.close()
        try await group.shutdownGracefully()
        try await server.stop()
    }
}
}
