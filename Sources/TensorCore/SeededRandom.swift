/// A seeded, deterministic generator: xoshiro256** (Blackman and Vigna), seeded through SplitMix64.
///
/// The same seed gives the same stream on every machine and thread count, which is what
/// reproducible initialisation, dropout and random projections need.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var mixer = seed
        func splitMix() -> UInt64 {
            mixer &+= 0x9E37_79B9_7F4A_7C15
            var z = mixer
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotateLeft(state.3, 45)
        return result
    }

    @inline(__always)
    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1), from the top 24 bits: every value is an exact Float.
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in `range`.
    public mutating func uniform(in range: Range<Float>) -> Float {
        range.lowerBound + (range.upperBound - range.lowerBound) * uniform()
    }

    /// Standard normal, by the Box-Muller transform in Double.
    public mutating func normal() -> Float {
        let u1 = Double(next() >> 11) * 0x1p-53
        let u2 = Double(next() >> 11) * 0x1p-53
        // 1 - u1 lies in (0, 1], so the log is finite.
        return Float((-2 * _log(1 - u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }

    /// +1 or -1 with equal probability.
    public mutating func rademacher() -> Float { next() >> 63 == 0 ? 1 : -1 }

    public mutating func uniformTensor(shape: [Int], in range: Range<Float>) -> Tensor {
        Tensor(shape: shape) { for i in $0.indices { $0[i] = uniform(in: range) } }
    }

    public mutating func normalTensor(shape: [Int], standardDeviation: Float = 1) -> Tensor {
        Tensor(shape: shape) { for i in $0.indices { $0[i] = standardDeviation * normal() } }
    }

    public mutating func rademacherTensor(shape: [Int]) -> Tensor {
        Tensor(shape: shape) { for i in $0.indices { $0[i] = rademacher() } }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
