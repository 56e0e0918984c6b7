import Crypto
import Foundation
import TributaryClient
import WireProtocol

/// Checks an export as its chunks arrive against the byte count and SHA-256 its `ExportEnd` announces.
public struct ExportVerifier {
    private var hash = SHA256()
    public private(set) var bytes: UInt64 = 0

    public init() {}

    public mutating func add(_ chunk: [UInt8]) {
        hash.update(data: chunk)
        bytes += UInt64(chunk.count)
    }

    /// - Throws: a `protocolError` failure naming what differs.
    public func verify(_ end: Wire.ExportEnd) throws(ClientFailure) {
        guard bytes == end.bytes else {
            throw ClientFailure(.protocolError, "export damaged in transfer: received \(bytes) bytes, the server sent \(end.bytes)")
        }
        let digest = Array(hash.finalize())
        guard digest == end.sha256 else {
            throw ClientFailure(
                .protocolError,
                "export damaged in transfer: SHA-256 \(hexString(digest)) differs from the server's \(hexString(end.sha256))")
        }
    }
}

/// What an inference stream brought: its tokens, usage, and (when asked for) attribution and reward split.
public struct InferenceResult: Sendable {
    public var tokens: [Wire.Token] = []
    public var end: Wire.InferEnd?
    public var attribution: Wire.Attribution?
    public var rewardSplit: Wire.RewardSplit?

    public init() {}

    public var text: String { tokens.map(\.text).joined() }

    /// Takes one reply frame of an `Infer` request; false if it is not one an inference sends.
    public mutating func take(_ message: Message) -> Bool {
        switch message {
        case .token(let token): tokens.append(token)
        case .inferEnd(let end): self.end = end
        case .attribution(let attribution): self.attribution = attribution
        case .rewardSplit(let split): rewardSplit = split
        default: return false
        }
        return true
    }
}

extension ClientSession {
    /// Streams `version` as JSON Lines into `sink`, chunk by chunk, and checks it against `ExportEnd`.
    public func export(_ version: Wire.VersionRef, into sink: ([UInt8]) throws -> Void) async throws(ClientFailure) -> Wire.ExportEnd {
        var replies = try await stream(.export(Wire.Export(version: version))).makeAsyncIterator()
        var verifier = ExportVerifier()
        while let reply = try await next(&replies) {
            switch reply {
            case .exportChunk(let chunk):
                verifier.add(chunk.jsonl)
                do { try sink(chunk.jsonl) } catch {
                    throw ClientFailure(.input, "cannot write the export: \(error.localizedDescription)")
                }
            case .exportEnd(let end):
                try verifier.verify(end)
                return end
            default:
                throw unexpected(reply, answering: .export)
            }
        }
        throw ClientFailure(.protocolError, "\(role.name) at \(address) ended the export without EXPORT_END")
    }

    /// Downloads `version` to the file at `path`, written beside it (`PATH.partial`) and moved over it only
    /// once verified, so that a failed download leaves nothing behind.
    public func export(_ version: Wire.VersionRef, toFile path: String) async throws(ClientFailure) -> Wire.ExportEnd {
        let partial = path + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: nil), let handle = FileHandle(forWritingAtPath: partial) else {
            throw ClientFailure(.input, "cannot write \(partial)")
        }
        do throws(ClientFailure) {
            let end = try await export(version) { try handle.write(contentsOf: $0) }
            try? handle.close()
            _ = try? FileManager.default.removeItem(atPath: path)
            do { try FileManager.default.moveItem(atPath: partial, toPath: path) } catch {
                throw ClientFailure(.input, "cannot write \(path): \(error.localizedDescription)")
            }
            return end
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    /// Runs an inference, handing every frame to `onFrame` as it arrives (tokens to print at once).
    /// `onStart` gets the request's id, with which `connection.cancel` stops it (it then ends `cancelled`).
    public func infer(
        _ request: Wire.Infer, onStart: (UInt64) -> Void = { _ in }, onFrame: (Message) -> Void
    ) async throws(ClientFailure) -> InferenceResult {
        let stream = try await stream(.infer(request))
        onStart(stream.requestID)
        var replies = stream.makeAsyncIterator()
        var result = InferenceResult()
        while let reply = try await next(&replies) {
            guard result.take(reply) else { throw unexpected(reply, answering: .infer) }
            onFrame(reply)
        }
        return result
    }

    /// Streams a job's events after `afterSeq` until the final one (done, failed or cancelled), which it returns.
    public func jobEvents(
        _ job: UInt64, afterSeq: UInt64, onEvent: (Wire.JobEvent) async -> Void
    ) async throws(ClientFailure) -> Wire.JobEvent {
        var replies = try await stream(.jobEvents(Wire.JobEvents(job: job, afterSeq: afterSeq))).makeAsyncIterator()
        var last: Wire.JobEvent?
        while let reply = try await next(&replies) {
            guard case .jobEvent(let event) = reply else { throw unexpected(reply, answering: .jobEvents) }
            last = event
            await onEvent(event)
        }
        guard let last, last.kind.isFinal else {
            throw ClientFailure(.connection, "\(role.name) at \(address) ended job \(job)'s events before it finished; try again")
        }
        return last
    }
}

extension ClientSession {
    /// Follows a job's events to its end on the coordinator, connecting again (from the last event seen)
    /// when the connection is lost after events arrived, at most `reconnects` times.
    public static func followJob(
        _ job: UInt64, settings: ClientSettings, reconnects: Int = 5, onEvent: (Wire.JobEvent) async -> Void
    ) async throws(ClientFailure) -> Wire.JobEvent {
        var lastSeq: UInt64 = 0
        var attempt = 0
        while true {
            do throws(ClientFailure) {
                return try await with(.coordinator, settings) { session throws(ClientFailure) in
                    try await session.jobEvents(job, afterSeq: lastSeq) { event in
                        lastSeq = event.seq
                        await onEvent(event)
                    }
                }
            } catch {
                // A coordinator that never answered is reported at once; a lost stream is resumed.
                guard error.kind == .connection && lastSeq > 0 && attempt < reconnects else { throw error }
                attempt += 1
                try? await Task.sleep(for: .seconds(attempt))
            }
        }
    }
}

/// Bytes as lowercase hex, as the protocol's vectors and the store print hashes.
public func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
