import TensorCore

/// The influence scorers of docs/ATTRIBUTION.md ("## Scorers"). Every score has the same sign:
/// score > 0 means the training record made the query's output more likely (a descent step on it
/// lowers the query's loss), so removing it would raise that loss.
public enum ScorerKind: String, Sendable, CaseIterable, Codable {
    /// g_q . g_k, averaged over checkpoints.
    case gradDot = "grad-dot"
    /// TracIn: sum over checkpoints of eta_c g_q . g_k.
    case tracIn = "tracin"
    /// g_q . g_k / (|g_q| |g_k|), averaged over checkpoints.
    case gradCos = "grad-cos"
    /// DataInf's closed-form inverse Hessian per block, g_q^T H^-1 g_k, averaged over checkpoints.
    case dataInf = "datainf"
    /// Projected Fisher per block, g_q^T (Phi^T Phi / n + lambda I)^-1 g_k, averaged over checkpoints.
    case fisher = "fisher"
}

/// Scores training records against queries with one scorer, over one or more checkpoints.
///
/// Everything that does not depend on the query is computed once, here: per-record, per-block
/// squared norms, and for DataInf and Fisher one symmetric D_l x D_l matrix P_l per block such that
/// score = sum_l g_q,l^T P_l g_k,l. Scoring a batch of q queries is then a small q x D_l x D_l GEMM
/// per block on the query side and one q x D x n GEMM (a GEMV for one query) over the index:
/// a single pass over the n x D rows, whatever the scorer.
public struct AttributionScorer: Sendable {
    public let kind: ScorerKind
    /// lambda_l = damping x the mean squared gradient entry of block l (DataInf and Fisher).
    public let damping: Float
    let checkpoints: [PreparedCheckpoint]

    /// The largest block DataInf and Fisher precompute a D_l x D_l matrix for.
    public static let maximumPreconditionedBlockWidth = 8192

    /// Refuses, before allocating, a scorer whose matrices `ScorerMemoryEstimate` puts over `memoryLimit`.
    public init(
        kind: ScorerKind, checkpoints: [CheckpointGradients], damping: Float = 0.1, memoryLimit: MemoryBudget = .physicalDefault
    ) throws(AttributionInputError) {
        guard let first = checkpoints.first else { throw AttributionInputError("no checkpoints to score against") }
        guard damping.isFinite, damping > 0 else { throw AttributionInputError("damping must be finite and positive, got \(damping)") }
        for (index, checkpoint) in checkpoints.enumerated() {
            guard checkpoint.recordCount == first.recordCount, checkpoint.blocks == first.blocks else {
                throw AttributionInputError(
                    "checkpoint \(index) has \(checkpoint.recordCount) records x \(checkpoint.blocks.width) columns in \(checkpoint.blocks.ranges.count) blocks; checkpoint 0 has \(first.recordCount) x \(first.blocks.width) in \(first.blocks.ranges.count)")
            }
        }
        let widths = first.blocks.ranges.map(\.count)
        if kind == .dataInf || kind == .fisher, let wide = widths.firstIndex(where: { $0 > Self.maximumPreconditionedBlockWidth }) {
            throw AttributionInputError(
                "block \(wide) has \(widths[wide]) columns; \(kind.rawValue) keeps a D_l x D_l matrix per block, at most \(Self.maximumPreconditionedBlockWidth): build the index with a projection (`tributary-engine index --projection factored --dim 1024`), or use grad-dot, tracin or grad-cos")
        }
        let estimate = ScorerMemoryEstimate(kind: kind, blockWidths: widths, recordCount: first.recordCount, checkpointCount: checkpoints.count)
        if let refusal = estimate.refusal(kind: kind, blockWidths: widths, checkpointCount: checkpoints.count, budget: memoryLimit) {
            throw AttributionInputError(refusal)
        }
        self.kind = kind
        self.damping = damping
        var prepared: [PreparedCheckpoint] = []
        for (index, checkpoint) in checkpoints.enumerated() {
            let weight = kind == .tracIn ? checkpoint.learningRate : 1 / Float(checkpoints.count)
            prepared.append(try PreparedCheckpoint(checkpoint, index: index, kind: kind, damping: damping, weight: weight))
        }
        self.checkpoints = prepared
    }

    /// n, the number of training records.
    public var recordCount: Int { checkpoints[0].gradients.recordCount }
    /// D, the number of gradient columns.
    public var width: Int { checkpoints[0].gradients.blocks.width }
    /// lambda_l per checkpoint and block (0 for the scorers that use none).
    public var blockDampings: [[Float]] { checkpoints.map(\.dampings) }

