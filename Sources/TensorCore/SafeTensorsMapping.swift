#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole regular file mapped read-only and private. Tensors borrowing its bytes hold it as their
/// storage's owner, so the mapping lives as long as any of them.
///
/// If another process truncates the file while it is mapped, touching the lost pages raises SIGBUS:
/// the usual caveat of memory-mapped model files.
final class SafeTensorsMapping: @unchecked Sendable {
    // Sendable: the bytes are mapped PROT_READ and never written; the fields are immutable.
    let base: UnsafeRawPointer
    let byteCount: Int

    /// Maps `path`; a file shorter than `minimumByteCount` is rejected before mapping.
    init(path: String, minimumByteCount: Int) throws(SafeTensorsError) {
        func failure(_ call: String) -> SafeTensorsError {
            SafeTensorsError(path: path, reason: .systemCall(call, errno: errno))
        }
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }  // the mapping outlives the descriptor

        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure("fstat") }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw SafeTensorsError(path: path, reason: .notARegularFile)
        }
        let size = Int(status.st_size)
        guard size >= minimumByteCount else {
            throw SafeTensorsError(path: path, reason: .fileTooSmall(byteCount: size))
        }
        guard size > 0 else {
            // mmap rejects a zero length; nothing to map.
            base = UnsafeRawPointer(bitPattern: MemoryLayout<Float>.alignment)!
            byteCount = 0
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else { throw failure("mmap") }
        base = UnsafeRawPointer(mapped)
        byteCount = size
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: byteCount) }

    deinit {
        if byteCount > 0 { munmap(UnsafeMutableRawPointer(mutating: base), byteCount) }
    }
}
