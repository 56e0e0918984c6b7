/// A Float32 tensor: a shape, strides in elements, and copy-on-write storage.
///
/// New tensors are dense and row-major. Views (`transposed()`, `slice(_:_:)`,
/// `viewing(shape:strides:offset:)`) share storage without copying, which is
/// how attention addresses one head of a `[tokens, heads * headDim]` matrix.
/// Writing to a view whose storage is shared copies the view's elements into
/// fresh dense storage first, so values never change behind another tensor.
public struct Tensor: Sendable {
    public private(set) var shape: [Int]
    /// Element strides per dimension. 0 broadcasts a dimension.
    public private(set) var strides: [Int]
    @usableFromInline var offset: Int
    @usableFromInline var storage: TensorStorage

    @usableFromInline
    init(storage: TensorStorage, shape: [Int], strides: [Int], offset: Int) {
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// A dense, zero-filled tensor.
    public init(zeros shape: [Int]) {
        Self.checkShape(shape)
        self.init(
            storage: TensorStorage(zeroedCount: Self.elementCount(shape)),
            shape: shape, strides: Self.rowMajorStrides(shape), offset: 0)
    }

    /// A dense tensor whose elements are unspecified until written: only for outputs that a kernel
    /// (a GEMM with beta 0, an elementwise kernel) overwrites entirely.
    package init(unfilled shape: [Int]) {
        Self.checkShape(shape)
        self.init(
            storage: TensorStorage(unfilledCount: Self.elementCount(shape)),
            shape: shape, strides: Self.rowMajorStrides(shape), offset: 0)
    }

    /// A dense tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        if value != 0 { storage.base.update(repeating: value, count: storage.count) }
    }

