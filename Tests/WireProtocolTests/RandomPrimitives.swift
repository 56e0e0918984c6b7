import NIOCore
import TensorCore
import WireProtocol

/// Seeded random values of every field type; RandomValues.swift (generated) builds every message from these.
protocol RandomWireValue {
    static func random(using rng: inout SeededRandom) -> Self
}

extension RandomWireValue where Self: FixedWidthInteger {
    static func random(using rng: inout SeededRandom) -> Self {
        // Edge values a quarter of the time: 0, min, max.
        switch rng.next() % 8 {
        case 0: 0
        case 1: .min
        case 2: .max
        default: Self.random(in: .min ... .max, using: &rng)
        }
    }
}

extension UInt8: RandomWireValue {}
extension UInt16: RandomWireValue {}
extension UInt32: RandomWireValue {}
extension UInt64: RandomWireValue {}
extension Int64: RandomWireValue {}

extension Float: RandomWireValue {
    /// Any finite bit pattern (NaN would not equal itself after the round trip).
    static func random(using rng: inout SeededRandom) -> Float {
        while true {
            let value = Float(bitPattern: UInt32.random(using: &rng))
            if !value.isNaN { return value }
        }
    }
}

extension Double: RandomWireValue {
    static func random(using rng: inout SeededRandom) -> Double {
        while true {
            let value = Double(bitPattern: UInt64.random(using: &rng))
            if !value.isNaN { return value }
        }
    }
}

extension Bool: RandomWireValue {
    static func random(using rng: inout SeededRandom) -> Bool { rng.next() & 1 == 1 }
}

extension String: RandomWireValue {
    /// Up to 12 scalars from ASCII, Latin, CJK and the astral planes: 1- to 4-byte UTF-8.
    static func random(using rng: inout SeededRandom) -> String {
        let ranges: [ClosedRange<UInt32>] = [0x20...0x7E, 0xA0...0x24F, 0x4E00...0x9FFF, 0x1F300...0x1F64F]
        let count = Int(rng.next() % 13)
        return String(String.UnicodeScalarView((0..<count).map { _ in
            Unicode.Scalar(UInt32.random(in: ranges.randomElement(using: &rng)!, using: &rng))!
        }))
    }
}

extension Array: RandomWireValue where Element: RandomWireValue {
    /// 0 to 3 elements, or up to 40 for bytes.
    static func random(using rng: inout SeededRandom) -> [Element] {
        let limit: UInt64 = Element.self == UInt8.self ? 41 : 4
        return (0..<rng.next() % limit).map { _ in Element.random(using: &rng) }
    }
}

extension Optional: RandomWireValue where Wrapped: RandomWireValue {
    static func random(using rng: inout SeededRandom) -> Wrapped? {
        Bool.random(using: &rng) ? Wrapped.random(using: &rng) : nil
    }
}

extension FloatTensor: RandomWireValue {
    /// Rank 0 to 3, each dimension 0 to 4.
    static func random(using rng: inout SeededRandom) -> FloatTensor {
        let shape = (0..<rng.next() % 4).map { _ in Int(rng.next() % 5) }
        return FloatTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float.random(using: &rng) })
    }
}
