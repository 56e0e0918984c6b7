import Logging
import NIOCore
import Synchronization
import WireProtocol

/// One client connection after the protocol handler: authenticates the HELLO's token, answers WELCOME, then
/// runs each request as a child task, multiplexed by request id, within the connection's limits. CREDIT and
/// CANCEL go to the open request they name. Its tasks prefer the channel's event loop (see ``ProtocolService``).
final class Connection<Service: ProtocolService>: Sendable {
    private let channel: NIOAsyncChannel<Envelope, Envelope>
    private let server: ProtocolServer<Service>
    private let logger: Logger

    private struct State {
        var requests: [UInt64: RequestStream] = [:]
        var highestRequestID: UInt64 = 0
        var draining = false
        /// Each stream's first credits: HELLO's `stream_credits`.
        var streamCredits: UInt32 = 1
        var outbound: NIOAsyncChannelOutboundWriter<Envelope>?
    }

    private let state = Mutex(State())

    init(channel: NIOAsyncChannel<Envelope, Envelope>, server: ProtocolServer<Service>) {
        self.channel = channel
        self.server = server
        var logger = server.logger
        logger[metadataKey: "peer"] = "\(channel.channel.remoteAddress?.description ?? "?")"
        self.logger = logger
    }

    func run() async {
        do {
            try await channel.executeThenClose { inbound, outbound in
                state.withLock { $0.outbound = outbound }
                var frames = inbound.makeAsyncIterator()
                // The protocol handler lets nothing but a valid HELLO through first.
                guard let first = try await frames.next(), case .hello(let hello) = first.message else { return }
                guard let context = try await handshake(hello, outbound: outbound) else { return }
                try await withThrowingDiscardingTaskGroup { requests in
                    while let envelope = try await frames.next() {
                        try await receive(envelope, context: context, outbound: outbound, requests: &requests)
                    }
                    // The client has gone: nobody will grant credits or read replies again.
                    cancelOpenRequests()
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(String(describing: error).escapedForLog)"])
        }
        cancelOpenRequests()
    }

    private func cancelOpenRequests() {
        for stream in state.withLock({ Array($0.requests.values) }) { stream.cancel() }
    }

    /// WELCOME with the token's contributor, or an ERROR for a bad token (then the connection closes).
    private func handshake(_ hello: Wire.Hello, outbound: NIOAsyncChannelOutboundWriter<Envelope>) async throws -> RequestContext? {
        let contributor: Int64?
        do {
            contributor = try await server.service.authenticate(token: hello.authToken)
        } catch {
            logger.notice(
                "handshake refused", metadata: ["client": "\(hello.clientName.escapedForLog)", "error": "\(String(describing: error).escapedForLog)"])
            let failure = RequestFailure(error)
            try await outbound.write(Envelope.error(failure, requestID: 0))
            return nil
        }
        let configuration = server.configuration
        try await outbound.write(
            Envelope(requestID: 0, message: .welcome(Wire.Welcome(
                version: UInt16(WireVersion.current), features: 0, maxFrameSize: configuration.maxFramePayload,
                maxConcurrentRequests: UInt32(configuration.maxConcurrentRequests), contributor: contributor,
                serverName: configuration.serverName))))
        logger.info("connected", metadata: ["client": "\(hello.clientName.escapedForLog)", "contributor": "\(contributor.map(String.init) ?? "anonymous")"])
        state.withLock { $0.streamCredits = hello.streamCredits }
        return RequestContext(
            contributor: contributor, serverStartedAt: server.startedAt, isDraining: { [server] in server.isDraining },
            peerMaxPayload: hello.maxFrameSize)
    }

    private func receive(
        _ envelope: Envelope, context: RequestContext, outbound: NIOAsyncChannelOutboundWriter<Envelope>,
        requests: inout ThrowingDiscardingTaskGroup<any Error>
    ) async throws {
        let id = envelope.requestID
        switch envelope.message {
        case .credit(let credit):
            // A request that has just finished may still receive credits in flight: nothing to do.
            guard let stream = state.withLock({ $0.requests[id] }), !stream.grant(credit.credits) else { return }
            // Credit past 2^31 - 1 breaks flow control: the connection cannot go on.
            logger.notice("credit overflow", metadata: ["request": "\(id)"])
            try await outbound.write(Envelope.error(
                .flowControl, "CREDIT of \(credit.credits) on request \(id) raises its credit above \(RequestStream.maxCredits)",
                requestID: 0))
            try await channel.channel.close()
        case .cancel:
            state.withLock { $0.requests[id] }?.cancel()
        default:
            let stream: RequestStream
            switch admit(id) {
            case .success(let admitted): stream = admitted
            case .failure(let failure):
                try await outbound.write(Envelope.error(failure, requestID: id))
                return
            }
            let service = server.service
            let statistics = service.statistics
            let logger = logger
            requests.addTask {
                let start = ContinuousClock.now
                statistics.requestStarted()
                let replier = Replier(stream: stream, outbound: outbound, eventLoop: self.channel.channel.eventLoop)
                await service.handle(envelope.message, context: context, replier: replier)
                statistics.requestFinished(after: ContinuousClock.now - start)
                self.state.withLock { _ = $0.requests.removeValue(forKey: id) }
                logger.trace("request done", metadata: ["request": "\(id)", "type": "\(envelope.message.type)"])
            }
        }
    }

    /// Opens the request's stream, or says why not.
    private func admit(_ id: UInt64) -> Result<RequestStream, RequestFailure> {
        let limit = server.configuration.maxConcurrentRequests
        return state.withLock { state in
            if state.draining {
                return .failure(RequestFailure(.unavailable, "the server is shutting down: reconnect elsewhere"))
            }
            if state.requests[id] != nil {
                return .failure(RequestFailure(.duplicateRequestID, "request id \(id) is already open"))
            }
            if state.requests.count >= limit {
                return .failure(
                    RequestFailure(.tooManyRequests, "\(limit) requests are already open on this connection", retryAfterMs: 10))
            }
            let stream = RequestStream(requestID: id, credits: state.streamCredits)
            state.requests[id] = stream
            state.highestRequestID = max(state.highestRequestID, id)
            return .success(stream)
        }
    }

    /// GOAWAY, then wait for open requests up to `timeout`, cancel what remains, and close.
    func drain(timeout: Duration) async {
        // Once: a connection accepted as the shutdown began may be handed to it twice.
        guard let (outbound, last) = state.withLock({ state -> (NIOAsyncChannelOutboundWriter<Envelope>?, UInt64)? in
            guard !state.draining else { return nil }
            state.draining = true
            return (state.outbound, state.highestRequestID)
        }) else { return }
        try? await outbound?.write(
            Envelope(requestID: 0, message: .goAway(Wire.GoAway(lastRequestId: last, code: ErrorCode.unavailable.rawValue, message: "the server is shutting down"))))
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline, state.withLock({ !$0.requests.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let remaining = state.withLock { Array($0.requests.values) }
        if !remaining.isEmpty {
            logger.notice("cancelling requests at shutdown", metadata: ["count": "\(remaining.count)"])
            cancelOpenRequests()
            let grace = clock.now + .seconds(2)
            while clock.now < grace, state.withLock({ !$0.requests.isEmpty }) {
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        try? await channel.channel.close()
    }
}
