import CBLASShim

/// How a compute process's freed buffers go back to the system.
public enum ComputeMemory {
    /// Keeps freed tensor buffers (each under 32 MiB) for reuse, up to `bytes` of them, instead of
    /// returning them to the kernel after every pass, which then faults zeroed pages back in on the
    /// next (`tb_retain_freed_memory`: glibc's `mallopt`). For batch commands (index, train); returns
    /// false where the C library does not support it.
    @discardableResult
    public static func retainFreedBuffers(upTo bytes: Int) -> Bool {
        precondition(bytes >= 0, "negative byte count \(bytes)")
        return tb_retain_freed_memory(bytes) == 0
    }
}
