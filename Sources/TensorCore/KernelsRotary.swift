import CKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Cosines and sines of rotary position embedding for positions `0..<maxPositions`, as Hugging
/// Face's `LlamaRotaryEmbedding` builds them: for `i < headDimension / 2`,
/// `angle = position * inverseFrequency[i]`, `inverseFrequency[i] = 1 / theta^(2i / headDimension)`.
///
/// The pipeline follows Hugging Face's float32 one, so logits match transformers at every position:
/// inverse frequencies and angles are float32 (`angle = Float(position) * inverseFrequency[i]`,
/// one rounding, as its matmul does); cosine and sine of that float32 angle are computed in Double
/// and rounded once, then scaled in float32.
public struct RotaryTable: Sendable {
    public let headDimension: Int
    public let maxPositions: Int
    /// `[maxPositions, headDimension / 2]`: `cos[p, i] = attentionScaling * cos(p * inverseFrequency[i])`.
    public let cos: Tensor
    /// `[maxPositions, headDimension / 2]`, as `cos`.
    public let sin: Tensor
    /// One per pair of the head dimension: the angle of position p is `p * inverseFrequencies[i]`.
    public let inverseFrequencies: [Float]

    /// The table of plain RoPE with base `theta` (Llama 2: 10000, Llama 3: 500000).
    public init(headDimension: Int, maxPositions: Int, theta: Double = 10_000) {
        precondition(headDimension > 0 && headDimension % 2 == 0, "rotary head dimension must be even and positive, got \(headDimension)")
        precondition(theta > 0, "rotary theta must be positive, got \(theta)")
        let half = headDimension / 2
        // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in float32.
        let inverse = (0..<half).map { i -> Float in
            let exponent = Float(2 * i) / Float(headDimension)
            return 1 / Float(pow(theta, Double(exponent)))
        }
        self.init(inverseFrequencies: inverse, maxPositions: maxPositions)
    }

    /// The table of RoPE with base `theta` and `scaling` applied to its inverse frequencies, as
    /// transformers' `ROPE_INIT_FUNCTIONS` compute them in float32 (`linear`, `llama3`).
    public init(headDimension: Int, maxPositions: Int, theta: Double, scaling: RotaryScaling) {
        let plain = RotaryTable(headDimension: headDimension, maxPositions: 0, theta: theta)
        self.init(inverseFrequencies: scaling.scaled(plain.inverseFrequencies), maxPositions: maxPositions)
    }

    /// A table from explicit inverse frequencies (one per pair, `headDimension / 2` of them), for
    /// scaled variants such as Llama 3.1's `rope_type = "llama3"`; `attentionScaling` multiplies
    /// both tables, as Hugging Face's `attention_scaling` does.
    public init(inverseFrequencies: [Float], maxPositions: Int, attentionScaling: Float = 1) {
        precondition(!inverseFrequencies.isEmpty, "rotary table needs at least one inverse frequency")
        precondition(maxPositions >= 0, "negative maxPositions \(maxPositions)")
        let half = inverseFrequencies.count
        self.inverseFrequencies = inverseFrequencies
        headDimension = 2 * half
        self.maxPositions = maxPositions
        var cosines = [Float](repeating: 0, count: maxPositions * half)
        var sines = cosines
        for position in 0..<maxPositions {
            for (i, frequency) in inverseFrequencies.enumerated() {
                let angle = Double(Float(position) * frequency)
                cosines[position * half + i] = Float(doubleCosine(angle)) * attentionScaling
                sines[position * half + i] = Float(doubleSine(angle)) * attentionScaling
            }
        }
        cos = Tensor(shape: [maxPositions, half], scalars: cosines)
        sin = Tensor(shape: [maxPositions, half], scalars: sines)
    }
}

/// How a checkpoint's `rope_scaling` changes RoPE's inverse frequencies (transformers'
/// `modeling_rope_utils`); `attention_factor` is 1 for both, so the tables are not rescaled.
public enum RotaryScaling: Sendable, Hashable, Codable {
    /// Plain RoPE.
    case none
    /// `rope_type = "linear"`: positions divided by `factor` (transformers divides the inverse frequencies).
    case linear(factor: Double)
    /// `rope_type = "llama3"` (Llama 3.1): wavelengths above `originalMaxPositions / lowFrequencyFactor`
    /// divided by `factor`, below `originalMaxPositions / highFrequencyFactor` kept, smoothly blended between.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)

