import Crypto
import Foundation
import Store
import WireProtocol

/// One EXPORT: the version's JSON Lines, exactly the store's export, as EXPORT_CHUNKs (one credit each) cut at
/// line ends below the client's maximum payload, then EXPORT_END with the record count, the byte count and the
/// SHA-256 of the whole export.
struct ExportStream {
    let engine: Engine
    let version: DatanetVersionRef
    let replier: Replier
    /// The client's largest accepted payload (the handshake holds it to at least 4096).
    let maxPayload: Int

    /// Room in a chunk's payload for the field's length prefix, with margin.
    static let headroom = 64

    func run() async throws {
        // The handshake refuses a max_frame_size below 4096; a smaller one here is refused, never a trap.
        guard maxPayload > Self.headroom else {
            throw RequestFailure(.invalidArgument, "max_frame_size \(maxPayload) leaves no room for an export chunk")
        }
        let version = version
        // A published version never changes: its export and its record count agree.
        // Hashed there too: this task runs on the connection's event loop.
        let (export, records, digest) = try await engine.withStore { store in
            let export = try store.exportJSONL(version)
            return (export, try store.version(version).recordCount, Array(SHA256.hash(data: export)))
        }
        for chunk in Self.chunks(of: export, limit: maxPayload - Self.headroom) {
            try await replier.send(streamed: .exportChunk(Wire.ExportChunk(jsonl: Array(chunk))))
        }
        try await replier.finish(.exportEnd(Wire.ExportEnd(records: UInt32(records), bytes: UInt64(export.count), sha256: digest)))
    }

    /// `data` in pieces of at most `limit` bytes, each ending at a line end when a whole line fits, else cut at
    /// the limit (a line longer than it spans several pieces).
    static func chunks(of data: Data, limit: Int) -> [Data] {
        precondition(limit > 0, "a chunk holds at least one byte")
        var chunks: [Data] = []
        var start = data.startIndex
        while start < data.endIndex {
            let end = min(start + limit, data.endIndex)
            var cut = end
            if end < data.endIndex, let newline = data[start..<end].lastIndex(of: UInt8(ascii: "\n")) {
                cut = newline + 1
            }
            chunks.append(data[start..<cut])
            start = cut
        }
        return chunks
    }
}
