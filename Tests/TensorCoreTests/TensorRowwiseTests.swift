import Testing
import TensorCore

@Suite("Row-wise dots and scalings")
struct TensorRowwiseTests {
    /// A 13 x 19 matrix inside a 13 x 24 buffer: rows a leading dimension apart.
    static func strided(_ random: inout SeededRandom) -> Tensor {
        random.uniformTensor(shape: [13, 24], in: -2..<2).slice(1, 3..<22)
    }

    @Test("rowDots equals a Float64 dot per row, on strided views")
    func rowDots() {
        var random = SeededRandom(seed: 7)
        let (a, b) = (Self.strided(&random), Self.strided(&random))
        let dots = Tensor.rowDots(a, b)
        for row in 0..<13 {
            let expected = (0..<19).reduce(0.0) { $0 + Double(a[row, $1]) * Double(b[row, $1]) }
            #expect(abs(Double(dots[row]) - expected) <= 1e-5 * (1 + abs(expected)))
        }
    }

    @Test("scalingRows and scalingColumns multiply each row or column by its factor")
    func scalings() {
        var random = SeededRandom(seed: 8)
        let a = Self.strided(&random)
        let rowFactors = random.uniformTensor(shape: [13], in: -3..<3)
        let columnFactors = random.uniformTensor(shape: [19], in: -3..<3)
        let byRow = a.scalingRows(by: rowFactors), byColumn = a.scalingColumns(by: columnFactors)
        for row in 0..<13 {
            for column in 0..<19 {
                #expect(byRow[row, column] == a[row, column] * rowFactors[row])
                #expect(byColumn[row, column] == a[row, column] * columnFactors[column])
            }
        }
        #expect(Tensor(zeros: [0, 4]).scalingColumns(by: Tensor(zeros: [4])).shape == [0, 4])
    }
}
