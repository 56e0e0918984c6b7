import LlamaModel
import TensorCore
import Testing
import Training
@testable import Attribution

/// The Kronecker product x ⊗ y, by its definition.
func kronecker(_ x: Tensor, _ y: Tensor) -> Tensor {
    let (xr, xc, yr, yc) = (x.shape[0], x.shape[1], y.shape[0], y.shape[1])
    var product = Tensor(zeros: [xr * yr, xc * yc])
    for i in 0..<xr { for j in 0..<xc { for k in 0..<yr { for l in 0..<yc { product[i * yr + k, j * yc + l] = x[i, j] * y[k, l] } } } }
    return product
}

/// The explicit projection matrix of a block: P for a dense projection, P_out ⊗ P_in for a factored one.
func projectionMatrix(_ layout: GradientLayout, block: Int) -> Tensor? {
    switch layout.projections[block] {
    case .identity: nil
    case .dense(let p): p
    case .factored(let output, let input): kronecker(output, input)
    }
}

/// Projects exact rows block by block with the explicit matrices.
func projectExplicitly(_ exact: Tensor, exactLayout: GradientLayout, _ layout: GradientLayout) -> Tensor {
    let parts = layout.blocks.indices.map { block in
        BLAS.matmul(exact.slice(1, exactLayout.blocks[block].columns).contiguous(), projectionMatrix(layout, block: block)!, transposeB: true)
    }
    let rows = exact.shape[0]
    return Tensor(shape: [rows, layout.width], scalars: (0..<rows).flatMap { row in parts.flatMap { $0.slice(0, row..<row + 1).scalars } })
}

@Suite struct ProjectionTests {
    let model: LlamaModel
    let adapter: LoRAAdapter
    let sequences: [TrainingSequence]
    let exactLayout: GradientLayout
    let exact: Tensor

    init() throws {
        model = try tinyLlama()
        adapter = try randomAdapter(model, LoRAConfig(rank: 4, alpha: 8, targets: [.key, .down]), seed: 31)
        sequences = randomRecords(3, seed: 32, vocabularySize: model.config.vocabularySize).map(\.sequence)
        exactLayout = try GradientLayout(adapter: adapter, projection: .none)
        exact = try GradientExtractor(model: model, adapter: adapter, layout: exactLayout).rows(for: sequences)
    }

    func rows(_ spec: ProjectionSpec) throws -> Tensor {
        try GradientExtractor(model: model, adapter: adapter, layout: GradientLayout(adapter: adapter, projection: spec)).rows(for: sequences)
    }

    @Test(arguments: [ProjectionKind.gaussian, .rademacher, .factored])
    func deterministicForASeed(kind: ProjectionKind) throws {
        let first = try rows(ProjectionSpec(kind: kind, dimension: 12, seed: 5))
        #expect(first.shape == [3, 12 * exactLayout.blocks.count])
        #expect(try rows(ProjectionSpec(kind: kind, dimension: 12, seed: 5)) == first)
        #expect(try rows(ProjectionSpec(kind: kind, dimension: 12, seed: 6)) != first)
    }

    /// The extracted rows equal the exact rows times the explicit matrices; for the factored projection
    /// that is the Kronecker product P_out ⊗ P_in on the row-major gradient, never formed by the extractor.
    @Test(arguments: [ProjectionKind.gaussian, .rademacher, .factored])
    func extractionEqualsProjectingTheExactGradient(kind: ProjectionKind) throws {
        let spec = ProjectionSpec(kind: kind, dimension: 12, seed: 7)
        let layout = try GradientLayout(adapter: adapter, projection: spec)
        let expected = projectExplicitly(exact, exactLayout: exactLayout, layout)
        let error = relativeError(try rows(spec).scalars, expected.scalars)
        #expect(error <= 1e-5, "\(kind): relative error \(error)")
        if kind == .factored {
            // Rank 4, k = 12: the rank side keeps gcd(4, 12) = 4 dimensions, the wide side 3.
            #expect(layout.blocks.map(\.factoredShape) == exactLayout.blocks.indices.map { $0 % 2 == 0 ? [4, 3] : [3, 4] })
        }
    }

    /// E[⟨Px, Py⟩] = ⟨x, y⟩: the mean over seeds lies within 6 standard errors of the exact inner product.
    @Test(arguments: [ProjectionKind.gaussian, .rademacher, .factored])
    func innerProductsArePreservedInExpectation(kind: ProjectionKind) throws {
        let (x, y) = (exact.slice(0, 0..<1).contiguous().reshaped([exact.shape[1]]), exact.slice(0, 1..<2).contiguous().reshaped([exact.shape[1]]))
        let pairs = [(x, y), (x, x)]
        let seeds = 150
        for (u, v) in pairs {
            let truth = Double(BLAS.dot(u, v))
            var samples: [Double] = []
            for seed in 0..<seeds {
                let layout = try GradientLayout(adapter: adapter, projection: ProjectionSpec(kind: kind, dimension: 8, seed: UInt64(seed)))
                let projected = projectExplicitly(Tensor(shape: [2, u.count], scalars: u.scalars + v.scalars), exactLayout: exactLayout, layout)
                samples.append(Double(BLAS.dot(projected.slice(0, 0..<1).contiguous(), projected.slice(0, 1..<2).contiguous())))
            }
            let mean = samples.reduce(0, +) / Double(seeds)
            let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(seeds - 1)
            let standardError = (variance / Double(seeds)).squareRoot()
            #expect(abs(mean - truth) <= 6 * standardError, "\(kind): mean \(mean), exact \(truth), standard error \(standardError)")
            // Tight enough to catch a wrong scale: a tenth of |u| |v|.
            #expect(standardError <= 0.1 * Double(BLAS.norm(u) * BLAS.norm(v)), "\(kind): standard error \(standardError)")
        }
    }

    @Test func aProjectionNeedsADimension() throws {
        #expect(throws: AttributionError.invalidProjection("--dim must be at least 1 for a gaussian projection, got 0")) {
            try GradientLayout(adapter: adapter, projection: ProjectionSpec(kind: .gaussian, dimension: 0))
        }
    }
}
