import LoopExecution
import NIOCore
import NIOPosix
import Synchronization
import WireProtocol

/// An ERROR frame from the server: its code (the hundreds give the retry class) and message.
public struct ServerError: Error, Equatable, CustomStringConvertible {
    public var code: UInt16
    public var retryAfterMs: UInt32
    public var message: String

    public var errorCode: ErrorCode? { ErrorCode(rawValue: code) }
    public var retryClass: ErrorCode.RetryClass { ErrorCode.retryClass(of: code) }
    public var description: String { "error \(code) (\(retryClass.rawValue)): \(message)" }
}

/// The connection failed or ended while a request was waiting.
public enum ConnectionError: Error, Equatable, CustomStringConvertible {
    case closed
    case handshake(String)
    case protocolViolation(String)
    /// The server's GOAWAY did not cover this request: it was never processed; send it elsewhere.
    case goingAway(lastRequestID: UInt64, message: String)

    public var description: String {
        switch self {
        case .closed: "the connection is closed"
        case .handshake(let reason): "handshake failed: \(reason)"
        case .protocolViolation(let reason): "the server broke the protocol: \(reason)"
        case .goingAway(let last, let message): "the server is going away (last request \(last)): \(message)"
        }
    }
}

/// One connection to a Tributary server: HELLO/WELCOME, then any number of concurrent requests multiplexed
/// by request id. A reply stream grants one credit back for every streamed frame its consumer takes, so a
/// consumer that stops reading stops the server's stream instead of growing memory on either side.
///
///     let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: 7070, token: token)
///     for try await reply in try await connection.stream(.infer(request)) { ... }
public final class TributaryConnection: Sendable {
    public let welcome: Wire.Welcome
    /// Runs tasks on this connection's event loop. A task that prefers it (`withTaskExecutorPreference`)
    /// sends and receives without a thread hop: the lowest latency, for callers that do not block.
    public let executor: any TaskExecutor
    /// The credits a stream starts with (HELLO's `stream_credits`); streams grant them back in batches.
    let streamCredits: UInt32

    private let channel: NIOAsyncChannel<Frame, Envelope>
    private let outbound: NIOAsyncChannelOutboundWriter<Envelope>

    private struct State {
        var nextRequestID: UInt64 = 1
        var pending: [UInt64: AsyncThrowingStream<Envelope, any Error>.Continuation] = [:]
        var failure: (any Error)?
    }

    private let state = Mutex(State())

    private init(
        welcome: Wire.Welcome, channel: NIOAsyncChannel<Frame, Envelope>, outbound: NIOAsyncChannelOutboundWriter<Envelope>,
        executor: EventLoopTaskExecutor, streamCredits: UInt32
    ) {
        self.welcome = welcome
        self.channel = channel
        self.outbound = outbound
        self.executor = executor
        self.streamCredits = streamCredits
    }

