import Testing
@testable import TensorCore

@Suite struct TensorRowsTests {
    @Test func gatherRowsPicksRowsOfAPaddedTable() {
        var random = SeededRandom(seed: 31)
        let table = random.uniformTensor(shape: [7, 5], in: -1..<1).slice(1, 0..<3)
        let gathered = Tensor.gatherRows(of: table, at: [6, 0, 6, 3])
        #expect(gathered.shape == [4, 3])
        for (row, index) in [6, 0, 6, 3].enumerated() {
            #expect(gathered.slice(0, row..<row + 1).scalars == table.slice(0, index..<index + 1).scalars)
        }
    }

    @Test func replaceRowsWritesOnlyItsRowsAndKeepsCopiesIntact() {
        var cache = Tensor(zeros: [4, 2])
        let before = cache
        cache.replaceRows(startingAt: 1, with: Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        #expect(cache.scalars == [0, 0, 1, 2, 3, 4, 0, 0])
        #expect(before.scalars == [Float](repeating: 0, count: 8))
        cache.replaceRows(startingAt: 3, with: Tensor(shape: [2, 1], scalars: [7, 8]).transposed())
        #expect(cache.scalars == [0, 0, 1, 2, 3, 4, 7, 8])
    }

    @Test func replaceBlockWritesOnlyItsBlockFromAStridedSource() {
        var random = SeededRandom(seed: 32)
        let original = random.uniformTensor(shape: [5, 7], in: -1..<1)
        var matrix = original
        // A transposed source: rows apart in storage, as the projected blocks may be.
        let source = random.uniformTensor(shape: [4, 2], in: -1..<1).transposed()
        matrix.replaceBlock(row: 3, column: 2, with: source)
        for row in 0..<5 {
            for column in 0..<7 {
                let inside = (3..<5).contains(row) && (2..<6).contains(column)
                let expected = inside ? source.scalars[(row - 3) * 4 + column - 2] : original.scalars[row * 7 + column]
                #expect(matrix.scalars[row * 7 + column] == expected, "element (\(row), \(column))")
            }
        }
        #expect(original.scalars != matrix.scalars)
    }
}