    /// `inverse` scaled, each step in float32 and in the order of transformers'
    /// `_compute_linear_scaling_rope_parameters` and `_compute_llama3_parameters` (`scalar / tensor` is
    /// PyTorch's `tensor.reciprocal() * scalar`).
    public func scaled(_ inverse: [Float]) -> [Float] {
        switch self {
        case .none:
            return inverse
        case .linear(let factor):
            return inverse.map { $0 / Float(factor) }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = Double(original) / low, highWavelength = Double(original) / high
            let twoPi = Float(2 * Double.pi)
            let (factor32, low32, span32, original32) = (Float(factor), Float(low), Float(high - low), Float(original))
            return inverse.map { frequency -> Float in
                let wavelength = (1 / frequency) * twoPi
                // torch compares a float32 tensor with a Python float in float32.
                let scaled = wavelength > Float(lowWavelength) ? frequency / factor32 : frequency
                let smooth = ((1 / wavelength) * original32 - low32) / span32
                let smoothed = (1 - smooth) * scaled / factor32 + smooth * scaled
                let isMedium = !(wavelength < Float(highWavelength)) && !(wavelength > Float(lowWavelength))
                return isMedium ? smoothed : scaled
            }
        }
    }
}

// The libm functions, under names that RotaryTable's `cos` and `sin` properties do not shadow.
@inline(__always) private func doubleCosine(_ x: Double) -> Double { cos(x) }
@inline(__always) private func doubleSine(_ x: Double) -> Double { sin(x) }

extension Kernels {
    /// Rotary position embedding, in place, in Hugging Face's `rotate_half` convention: for each
    /// token `t` and head, with `half = headDimension / 2`, `c = cos[positions[t], j]`,
    /// `s = sin[positions[t], j]`:
    /// `x[j], x[j + half] = x[j] * c - x[j + half] * s, x[j + half] * c + x[j] * s` for `j < half`.
    ///
    /// `x` is `[tokens, heads * headDimension]` (rows may be apart: a column view of a fused QKV
    /// projection works) or `[tokens, heads, headDimension]` with heads packed in a row.
    /// Runs `tk_rope_forward`.
    public static func rotary(_ x: inout Tensor, positions: [Int32], table: RotaryTable) {
        runRotary(&x, positions: positions, table: table, name: "rotary", tk_rope_forward)
    }

    /// The backward of `rotary`, in place on the gradient: the inverse (transposed) rotation,
    /// `g[j], g[j + half] = g[j] * c + g[j + half] * s, g[j + half] * c - g[j] * s`.
    /// Runs `tk_rope_backward`.
    public static func rotaryBackward(_ gradient: inout Tensor, positions: [Int32], table: RotaryTable) {
        runRotary(&gradient, positions: positions, table: table, name: "rotaryBackward", tk_rope_backward)
    }

    private static func runRotary(
        _ x: inout Tensor, positions: [Int32], table: RotaryTable, name: String,
        _ routine: (UnsafeMutablePointer<Float>?, Int, Int, Int, Int, UnsafePointer<Int32>?,
                    UnsafePointer<Float>?, UnsafePointer<Float>?) -> Void
    ) {
        let headDimension = table.headDimension
        precondition(x.rank == 2 || x.rank == 3, "\(name) takes [tokens, heads * headDim] or [tokens, heads, headDim], got shape \(x.shape)")
        if x.rank == 3 {
            precondition(x.shape[2] == headDimension, "\(name): head dimension \(x.shape[2]) differs from the table's \(headDimension)")
            // Heads must be packed within a row: view as [tokens, heads * headDim].
            let packed = x.strides[2] == 1 && (x.strides[1] == headDimension || x.shape[1] <= 1)
            if !packed { x = x.contiguous() }
        }
        let tokens = x.shape[0]
        let cols = x.rank == 3 ? x.shape[1] * x.shape[2] : x.shape[1]
        precondition(cols % headDimension == 0, "\(name): row length \(cols) is not a multiple of the head dimension \(headDimension)")
        precondition(positions.count == tokens, "\(name): \(positions.count) positions for \(tokens) tokens")
        for (token, position) in positions.enumerated() {
            precondition(
                position >= 0 && Int(position) < table.maxPositions,
                "\(name): position \(position) of token \(token) is outside the table's 0..<\(table.maxPositions)")
        }
        if tokens == 0 || cols == 0 { return }
        if !x.hasDenseRows || x.strides[0] < cols && tokens > 1 { x = x.contiguous() }
        x.makeUniqueAndWritable()  // may re-lay x out densely: read its strides after
        let ld = tokens > 1 ? x.strides[0] : cols
        positions.withUnsafeBufferPointer { pp in
            table.cos.withUnsafePointer { pc in
                table.sin.withUnsafePointer { ps in
                    x.withUnsafeMutablePointer { px in
                        routine(px, ld, tokens, cols / headDimension, headDimension, pp.baseAddress, pc, ps)
                    }
                }
            }
        }
    }
}