    /// A dense tensor holding `scalars` in row-major order.
    public init(shape: [Int], scalars: [Float]) {
        self.init(zeros: shape)
        precondition(
            scalars.count == count, "shape \(shape) holds \(count) elements, got \(scalars.count) scalars")
        scalars.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: count) }
    }

    /// A dense tensor whose elements `body` writes, in row-major order, into a zeroed buffer.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.init(zeros: shape)
        try body(UnsafeMutableBufferPointer(start: storage.base, count: count))
    }

    init(borrowing base: UnsafePointer<Float>, shape: [Int], owner: AnyObject) {
        Self.checkShape(shape)
        let count = Self.elementCount(shape)
        self.init(
            storage: TensorStorage(borrowing: base, count: count, owner: owner),
            shape: shape, strides: Self.rowMajorStrides(shape), offset: 0)
    }

    // MARK: Shape

    public var rank: Int { shape.count }
    public var count: Int { Self.elementCount(shape) }

    /// True when the elements are dense and in row-major order.
    public var isContiguous: Bool { strides == Self.rowMajorStrides(shape) || count <= 1 }

    /// True when the last dimension is dense: rows may be apart (a leading dimension), as BLAS allows.
    public var hasDenseRows: Bool { rank == 0 || strides[rank - 1] == 1 || shape[rank - 1] <= 1 }

    /// The row-major strides of a dense tensor of `shape`.
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    static func checkShape(_ shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
    }

    // MARK: Elements

    /// The storage index of the element at `indices`.
    @inlinable
    func storageIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == rank, "\(indices.count) indices for a rank-\(rank) tensor")
        var index = offset
        for axis in 0..<rank {
            precondition(
                indices[axis] >= 0 && indices[axis] < shape[axis],
                "index \(indices[axis]) out of range 0..<\(shape[axis]) on axis \(axis)")
            index += indices[axis] * strides[axis]
        }
        return index
    }

    /// One element. For tests and setup; kernels use the pointer accessors.
    public subscript(_ indices: Int...) -> Float {
        get { storage.base[storageIndex(indices)] }
        set {
            makeUniqueAndWritable()
            storage.base[storageIndex(indices)] = newValue
        }
    }

    /// All elements in row-major order of this view.
    public var scalars: [Float] {
        if isContiguous {
            return Array(UnsafeBufferPointer(start: storage.base + offset, count: count))
        }
        var result = [Float]()
        result.reserveCapacity(count)
        forEachStorageIndex { result.append(storage.base[$0]) }
        return result
    }

    /// Calls `body` with the storage index of every element, in row-major order of this view.
    func forEachStorageIndex(_ body: (Int) -> Void) {
        guard count > 0 else { return }
        if rank == 0 { return body(offset) }
        var index = [Int](repeating: 0, count: rank)
        var position = offset
        while true {
            body(position)
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                position += strides[axis]
                if index[axis] < shape[axis] { break }
                position -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }

    // MARK: Views

    /// A view with explicit shape, strides and offset (in elements) over the same storage.
    /// Every addressed element must lie inside the storage.
    public func viewing(shape: [Int], strides: [Int], offset: Int = 0) -> Tensor {
        Self.checkShape(shape)
        precondition(shape.count == strides.count, "shape \(shape) and strides \(strides) differ in rank")
        let start = self.offset + offset
        if Self.elementCount(shape) > 0 {
            var low = start, high = start
            for (extent, stride) in zip(shape, strides) {
                let reach = (extent - 1) * stride
                if reach < 0 { low += reach } else { high += reach }
            }
            precondition(
                low >= 0 && high < storage.count,
                "view shape \(shape) strides \(strides) offset \(offset) reaches outside \(storage.count) elements")
        }
        return Tensor(storage: storage, shape: shape, strides: strides, offset: start)
    }

    /// A view with two axes swapped (the last two by default): a transposed matrix without a copy.
    public func transposed(_ axis0: Int = -2, _ axis1: Int = -1) -> Tensor {
        let a = axis0 < 0 ? rank + axis0 : axis0
        let b = axis1 < 0 ? rank + axis1 : axis1
        precondition(a >= 0 && a < rank && b >= 0 && b < rank, "axes \(axis0), \(axis1) out of range for rank \(rank)")
        var view = self
        view.shape.swapAt(a, b)
        view.strides.swapAt(a, b)
        return view
    }

    /// A view of `range` along `axis`.
    public func slice(_ axis: Int, _ range: Range<Int>) -> Tensor {
        precondition(axis >= 0 && axis < rank, "axis \(axis) out of range for rank \(rank)")
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[axis],
            "slice \(range) out of range 0..<\(shape[axis]) on axis \(axis)")
        var view = self
        view.shape[axis] = range.count
        view.offset += range.lowerBound * strides[axis]
        return view
    }

    /// The same elements under a new shape: a view when dense, a dense copy otherwise.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Self.checkShape(newShape)
        precondition(
            Self.elementCount(newShape) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let dense = contiguous()
        return Tensor(storage: dense.storage, shape: newShape, strides: Self.rowMajorStrides(newShape), offset: dense.offset)
    }

    /// This tensor if it is dense, else a dense copy of it.
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        var copy = Tensor(unfilled: shape)
        var target = copy.storage.base
        forEachStorageIndex { source in
            target.pointee = storage.base[source]
            target += 1
        }
        copy.offset = 0
        return copy
    }

    /// Whether the elements are borrowed from memory this tensor does not own (a memory-mapped file),
    /// read-only: writing copies them first.
    public var isBorrowed: Bool { !storage.isWritable }

    /// This tensor if it is dense and starts on a 64-byte cache line, else a dense copy that does.
    /// Loading no longer uses it (mapped weights stay in place, docs/PERFORMANCE.md "Real scale: memory");
    /// the decode benchmark's `--aligned-copy` and the kernel tests use it to compare against aligned weights.
    public func cacheLineAligned() -> Tensor {
        let address = UInt(bitPattern: storage.base + offset)
        if isContiguous && address % UInt(TensorStorage.alignment) == 0 { return self }
        var copy = self
        copy.copyToUniqueStorage()
        return copy
    }

    // MARK: Copy-on-write

    @inlinable
    mutating func makeUniqueAndWritable() {
        if _fastPath(storage.isWritable && isKnownUniquelyReferenced(&storage)) { return }
        copyToUniqueStorage()
    }

    /// The slow path of copy-on-write: the elements of this view, dense, in storage of their own.
    @usableFromInline
    mutating func copyToUniqueStorage() {
        let dense = contiguous()
        let copy = Tensor(unfilled: shape)
        copy.storage.base.update(from: dense.storage.base + dense.offset, count: count)
        self = copy
    }

    // MARK: Pointer access (compute core only)

    /// Calls `body` with a pointer to this view's first element; address elements with `strides`.
    @inlinable
    public func withUnsafePointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafePointer(storage.base + offset))
    }

    /// Calls `body` with a writable pointer to this view's first element, copying shared storage first.
    @inlinable
    public mutating func withUnsafeMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        makeUniqueAndWritable()
        return try body(storage.base + offset)
    }

    /// Calls `body` with the dense row-major elements, copying a strided view first.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let dense = contiguous()
        return try body(UnsafeBufferPointer(start: dense.storage.base + dense.offset, count: count))
    }

    /// Calls `body` with the dense row-major elements to read and write, making them dense and unique first.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isContiguous { self = contiguous() }
        makeUniqueAndWritable()
        return try body(UnsafeMutableBufferPointer(start: storage.base + offset, count: count))
    }
}

extension Tensor: Equatable {
    /// Equal shapes and elements; layout and storage do not matter.
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        lhs.shape == rhs.shape && lhs.scalars == rhs.scalars
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}
