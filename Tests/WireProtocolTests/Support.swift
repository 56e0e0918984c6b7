import Foundation
import NIOCore
import TensorCore
import WireProtocol

/// The repository root, above Tests/WireProtocolTests.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let python3 = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// Runs python3 with `arguments` in `directory`; returns the exit status and everything it printed.
func runPython(_ arguments: [String], in directory: URL = repositoryRoot, environment: [String: String] = [:])
    throws -> (status: Int32, output: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python3!)
    process.arguments = arguments
    process.currentDirectoryURL = directory
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

extension Envelope {
    var frameBytes: ByteBuffer {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return buffer
    }

    /// The frame as a receiver reads it, payload not yet decoded.
    var frame: Frame {
        var buffer = frameBytes
        return try! Frame.read(from: &buffer, maxPayload: FrameLimits.absoluteMaxPayload)!
    }
}

extension ByteBuffer {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes: bytes)
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined() }
}

/// Decodes one whole frame, as a receiver does: header, then payload.
func decodeFrame(_ bytes: ByteBuffer, maxPayload: UInt32 = FrameLimits.defaultMaxPayload) throws(WireError) -> Envelope {
    var buffer = bytes
    guard let frame = try Frame.read(from: &buffer, maxPayload: maxPayload) else {
        throw .truncated(field: "frame", needed: FrameLimits.headerSize, available: bytes.readableBytes)
    }
    guard buffer.readableBytes == 0 else { throw .trailingBytes(message: "frame", count: buffer.readableBytes) }
    return try Envelope(decoding: frame)
}

/// protocol/vectors/frames.json.
struct Vectors {
    struct Valid {
        var name: String
        var hex: String
        var type: UInt8
        var requestID: UInt64
        var flags: UInt16
    }
    struct Invalid {
        var name: String
        var hex: String
        var maxPayload: UInt32
        var error: String
    }
    var valid: [Valid]
    var invalid: [Invalid]

    static func load() throws -> Vectors {
        let url = repositoryRoot.appendingPathComponent("protocol/vectors/frames.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return Vectors(
            valid: (json["valid"] as! [[String: Any]]).map {
                Valid(
                    name: $0["name"] as! String, hex: $0["hex"] as! String, type: ($0["type"] as! NSNumber).uint8Value,
                    requestID: ($0["request_id"] as! NSNumber).uint64Value, flags: ($0["flags"] as! NSNumber).uint16Value)
            },
            invalid: (json["invalid"] as! [[String: Any]]).map {
                Invalid(
                    name: $0["name"] as! String, hex: $0["hex"] as! String,
                    maxPayload: ($0["max_payload"] as! NSNumber).uint32Value, error: $0["error"] as! String)
            })
    }
}
