import NIOCore
import WireProtocol

/// Sends one request's replies: streamed frames take a credit first; the last frame carries FINAL.
public struct Replier: Sendable {
    public let stream: RequestStream
    let outbound: NIOAsyncChannelOutboundWriter<Envelope>

    public func finish(_ message: Message) async throws {
        try await outbound.write(Envelope(requestID: stream.requestID, flags: .final, message: message))
    }

    /// A streamed frame: waits for a credit.
    public func send(streamed message: Message) async throws {
        try await send(streamed: [message])
    }

    /// Streamed frames, one credit each, written together (one flush) as far as the credits reach.
    public func send(streamed messages: [Message]) async throws {
        var next = 0
        while next < messages.count {
            let granted = try await stream.takeCredits(upTo: messages.count - next)
            try await outbound.write(contentsOf: messages[next..<next + granted].map { Envelope(requestID: stream.requestID, message: $0) })
            next += granted
        }
    }

    /// A frame that is neither streamed (it takes no credit) nor the last one.
    public func send(_ message: Message) async throws {
        try await outbound.write(Envelope(requestID: stream.requestID, message: message))
    }

    public func fail(_ failure: RequestFailure) async throws {
        try await outbound.write(Envelope.error(failure, requestID: stream.requestID))
    }
}
