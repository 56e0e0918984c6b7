import CKernels

/// A target that is neither the ignore index nor a class of the vocabulary.
public enum CrossEntropyError: Error, Equatable, CustomStringConvertible {
    case targetOutOfRange(row: Int, target: Int32, vocabularySize: Int, ignoreIndex: Int32)

    public var description: String {
        switch self {
        case .targetOutOfRange(let row, let target, let vocabularySize, let ignoreIndex):
            return "cross-entropy target \(target) of row \(row) is outside 0..<\(vocabularySize) "
                + "and is not the ignore index \(ignoreIndex)"
        }
    }
}

/// The forward result of `Kernels.crossEntropy`.
public struct CrossEntropyResult: Sendable {
    /// Per-row loss `logsumexp(row) - row[target]`, 0 for ignored rows; the logits' shape without its last axis.
    public var losses: Tensor
    /// Per-row `logsumexp`, which the backward takes; 0 for ignored rows.
    public var logsumexp: Tensor
    /// How many rows are not ignored.
    public var count: Int
    /// The mean loss over the rows not ignored (PyTorch's `reduction='mean'`), summed in Double.
    /// 0 when every row is ignored, where PyTorch gives NaN: a batch of prompt-only records then
    /// adds nothing to the loss instead of poisoning it.
    public var meanLoss: Float
}

extension Kernels {
    /// PyTorch's default `ignore_index`.
    public static let defaultIgnoreIndex: Int32 = -100

    /// Cross-entropy of `logits` (`[rows, vocab]`, or more leading axes, with rows apart allowed)
    /// against one `Int32` target per row; rows whose target is `ignoreIndex` are skipped.
    /// Throws, naming the first such row and its value, for a target outside `0..<vocab` that is
    /// not `ignoreIndex`, before computing anything. Runs `tk_cross_entropy_forward`.
    public static func crossEntropy(
        logits: Tensor, targets: [Int32], ignoreIndex: Int32 = defaultIgnoreIndex
    ) throws(CrossEntropyError) -> CrossEntropyResult {
        precondition(logits.rank >= 2, "crossEntropy takes logits of rank >= 2, got shape \(logits.shape)")
        let (x, layout) = rowInput(logits)
        let rows = layout.rowCount, vocab = layout.cols
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
        let rowShape = Array(logits.shape.dropLast())
        var losses = Tensor(zeros: rowShape), logsumexp = Tensor(zeros: rowShape)
        if rows > 0 {
            let bad = x.withUnsafePointer { px in
                targets.withUnsafeBufferPointer { pt in
                    losses.withUnsafeMutablePointer { pl in
                        logsumexp.withUnsafeMutablePointer { plse in
                            var bad = -1
                            forEachRowRun([layout]) { runRows, offsets, firstRow in
                                guard bad < 0 else { return }
                                let result = tk_cross_entropy_forward(
                                    px + offsets[0], layout.rowStride, pt.baseAddress! + firstRow, runRows, vocab,
                                    ignoreIndex, pl + firstRow, plse + firstRow)
                                if result >= 0 { bad = firstRow + result }
                            }
                            return bad
                        }
                    }
                }
            }
            try checkTarget(bad, targets: targets, vocabularySize: vocab, ignoreIndex: ignoreIndex)
        }
        var count = 0, sum = 0.0
        let lossValues = losses.scalars
        for (row, target) in targets.enumerated() where target != ignoreIndex {
            count += 1
            sum += Double(lossValues[row])
        }
        return CrossEntropyResult(
            losses: losses, logsumexp: logsumexp, count: count, meanLoss: count == 0 ? 0 : Float(sum / Double(count)))
    }

    /// The gradient of the loss with respect to the logits, given the forward's `logsumexp` and
    /// each row's upstream gradient `rowGradients[r]` (`1 / count` for a mean, or per-record
    /// weights; a rank-1 view with stride 0 broadcasts one value):
    /// `(softmax(row) - onehot(target)) * rowGradients[r]`, 0 for ignored rows.
    /// Throws like `crossEntropy`. Runs `tk_cross_entropy_backward`.
    public static func crossEntropyBackward(
        logits: Tensor, targets: [Int32], logsumexp: Tensor, rowGradients: Tensor, ignoreIndex: Int32 = defaultIgnoreIndex
    ) throws(CrossEntropyError) -> Tensor {
        var result = logits
        try crossEntropyBackward(
            logitsInPlace: &result, targets: targets, logsumexp: logsumexp, rowGradients: rowGradients, ignoreIndex: ignoreIndex)
        return result
    }

