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
        try await stream.takeCredit()
        try await outbound.write(Envelope(requestID: stream.requestID, message: message))
    }

    /// A frame that is neither streamed (it takes no credit) nor the last one.
    public func send(_ message: Message) async throws {
        try await outbound.write(Envelope(requestID: stream.requestID, message: message))
    }

    public func fail(_ failure: RequestFailure) async throws {
        try await outbound.write(Envelope.error(failure, requestID: stream.requestID))
    }
}
