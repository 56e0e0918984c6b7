#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SafeTensors {
    /// Writes `tensors` to `path` as safetensors in the official library's layout: tensors sorted
    /// by name (byte order; one dtype, so the official dtype-first sort changes nothing), data
    /// contiguous in that order, the JSON header padded with spaces to a multiple of 8 bytes, so
    /// every tensor's data is 8-byte aligned in the file. `metadata` nil writes no `__metadata__`.
    ///
    /// `dtype` is `.f32`, `.f16` or `.bf16` (rounded to nearest, ties to even; NaN stays NaN).
    /// Views are written as their dense row-major elements.
    ///
    /// The write is durable and atomic: a temporary file in the same directory is written and
    /// fsynced, renamed over `path`, and the directory fsynced. Readers see the old file or the
    /// new one, never a mix. Duplicate names and the name `__metadata__` are rejected.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)], metadata: [String: String]? = nil,
        to path: String, dtype: Dtype = .f32
    ) throws(SafeTensorsError) {
        let layout = try Layout(
            entries: tensors.map { ($0.name, $0.tensor.shape) }, metadata: metadata, dtype: dtype, path: path)
        let file = try DurableFile(path: path)
        do throws(SafeTensorsError) {
            try file.write(layout.header[...])
            for index in layout.order {
                try writeData(of: tensors[index].tensor, as: dtype, to: file)
            }
            try file.commit()
        } catch {
            file.abandon()
            throw error
        }
    }

    /// Writes `tensors` to `path`; see `write(_:metadata:to:dtype:)` for the layout.
    public static func write(
        _ tensors: [String: Tensor], metadata: [String: String]? = nil, to path: String, dtype: Dtype = .f32
    ) throws(SafeTensorsError) {
        try write(tensors.map { (name: $0.key, tensor: $0.value) }, metadata: metadata, to: path, dtype: dtype)
    }

    /// The file's header (length prefix, JSON and padding) and the order the tensors' data follows in.
    struct Layout {
        var header: [UInt8]
        /// Indices into the entries, in data order.
        var order: [Int]

        init(
            entries: [(name: String, shape: [Int])], metadata: [String: String]?, dtype: Dtype, path: String
        ) throws(SafeTensorsError) {
            guard dtype.isSupported else { throw SafeTensorsError(path: path, reason: .unsupportedDtype(dtype)) }
            var seen = Set<String>()
            for entry in entries {
                guard entry.name != "__metadata__" else {
                    throw SafeTensorsError(path: path, tensor: entry.name, reason: .reservedName)
                }
                guard seen.insert(entry.name).inserted else {
                    throw SafeTensorsError(path: path, tensor: entry.name, reason: .duplicateTensor)
                }
            }
            order = entries.indices.sorted { entries[$0].name.utf8.lexicographicallyPrecedes(entries[$1].name.utf8) }

            var json: [UInt8] = [UInt8(ascii: "{")]
            if let metadata {
                json += Array("\"__metadata__\":{".utf8)
                let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
                for (position, key) in keys.enumerated() {
                    if position > 0 { json.append(UInt8(ascii: ",")) }
                    SafeTensorsJSON.appendQuoted(key, to: &json)
                    json.append(UInt8(ascii: ":"))
                    SafeTensorsJSON.appendQuoted(metadata[key]!, to: &json)
                }
                json.append(UInt8(ascii: "}"))
                if !entries.isEmpty { json.append(UInt8(ascii: ",")) }
            }
            var offset = 0
            for (position, index) in order.enumerated() {
                let (name, shape) = entries[index]
                guard let bits = dtype.bitCount(shape: shape), case let (end, false) = offset.addingReportingOverflow(bits / 8)
                else { throw SafeTensorsError(path: path, tensor: name, reason: .sizeOverflow(shape: shape)) }
                if position > 0 { json.append(UInt8(ascii: ",")) }
                SafeTensorsJSON.appendQuoted(name, to: &json)
                json += Array(":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[".utf8)
                json += Array(shape.map(String.init).joined(separator: ",").utf8)
                json += Array("],\"data_offsets\":[\(offset),\(end)]}".utf8)
                offset = end
            }
            json.append(UInt8(ascii: "}"))
            // Pad to 8 bytes, as the official writer does, so the data buffer starts 8-byte aligned.
            json += repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8)
            guard json.count <= maximumHeaderByteCount else {
                throw SafeTensorsError(path: path, reason: .headerTooLarge(byteCount: UInt64(json.count)))
            }
            header = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        }
    }

    private static func writeData(of tensor: Tensor, as dtype: Dtype, to file: DurableFile) throws(SafeTensorsError) {
        var failure: SafeTensorsError?
        tensor.withUnsafeBufferPointer { elements in
            do throws(SafeTensorsError) {
                if dtype == .f32 {
                    try file.write(UnsafeRawBufferPointer(elements))
                    return
                }
                // Convert through a bounded scratch buffer, so no tensor-sized copy is made.
                let chunk = 1 << 16
                var halves = [UInt16](repeating: 0, count: min(chunk, elements.count))
                var start = 0
                while start < elements.count {
                    let end = min(start + chunk, elements.count)
                    if dtype == .f16 {
                        for i in start..<end { halves[i - start] = Float16(elements[i]).bitPattern }
                    } else {
                        for i in start..<end { halves[i - start] = bfloat16Bits(elements[i]) }
                    }
                    try file.write(halves[0..<(end - start)])
                    start = end
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// `value` rounded to bfloat16, to nearest with ties to even; NaN stays a (quiet) NaN.
    static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let roundingBias = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif

/// A file written under a temporary name in its target's directory and renamed over the target
/// once complete and on disk.
private final class DurableFile {
    let path: String
    let directory: String
    let temporaryPath: String
    private var fd: Int32

    init(path: String) throws(SafeTensorsError) {
        let nameStart = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        guard nameStart < path.endIndex else { throw SafeTensorsError(path: path, reason: .invalidPath) }
        self.path = path
        let name = path[nameStart...]
        let prefix = String(path[..<nameStart])  // "", "/" or "dir/"
        directory = prefix.isEmpty ? "." : prefix == "/" ? "/" : String(prefix.dropLast())
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        temporaryPath = prefix + ".\(name).tmp-\(getpid())-\(suffix)"
        var fd: Int32
        repeat { fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw SafeTensorsError(path: path, reason: .systemCall("open", errno: errno)) }
        self.fd = fd
    }

    private func failure(_ call: String) -> SafeTensorsError {
        SafeTensorsError(path: path, reason: .systemCall(call, errno: errno))
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(SafeTensorsError) {
        var done = 0
        while done < bytes.count {
            // Linux writes at most 0x7ffff000 bytes a call.
            let written = systemWrite(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("write")
            }
            done += written
        }
    }

    func write<Element: BitwiseCopyable>(_ elements: ArraySlice<Element>) throws(SafeTensorsError) {
        let result = elements.withUnsafeBytes { bytes in
            Result { () throws(SafeTensorsError) in try write(bytes) }
        }
        try result.get()
    }

    /// Flushes, closes, renames over the target and flushes the directory entry.
    func commit() throws(SafeTensorsError) {
        guard fsync(fd) == 0 else { throw failure("fsync") }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw failure("close") }
        guard rename(temporaryPath, path) == 0 else { throw failure("rename") }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw failure("open directory") }
        defer { close(directoryFD) }
        // Some file systems cannot fsync a directory (EINVAL); the rename is then as durable as they allow.
        guard fsync(directoryFD) == 0 || errno == EINVAL else { throw failure("fsync directory") }
    }

    /// Closes and removes the temporary file after a failure.
    func abandon() {
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(temporaryPath)
    }

    deinit {
        if fd >= 0 {
            close(fd)
            unlink(temporaryPath)
        }
    }
}
