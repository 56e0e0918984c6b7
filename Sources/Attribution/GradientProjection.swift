import LlamaModel
import TensorCore

/// How per-example gradients are reduced before they are indexed.
public enum ProjectionKind: String, Sendable, Codable, CaseIterable {
    /// The exact gradient: each row is the PEFT tensors' gradients, flattened and concatenated.
    case none
    /// A dense Gaussian projection per LoRA matrix, entries N(0, 1/k).
    case gaussian
    /// A dense Rademacher projection per LoRA matrix, entries ±1/√k.
    case rademacher
    /// LoGra's factored projection per LoRA matrix: the input side and the output side of each
    /// per-example gradient are projected separately (Gaussian factors), so the full gradient is never formed.
    case factored
}

/// A projection and its parameters; with the adapter's shapes, it determines every projection matrix.
public struct ProjectionSpec: Sendable, Equatable, Codable {
    public var kind: ProjectionKind
    /// Projected columns per LoRA matrix (0 for `.none`).
    public var dimension: Int
    public var seed: UInt64

    public init(kind: ProjectionKind, dimension: Int = 0, seed: UInt64 = 0) {
        self.kind = kind
        self.dimension = kind == .none ? 0 : dimension
        self.seed = seed
    }

    public static let none = ProjectionSpec(kind: .none)
}

extension ProjectionSpec: CustomStringConvertible {
    /// As the index command's options write it.
    public var description: String { kind == .none ? "none" : "\(kind.rawValue) --dim \(dimension) --seed \(seed)" }
}

/// Which PEFT matrix of a pair.
public enum LoRAMatrix: String, Sendable, Codable {
    case a = "A", b = "B"
}

/// One LoRA matrix's share of an index row: the columns that hold its (projected) per-example gradient.
public struct GradientBlock: Sendable, Equatable {
    public var layer: Int
    public var target: LoRATarget
    public var matrix: LoRAMatrix
    /// The PEFT tensor's shape: [rank, in] for lora_A, [out, rank] for lora_B.
    public var shape: [Int]
    /// Columns of the row.
    public var columns: Range<Int>
    /// With `.factored`: the [k_out, k_in] matrix that the columns hold, row-major.
    public var factoredShape: [Int]?

    /// PEFT's tensor name.
    public var name: String { LoRAAdapter.tensorName(layer: layer, target: target, matrix: matrix.rawValue) }
}

/// The projection matrices of one LoRA matrix.
enum BlockProjection: Sendable {
    case identity
    /// P [k, rows x cols]: the projected row is g Pᵀ for the flattened gradient g.
    case dense(Tensor)
    /// P_out [k_out, rows], P_in [k_in, cols]: the projected gradient is P_out G P_inᵀ, which is
    /// (P_out ⊗ P_in) applied to the row-major flattening of G.
    case factored(output: Tensor, input: Tensor)
}

/// The row layout of an adapter's per-example gradients under a projection, and the projection's matrices.
public struct GradientLayout: Sendable {
    public let projection: ProjectionSpec
    /// In row order: layer, then target (PEFT's order q, k, v, o, gate, up, down), then lora_A before lora_B.
    public let blocks: [GradientBlock]
    let projections: [BlockProjection]

    /// Columns of a row.
    public var width: Int { blocks.last?.columns.upperBound ?? 0 }

    public init(adapter: LoRAAdapter, projection: ProjectionSpec) throws(AttributionError) {
        if projection.kind != .none, projection.dimension < 1 {
            throw .invalidProjection("--dim must be at least 1 for a \(projection.kind.rawValue) projection, got \(projection.dimension)")
        }
        self.projection = projection
        var blocks: [GradientBlock] = [], projections: [BlockProjection] = []
        var column = 0
        for (layer, pairs) in adapter.pairs.enumerated() {
            for target in pairs.keys.sorted() {
                for matrix in [LoRAMatrix.a, .b] {
                    let shape = matrix == .a ? pairs[target]!.a.shape : pairs[target]!.b.shape
                    var random = SeededRandom(seed: projection.seed ^ (UInt64(blocks.count + 1) &* 0x9E37_79B9_7F4A_7C15))
                    let k = projection.dimension
                    var block = GradientBlock(layer: layer, target: target, matrix: matrix, shape: shape, columns: 0..<0)
                    let width: Int
                    switch projection.kind {
                    case .none:
                        width = shape[0] * shape[1]
                        projections.append(.identity)
                    case .gaussian:
                        width = k
                        projections.append(.dense(random.normalTensor(shape: [k, shape[0] * shape[1]], standardDeviation: 1 / Float(k).squareRoot())))
                    case .rademacher:
                        width = k
                        var p = random.rademacherTensor(shape: [k, shape[0] * shape[1]])
                        BLAS.scale(&p, by: 1 / Float(k).squareRoot())
                        projections.append(.dense(p))
                    case .factored:
                        // The rank side gets gcd(rank, k) dimensions, the wide side the rest of k.
                        let rank = adapter.config.rank
                        let rankSide = gcd(rank, k), wideSide = k / rankSide
                        let (kOut, kIn) = matrix == .a ? (rankSide, wideSide) : (wideSide, rankSide)
                        width = k
                        block.factoredShape = [kOut, kIn]
                        let output = random.normalTensor(shape: [kOut, shape[0]], standardDeviation: 1 / Float(kOut).squareRoot())
                        let input = random.normalTensor(shape: [kIn, shape[1]], standardDeviation: 1 / Float(kIn).squareRoot())
                        projections.append(.factored(output: output, input: input))
                    }
                    block.columns = column..<column + width
                    column += width
                    blocks.append(block)
                }
            }
        }
        self.blocks = blocks
        self.projections = projections
    }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
