import NIOCore
import WireProtocol

/// Sends one request's replies: streamed frames take a credit first; the last frame carries FINAL.
public struct Replier: Sendable {
    public let stream: RequestStream
    let outbound: NIOAsyncChannelOutboundWriter<Envelope>
    /// The connection's event loop, where the replies are written: a handler may schedule its own pacing there.
    public let eventLoop: any EventLoop

    public func finish(_ message: Message) async throws {
        try await outbound.write(Envelope(requestID: stream.requestID, flags: .final, message: message))
    }

    /// A streamed frame: waits for a credit.
    public func send(streamed message: Message) async throws {
        try await send(streamed: [message])
    }

    /// Streamed frames, one credit each, written together (one flush) as far as the credits reach.
    public func send(streamed messages: [Message]) async throws {
        try await send(streamed: messages, trailing: nil)
    }

    /// Streamed frames, then `trailing`, which takes no credit (FINAL when `final`), in the same write as the
    /// last of them: a stream's last frames and its end cost the client one wake-up, not two.
    public func send(streamed messages: [Message], then trailing: Message, final: Bool) async throws {
        try await send(streamed: messages, trailing: Envelope(requestID: stream.requestID, flags: final ? .final : [], message: trailing))
    }

    private func send(streamed messages: [Message], trailing: Envelope?) async throws {
        var next = 0
        repeat {
            let granted = next < messages.count ? try await stream.takeCredits(upTo: messages.count - next) : 0
            var envelopes = messages[next..<next + granted].map { Envelope(requestID: stream.requestID, message: $0) }
            next += granted
            if next == messages.count, let trailing { envelopes.append(trailing) }
            if !envelopes.isEmpty { try await outbound.write(contentsOf: envelopes) }
        } while next < messages.count
    }

    /// A frame that is neither streamed (it takes no credit) nor the last one.
    public func send(_ message: Message) async throws {
        try await outbound.write(Envelope(requestID: stream.requestID, message: message))
    }

    public func fail(_ failure: RequestFailure) async throws {
        try await outbound.write(Envelope.error(failure, requestID: stream.requestID))
    }
}