    /// Connects and completes the handshake. `streamCredits`: how many streamed frames of one request the
    /// server may send ahead of this client's reading. `group`: NIO's process-wide one unless given.
    public static func connect(
        host: String, port: Int, token: String = "", streamCredits: UInt32 = 64,
        maxFrameSize: UInt32 = FrameLimits.defaultMaxPayload, clientName: String = "TributaryClient",
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TributaryConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(FrameDecoder(maxPayload: maxFrameSize)), MessageToByteHandler(EnvelopeEncoder()))
                    return try NIOAsyncChannel<Frame, Envelope>(wrappingChannelSynchronously: channel)
                }
            }
        let hello = Wire.Hello(
            magic: WireVersion.helloMagic, minVersion: UInt16(WireVersion.supported.lowerBound),
            maxVersion: UInt16(WireVersion.supported.upperBound), features: 0, authToken: token,
            maxFrameSize: maxFrameSize, streamCredits: streamCredits, clientName: clientName)
        // The channel lives in a task of its own, on its event loop, which routes replies until the connection ends.
        let executor = EventLoopTaskExecutor(channel.channel.eventLoop)
        return try await withCheckedThrowingContinuation { ready in
            Task(executorPreference: executor) {
                var handshaking = true
                do {
                    try await channel.executeThenClose { inbound, outbound in
                        try await outbound.write(Envelope(requestID: 0, message: .hello(hello)))
                        var frames = inbound.makeAsyncIterator()
                        let welcome = try await Self.welcome(from: frames.next())
                        let connection = TributaryConnection(
                            welcome: welcome, channel: channel, outbound: outbound, executor: executor, streamCredits: streamCredits)
                        handshaking = false
                        ready.resume(returning: connection)
                        await connection.readReplies(frames)
                    }
                } catch {
                    if handshaking { ready.resume(throwing: error) }
                }
            }
        }
    }

    private static func welcome(from frame: Frame?) throws -> Wire.Welcome {
        guard let frame else { throw ConnectionError.handshake("the server closed the connection") }
        switch try Envelope(decoding: frame).message {
        case .welcome(let welcome): return welcome
        case .errorReply(let error): throw ServerError(code: error.code, retryAfterMs: error.retryAfterMs, message: error.message)
        case let other: throw ConnectionError.handshake("expected WELCOME, got \(other.type)")
        }
    }

    /// Routes every reply frame to the request it answers, until the connection ends.
    private func readReplies(_ frames: NIOAsyncChannelInboundStream<Frame>.AsyncIterator) async {
        var frames = frames
        var failure: any Error = ConnectionError.closed
        do {
            while let frame = try await frames.next() {
                let envelope = try Envelope(decoding: frame)
                guard envelope.requestID != 0 else {
                    if let error = try connectionLevel(envelope) { failure = error; break }
                    continue
                }
                let final = envelope.flags.contains(.final)
                let continuation = state.withLock { state in
                    final ? state.pending.removeValue(forKey: envelope.requestID) : state.pending[envelope.requestID]
                }
                continuation?.yield(envelope)
                if final { continuation?.finish() }
            }
        } catch {
            failure = error
        }
        let waiting = state.withLock { state in
            state.failure = state.failure ?? failure
            defer { state.pending = [:] }
            return state.pending.values
        }
        for continuation in waiting { continuation.finish(throwing: failure) }
        channel.channel.close(promise: nil)
    }

    /// Handles a request-id-0 frame; returns the error that ends the connection, if it does.
    private func connectionLevel(_ envelope: Envelope) throws -> (any Error)? {
        switch envelope.message {
        case .pong: return nil
        case .errorReply(let error): return ServerError(code: error.code, retryAfterMs: error.retryAfterMs, message: error.message)
        case .goAway(let goAway):
            // Requests above the last one the server took were never processed.
            let refused = state.withLock { state in
                let ids = state.pending.keys.filter { $0 > goAway.lastRequestId }
                return ids.compactMap { state.pending.removeValue(forKey: $0) }
            }
            for continuation in refused {
                continuation.finish(throwing: ConnectionError.goingAway(lastRequestID: goAway.lastRequestId, message: goAway.message))
            }
            state.withLock { $0.failure = ConnectionError.goingAway(lastRequestID: goAway.lastRequestId, message: goAway.message) }
            return nil
        default: throw ConnectionError.protocolViolation("\(envelope.message.type) on request id 0")
        }
    }

    /// Sends `request` and returns its replies as they arrive.
    public func stream(_ request: Message) async throws -> ReplyStream {
        let (replies, continuation) = AsyncThrowingStream.makeStream(of: Envelope.self)
        let id = try state.withLock { state -> UInt64 in
            if let failure = state.failure { throw failure }
            let id = state.nextRequestID
            state.nextRequestID += 1
            state.pending[id] = continuation
            return id
        }
        do {
            try await outbound.write(Envelope(requestID: id, message: request))
        } catch {
            state.withLock { _ = $0.pending.removeValue(forKey: id) }
            throw error
        }
        return ReplyStream(requestID: id, replies: replies, connection: self)
    }

    /// Sends `request` and returns its single (final) reply.
    public func call(_ request: Message) async throws -> Message {
        var last: Message?
        for try await reply in try await stream(request) { last = reply }
        guard let last else { throw ConnectionError.protocolViolation("a reply stream ended without a frame") }
        return last
    }

    /// Asks the server to stop a request; its stream then ends (for inference, with a `cancelled` INFER_END).
    public func cancel(_ requestID: UInt64) async throws {
        try await outbound.write(Envelope(requestID: requestID, message: .cancel(Wire.Cancel())))
    }

    func grant(_ credits: UInt32, to requestID: UInt64) async throws {
        try await outbound.write(Envelope(requestID: requestID, message: .credit(Wire.Credit(credits: credits))))
    }

    public func ping(_ opaque: UInt64 = 0) async throws {
        try await outbound.write(Envelope(requestID: 0, message: .ping(Wire.Ping(opaque: opaque))))
    }

    /// Closes the connection; requests still waiting end with `ConnectionError.closed`.
    public func close() async {
        outbound.finish()
        try? await channel.channel.close()
    }
}

/// One request's reply frames in order, ending after the FINAL one; an ERROR reply is thrown as `ServerError`.
public struct ReplyStream: AsyncSequence, Sendable {
    public typealias Element = Message
    public let requestID: UInt64
    let replies: AsyncThrowingStream<Envelope, any Error>
    let connection: TributaryConnection

    public struct AsyncIterator: AsyncIteratorProtocol {
        let requestID: UInt64
        var replies: AsyncThrowingStream<Envelope, any Error>.AsyncIterator
        let connection: TributaryConnection
        /// Credits go back once this many streamed frames have been read: half of the stream's initial
        /// credit, so the server never runs dry while the reader keeps up, at a fraction of the frames.
        let creditBatch: UInt32
        var consumed: UInt32 = 0

        public mutating func next() async throws -> Message? {
            guard let envelope = try await replies.next() else { return nil }
            if case .errorReply(let error) = envelope.message {
                throw ServerError(code: error.code, retryAfterMs: error.retryAfterMs, message: error.message)
            }
            if envelope.message.type.consumesCredit && !envelope.flags.contains(.final) {
                consumed += 1
                if consumed == creditBatch {
                    consumed = 0
                    // If the connection has closed, the frames already here are still read; the stream then
                    // ends with the connection's error.
                    try? await connection.grant(creditBatch, to: requestID)
                }
            }
            return envelope.message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(
            requestID: requestID, replies: replies.makeAsyncIterator(), connection: connection,
            creditBatch: Swift.max(1, connection.streamCredits / 2))
    }
}
