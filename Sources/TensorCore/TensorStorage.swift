/// The buffer behind one or more `Tensor` values.
///
/// Either Tributary owns it (64-byte aligned, writable) or it lies inside a
/// read-only memory map that `keepAlive` holds open. Mutating a tensor whose
/// storage is shared or read-only copies it first (copy-on-write).
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    // Sendable: the buffer is only written through a uniquely referenced storage.
    @usableFromInline let base: UnsafeMutablePointer<Float>
    @usableFromInline let count: Int
    @usableFromInline let isWritable: Bool
    private let keepAlive: AnyObject?

    static let alignment = 64

    /// Owned, zero-filled storage of `count` floats.
    @usableFromInline
    convenience init(zeroedCount count: Int) {
        self.init(unfilledCount: count)
        base.update(repeating: 0, count: max(count, 1))
    }

    /// Owned storage of `count` floats whose values are whatever the allocator left: for outputs a
    /// kernel overwrites entirely, where zero-filling first cost a tenth of a backward pass.
    init(unfilledCount count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: Self.alignment)
        // Float is trivial: binding leaves every bit pattern a valid (if arbitrary) value.
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        isWritable = true
        keepAlive = nil
    }

    /// Read-only storage inside memory that `owner` keeps mapped.
    init(borrowing base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.base = UnsafeMutablePointer(mutating: base)
        self.count = count
        isWritable = false
        keepAlive = owner
    }

    deinit {
        if keepAlive == nil { UnsafeMutableRawPointer(base).deallocate() }
    }
}