    /// The q x n score matrix of a batch of queries: `queries[c]` is the q x D gradient matrix of the
    /// queries (loss per token) at checkpoint c, in the same columns as the index.
    public func scores(queries: [Tensor]) throws(AttributionInputError) -> Tensor {
        guard queries.count == checkpoints.count else {
            throw AttributionInputError("\(queries.count) query matrices for \(checkpoints.count) checkpoints: give one per checkpoint")
        }
        let queryCount = queries[0].rank == 2 ? queries[0].shape[0] : 0
        for (index, query) in queries.enumerated() {
            guard query.rank == 2, query.shape == [queryCount, width], queryCount > 0 else {
                throw AttributionInputError("query matrix \(index) has shape \(query.shape); expected [q, \(width)] with q > 0 and one q for all checkpoints")
            }
            if let bad = query.scalars.firstIndex(where: { !$0.isFinite }) {
                throw AttributionInputError("query matrix \(index) holds a non-finite gradient at query \(bad / width), column \(bad % width)")
            }
        }
        var total = Tensor(zeros: [queryCount, recordCount])
        for (checkpoint, query) in zip(checkpoints, queries) {
            checkpoint.accumulateScores(of: query, into: &total, cosine: kind == .gradCos)
        }
        return total
    }

    /// Each record's influence on its own loss, g_k^T P g_k (weighted over checkpoints as `scores`):
    /// large for records the model finds surprising, the first to inspect in curation.
    public func selfInfluence() throws(AttributionInputError) -> Tensor {
        guard kind != .gradCos else {
            throw AttributionInputError("grad-cos self-influence is 1 for every record; use grad-dot, tracin, datainf or fisher")
        }
        var total = Tensor(zeros: [recordCount])
        for checkpoint in checkpoints { BLAS.axpy(checkpoint.weight, checkpoint.selfInfluence(), &total) }
        return total
    }
}

/// One checkpoint made ready for scoring: its weight among checkpoints, per-block squared norms of
/// every record, and per-block preconditioners P_l (nil = identity).
struct PreparedCheckpoint: Sendable {
    let gradients: CheckpointGradients
    let weight: Float
    /// n x blocks: |g_k,l|^2.
    let blockSquaredNorms: [Tensor]
    let rowNorms: Tensor
    let preconditioners: [Tensor?]
    let dampings: [Float]

    /// Rows per chunk when a pass over the index needs a scratch copy of its rows.
    static let chunkRows = 4096

    init(_ gradients: CheckpointGradients, index: Int, kind: ScorerKind, damping: Float, weight: Float) throws(AttributionInputError) {
        self.gradients = gradients
        self.weight = weight
        let rows = gradients.rows, n = gradients.recordCount
        var squaredNorms: [Tensor] = []
        var total = Tensor(zeros: [n])
        for (block, range) in gradients.blocks.ranges.enumerated() {
            let norms = Tensor.rowDots(rows.slice(1, range), rows.slice(1, range))
            if let bad = norms.scalars.firstIndex(where: { !$0.isFinite }) {
                throw AttributionInputError("checkpoint \(index), record row \(bad), block \(block) holds a non-finite gradient")
            }
            squaredNorms.append(norms)
            BLAS.axpy(1, norms, &total)
        }
        blockSquaredNorms = squaredNorms
        rowNorms = Tensor(shape: [n], scalars: total.scalars.map { $0.squareRoot() })

        guard kind == .dataInf || kind == .fisher else {
            preconditioners = Array(repeating: nil, count: squaredNorms.count)
            dampings = Array(repeating: 0, count: squaredNorms.count)
            return
        }
        var matrices: [Tensor?] = []
        var lambdas: [Float] = []
        for (block, range) in gradients.blocks.ranges.enumerated() {
            guard range.count <= AttributionScorer.maximumPreconditionedBlockWidth else {
                throw AttributionInputError(
                    "block \(block) has \(range.count) columns; \(kind.rawValue) keeps a D_l x D_l matrix per block, at most \(AttributionScorer.maximumPreconditionedBlockWidth): build the index with a projection (`tributary-engine index --projection factored --dim 1024`), or use grad-dot, tracin or grad-cos")
            }
            let meanSquare = Double(squaredNorms[block].scalars.reduce(0, +)) / (Double(n) * Double(range.count))
            let lambda = damping * Float(meanSquare)
            guard lambda > 0, lambda.isFinite else {
                throw AttributionInputError("checkpoint \(index), block \(block): every gradient entry is zero, so lambda = 0 and \(kind.rawValue) is undefined")
            }
            lambdas.append(lambda)
            let blockRows = rows.slice(1, range)
            matrices.append(
                try kind == .dataInf
                    ? Self.dataInfPreconditioner(blockRows, squaredNorms: squaredNorms[block], lambda: lambda)
                    : Self.fisherPreconditioner(blockRows, lambda: lambda, checkpoint: index, block: block))
        }
        preconditioners = matrices
        dampings = lambdas
    }

