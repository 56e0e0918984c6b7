/// Row operations on matrices with dense rows: gathering embedding rows, writing into a cache.
extension Tensor {
    /// The rows `indices` of `table` ([rows, cols], dense rows) as a new dense [indices.count, cols] matrix.
    public static func gatherRows(of table: Tensor, at indices: [Int]) -> Tensor {
        precondition(table.rank == 2 && table.hasDenseRows, "gatherRows needs a matrix with dense rows, got \(table.shape)")
        let (rows, cols, stride) = (table.shape[0], table.shape[1], table.strides[0])
        for (position, index) in indices.enumerated() {
            precondition(index >= 0 && index < rows, "row index \(index) at position \(position) out of range 0..<\(rows)")
        }
        return table.withUnsafePointer { source in
            Tensor(shape: [indices.count, cols]) { target in
                for (row, index) in indices.enumerated() {
                    (target.baseAddress! + row * cols).update(from: source + index * stride, count: cols)
                }
            }
        }
    }

    /// Overwrites rows `start..<start + source.shape[0]` of this matrix with `source`'s rows.
    public mutating func replaceRows(startingAt start: Int, with source: Tensor) {
        precondition(rank == 2 && source.rank == 2 && source.shape[1] == shape[1], "replaceRows: \(source.shape) into \(shape)")
        replaceBlock(row: start, column: 0, with: source)
    }

    /// Overwrites the block of this matrix whose top-left element is (`row`, `column`) with `source`.
    public mutating func replaceBlock(row: Int, column: Int, with source: Tensor) {
        precondition(rank == 2 && source.rank == 2, "replaceBlock: \(source.shape) into \(shape)")
        let (rows, cols) = (source.shape[0], source.shape[1])
        precondition(
            row >= 0 && column >= 0 && row + rows <= shape[0] && column + cols <= shape[1],
            "replaceBlock: rows \(row)..<\(row + rows), columns \(column)..<\(column + cols) outside \(shape)")
        makeUniqueAndWritable()
        precondition(hasDenseRows, "replaceBlock needs dense rows")
        let dense = source.hasDenseRows ? source : source.contiguous()
        let (targetStride, sourceStride) = (strides[0], dense.strides[0])
        dense.withUnsafePointer { from in
            withUnsafeMutablePointer { to in
                for offset in 0..<rows {
                    (to + (row + offset) * targetStride + column).update(from: from + offset * sourceStride, count: cols)
                }
            }
        }
    }
}

extension Tensor {
    /// Adds row i of `rows` to row `indices[i]` of this matrix (repeated indices accumulate):
    /// the backward of `gatherRows`.
    public mutating func addRows(_ rows: Tensor, at indices: [Int]) {
        precondition(rank == 2 && rows.rank == 2 && rows.shape == [indices.count, shape[1]], "addRows: \(rows.shape) at \(indices.count) indices into \(shape)")
        makeUniqueAndWritable()
        precondition(hasDenseRows, "addRows needs dense rows")
        let dense = rows.hasDenseRows ? rows : rows.contiguous()
        let (cols, targetStride, sourceStride, count) = (shape[1], strides[0], dense.strides[0], shape[0])
        dense.withUnsafePointer { from in
            withUnsafeMutablePointer { to in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < count, "row index \(index) out of range 0..<\(count)")
                    let target = to + index * targetStride, source = from + row * sourceStride
                    for column in 0..<cols { target[column] += source[column] }
                }
            }
        }
    }
}