    /// `crossEntropyBackward` with one upstream gradient for every row, such as `1 / count`.
    /// Runs `tk_cross_entropy_backward`.
    public static func crossEntropyBackward(
        logits: Tensor, targets: [Int32], logsumexp: Tensor, rowGradient: Float, ignoreIndex: Int32 = defaultIgnoreIndex
    ) throws(CrossEntropyError) -> Tensor {
        try crossEntropyBackward(
            logits: logits, targets: targets, logsumexp: logsumexp,
            rowGradients: broadcast(rowGradient, count: targets.count), ignoreIndex: ignoreIndex)
    }

    /// `crossEntropyBackward` overwriting the logits with their gradient, which saves a
    /// `[tokens, vocab]` buffer. Runs `tk_cross_entropy_backward` with the output on the input.
    public static func crossEntropyBackward(
        logitsInPlace logits: inout Tensor, targets: [Int32], logsumexp: Tensor, rowGradients: Tensor,
        ignoreIndex: Int32 = defaultIgnoreIndex
    ) throws(CrossEntropyError) {
        precondition(logits.rank >= 2, "crossEntropyBackward takes logits of rank >= 2, got shape \(logits.shape)")
        let rows = logits.count / max(logits.shape[logits.rank - 1], 1)
        precondition(
            targets.count == rows, "crossEntropyBackward: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
        let lse = denseVector(logsumexp, count: rows, name: "crossEntropyBackward logsumexp")
        precondition(rowGradients.count == rows, "crossEntropyBackward: \(rowGradients.count) row gradients for \(rows) rows")
        // A vector goes with its stride (0 broadcasts); any other shape densely.
        let (upstream, upstreamStride) =
            rowGradients.rank == 1 && rowGradients.strides[0] >= 0
            ? (rowGradients, rowGradients.strides[0]) : (rowGradients.contiguous(), 1)
        // Check before writing, so a bad target leaves the logits as they were.
        for (row, target) in targets.enumerated() where target != ignoreIndex && (target < 0 || Int(target) >= logits.shape[logits.rank - 1]) {
            throw .targetOutOfRange(row: row, target: target, vocabularySize: logits.shape[logits.rank - 1], ignoreIndex: ignoreIndex)
        }
        if rows == 0 { return }
        let layout = prepareInPlace(&logits)
        let bad = lse.withUnsafePointer { plse in
            upstream.withUnsafePointer { pg in
                targets.withUnsafeBufferPointer { pt in
                    logits.withUnsafeMutablePointer { p in
                        var bad = -1
                        forEachRowRun([layout]) { runRows, offsets, firstRow in
                            guard bad < 0 else { return }
                            let result = tk_cross_entropy_backward(
                                p + offsets[0], layout.rowStride, pt.baseAddress! + firstRow, plse + firstRow,
                                pg + firstRow * upstreamStride, upstreamStride, runRows, layout.cols, ignoreIndex,
                                p + offsets[0], layout.rowStride)
                            if result >= 0 { bad = firstRow + result }
                        }
                        return bad
                    }
                }
            }
        }
        try checkTarget(bad, targets: targets, vocabularySize: layout.cols, ignoreIndex: ignoreIndex)
    }

    /// `crossEntropyBackward(logitsInPlace:)` with one upstream gradient for every row.
    /// Runs `tk_cross_entropy_backward`.
    public static func crossEntropyBackward(
        logitsInPlace logits: inout Tensor, targets: [Int32], logsumexp: Tensor, rowGradient: Float,
        ignoreIndex: Int32 = defaultIgnoreIndex
    ) throws(CrossEntropyError) {
        try crossEntropyBackward(
            logitsInPlace: &logits, targets: targets, logsumexp: logsumexp,
            rowGradients: broadcast(rowGradient, count: targets.count), ignoreIndex: ignoreIndex)
    }

    /// `value` seen as a vector of `count` elements, by a stride of 0.
    static func broadcast(_ value: Float, count: Int) -> Tensor {
        Tensor(shape: [1], scalars: [value]).viewing(shape: [count], strides: [0])
    }

    /// Throws for the row the C routine reported (`bad` >= 0).
    static func checkTarget(_ bad: Int, targets: [Int32], vocabularySize: Int, ignoreIndex: Int32) throws(CrossEntropyError) {
        guard bad >= 0 else { return }
        throw .targetOutOfRange(row: bad, target: targets[bad], vocabularySize: vocabularySize, ignoreIndex: ignoreIndex)
    }
}