    /// DataInf's H_l^-1 = (1/(n lambda)) sum_i (I - g_i g_i^T / (lambda + |g_i|^2)) = (I - M) / lambda,
    /// M = (1/n) G^T diag(w) G, w_i = 1 / (lambda + |g_i|^2); accumulated over chunks of rows.
    static func dataInfPreconditioner(_ rows: Tensor, squaredNorms: Tensor, lambda: Float) -> Tensor {
        let (n, width) = (rows.shape[0], rows.shape[1])
        let weights = squaredNorms.scalars.map { 1 / (lambda + $0) }
        var m = Tensor(zeros: [width, width])
        for start in stride(from: 0, to: n, by: chunkRows) {
            let chunk = start..<min(start + chunkRows, n)
            let block = rows.slice(0, chunk)
            let weighted = block.scalingRows(by: Tensor(shape: [chunk.count], scalars: Array(weights[chunk])))
            BLAS.gemm(weighted.transposed(), block, into: &m, alpha: -1 / (Float(n) * lambda), beta: 1)
        }
        for i in 0..<width { m[i, i] += 1 / lambda }
        return m
    }

    /// (Phi^T Phi / n + lambda I)^-1, factored by Cholesky (spotrf) and solved against I (spotrs).
    static func fisherPreconditioner(_ rows: Tensor, lambda: Float, checkpoint: Int, block: Int) throws(AttributionInputError) -> Tensor {
        let (n, width) = (rows.shape[0], rows.shape[1])
        var fisher = Tensor(zeros: [width, width])
        BLAS.gemm(rows.transposed(), rows, into: &fisher, alpha: 1 / Float(n))
        var identity = Tensor(zeros: [width, width])
        for i in 0..<width {
            fisher[i, i] += lambda
            identity[i, i] = 1
        }
        do {
            return try LAPACK.choleskySolve(factor: LAPACK.choleskyFactor(fisher), identity)
        } catch {
            throw AttributionInputError("checkpoint \(checkpoint), block \(block): projected Fisher matrix: \(error)")
        }
    }

    /// total += weight * (queries P) G^T, cosine-normalised first when asked.
    func accumulateScores(of queries: Tensor, into total: inout Tensor, cosine: Bool) {
        let preconditioned = preconditionedTransposed(queries)
        guard cosine else { return Self.multiply(preconditioned, gradients.rows, into: &total, alpha: weight, beta: 1) }
        var raw = Tensor(zeros: total.shape)
        Self.multiply(preconditioned, gradients.rows, into: &raw, alpha: 1, beta: 0)
        let queryNorms = Tensor.rowDots(queries, queries).scalars.map { $0 > 0 ? 1 / $0.squareRoot() : 0 }
        let recordNorms = rowNorms.scalars.map { $0 > 0 ? 1 / $0 : 0 }
        let cosines = raw.scalingRows(by: Tensor(shape: [queryNorms.count], scalars: queryNorms))
            .scalingColumns(by: Tensor(shape: [recordNorms.count], scalars: recordNorms))
        BLAS.axpy(weight, cosines, &total)
    }

    /// (queries P)^T, D x q: the queries' transpose itself when there is no preconditioner.
    func preconditionedTransposed(_ queries: Tensor) -> Tensor {
        guard preconditioners.contains(where: { $0 != nil }) else { return queries.transposed() }
        var result = Tensor(zeros: [gradients.blocks.width, queries.shape[0]])
        for (range, matrix) in zip(gradients.blocks.ranges, preconditioners) {
            let block = queries.slice(1, range).transposed()
            result.replaceRows(startingAt: range.lowerBound, with: matrix.map { BLAS.matmul($0, block) } ?? block)
        }
        return result
    }

    /// scores = alpha * h^T G^T + beta * scores for h (D x q) and the index G (n x D): a GEMV when q = 1,
    /// since OpenBLAS runs an m = 1 GEMM far below memory bandwidth.
    static func multiply(_ h: Tensor, _ rows: Tensor, into scores: inout Tensor, alpha: Float, beta: Float) {
        let (queryCount, n) = (scores.shape[0], scores.shape[1])
        guard queryCount == 1 else { return BLAS.gemm(h.transposed(), rows.transposed(), into: &scores, alpha: alpha, beta: beta) }
        var vector = scores.reshaped([n])
        scores = Tensor(zeros: [])  // drop the shared reference, so the GEMV writes in place
        BLAS.gemv(rows, h.reshaped([h.shape[0]]), into: &vector, alpha: alpha, beta: beta)
        scores = vector.reshaped([1, n])
    }

    /// g_k^T P g_k per record: the squared norms when P = I, else chunked (G_l P_l) . G_l row by row.
    func selfInfluence() -> Tensor {
        let rows = gradients.rows, n = gradients.recordCount
        var total = Tensor(zeros: [n])
        for (block, (range, matrix)) in zip(gradients.blocks.ranges, preconditioners).enumerated() {
            guard let matrix else {
                BLAS.axpy(1, blockSquaredNorms[block], &total)
                continue
            }
            var forms = [Float]()
            forms.reserveCapacity(n)
            for start in stride(from: 0, to: n, by: Self.chunkRows) {
                let chunk = rows.slice(0, start..<min(start + Self.chunkRows, n)).slice(1, range)
                forms += Tensor.rowDots(BLAS.matmul(chunk, matrix), chunk).scalars
            }
            BLAS.axpy(1, Tensor(shape: [n], scalars: forms), &total)
        }
        return total
    }
}
