import Foundation
import Testing

@testable import Store

@Suite("Fee splitting: exact integer arithmetic")
struct FeeSplitterTests {
    @Test func defaultPolicyIs70_20_10() throws {
        #expect(FeePolicy.default == FeePolicy(contributorsBasisPoints: 7000, ownerBasisPoints: 2000, protocolBasisPoints: 1000))
        #expect(PenaltyPolicy.default == PenaltyPolicy(thresholdPoints: 3, keepBasisPoints: 5000))
        let split = try FeeSplitter.split(fee: 1_000_000, weights: [ContributorID(1): 1])
        #expect(split.contributorPool == 700_000 && split.owner == 200_000 && split.protocolShare == 100_000)
        #expect(split.contributors.map(\.paid) == [700_000])
    }

    @Test func worksAtTheExtremesOfInt64() throws {
        let max = Int64.max
        let split = try FeeSplitter.split(fee: max, weights: [ContributorID(1): 3, ContributorID(2): 1 << 40, ContributorID(3): UInt64.max / 4])
        #expect(split.contributors.reduce(split.owner + split.protocolShare) { $0 + $1.paid } == max)
        #expect(split.contributorPool.magnitude == FeeSplitter.mulDiv(UInt64(max), 7000, 10_000).quotient)
        #expect(split.contributorPool == 6_456_360_425_798_343_064)
        #expect(throws: StoreError.invalidFee(-5)) { try FeeSplitter.split(fee: -5, weights: [ContributorID(1): 1]) }
        #expect(throws: StoreError.self) { try FeeSplitter.split(fee: 5, weights: [ContributorID(1): 0]) }
        #expect(throws: StoreError.self) { try FeeSplitter.split(fee: 5, weights: [:]) }
        #expect(throws: StoreError.self) {
            try FeeSplitter.split(fee: 5, weights: [ContributorID(1): UInt64.max, ContributorID(2): UInt64.max])
        }
    }

    /// Property test: thousands of seeded random fees, weight vectors, policies and penalties.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func everySplitSumsExactlyAndFollowsTheRoundingRule(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 0xFEE5_0000 + seed)
        for _ in 0..<1500 {
            let fee: Int64 =
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: Int64.random(in: 0...30, using: &rng)
                case 1: Int64.random(in: 0...1_000_000, using: &rng)
                case 2: Int64.random(in: 0...Int64(1) << 53, using: &rng)
                default: Int64.random(in: (Int64.max - 1_000_000)...Int64.max, using: &rng)
                }
            let c = Int.random(in: 0...10_000, using: &rng)
            let o = Int.random(in: 0...(10_000 - c), using: &rng)
            let policy = FeePolicy(contributorsBasisPoints: c, ownerBasisPoints: o, protocolBasisPoints: 10_000 - c - o)
            let penalty = PenaltyPolicy(thresholdPoints: Int.random(in: 0...5, using: &rng),
                                        keepBasisPoints: Int.random(in: 0...10_000, using: &rng))
            var weights: [ContributorID: UInt64] = [:]
            var points: [ContributorID: Int] = [:]
            let n = Int.random(in: 1...12, using: &rng)
            for _ in 0..<n {
                let id = ContributorID(Int64.random(in: 1...40, using: &rng))
                weights[id] = Bool.random(using: &rng) ? UInt64.random(in: 0...3, using: &rng) : UInt64.random(in: 0...(1 << 40), using: &rng)
                points[id] = Int.random(in: 0...8, using: &rng)
            }
            if !weights.values.contains(where: { $0 > 0 }) { weights[ContributorID(41)] = 1 }

            let split = try FeeSplitter.split(fee: fee, weights: weights, penaltyPoints: points, policy: policy, penalty: penalty)
            // Sums exactly; nothing negative.
            let paid = split.contributors.reduce(Int64(0)) { $0 + $1.paid }
            #expect(paid + split.forfeited + split.owner + split.protocolShare == fee)
            #expect(split.protocolTotal == split.protocolShare + split.forfeited)
            #expect(split.contributors.allSatisfy { $0.paid >= 0 && $0.paid <= $0.gross })
            #expect(split.owner >= 0 && split.protocolShare >= 0)
            // The three parts: floors, protocol takes the remainder (less than 2 micro-units).
            let f = fee.magnitude
            #expect(split.contributorPool.magnitude == FeeSplitter.mulDiv(f, UInt64(c), 10_000).quotient)
            #expect(split.owner.magnitude == FeeSplitter.mulDiv(f, UInt64(o), 10_000).quotient)
            let protocolExact = FeeSplitter.mulDiv(f, UInt64(policy.protocolBasisPoints), 10_000).quotient
            #expect(split.protocolShare.magnitude >= protocolExact && split.protocolShare.magnitude <= protocolExact + 2)
            // The pool is apportioned exactly, each within one micro-unit of its exact share, by largest remainder
            // with ties to the lower id.
            #expect(split.contributors.reduce(Int64(0)) { $0 + $1.gross } == split.contributorPool)
            #expect(split.contributors.map(\.contributor) == split.contributors.map(\.contributor).sorted())
            let total = split.contributors.reduce(UInt64(0)) { $0 + $1.weight }
            var bumped: [(remainder: UInt64, id: ContributorID)] = []
            var notBumped: [(remainder: UInt64, id: ContributorID)] = []
            for p in split.contributors {
                let (q, r) = FeeSplitter.mulDiv(split.contributorPool.magnitude, p.weight, total)
                #expect(p.gross.magnitude == q || p.gross.magnitude == q + 1)
                if p.gross.magnitude == q + 1 { bumped.append((r, p.contributor)) } else { notBumped.append((r, p.contributor)) }
                // Penalties.
                let penalised = p.penaltyPoints > penalty.thresholdPoints
                #expect(p.isPenalised == penalised)
                #expect(p.paid.magnitude == (penalised ? FeeSplitter.mulDiv(p.gross.magnitude, UInt64(penalty.keepBasisPoints), 10_000).quotient : p.gross.magnitude))
            }
            for b in bumped {
                for n in notBumped {
                    #expect(b.remainder > n.remainder || (b.remainder == n.remainder && b.id < n.id))
                }
            }
            // Deterministic: the same inputs built in another order give the same split.
            var reversed: [ContributorID: UInt64] = [:]
            for key in weights.keys.sorted().reversed() { reversed[key] = weights[key] }
            #expect(try FeeSplitter.split(fee: fee, weights: reversed, penaltyPoints: points, policy: policy, penalty: penalty) == split)
        }
    }

    @Test func normalisationValidatesAndQuantisesShares() throws {
        let a = RecordID(1), b = RecordID(2), c = RecordID(3)
        let n = try FeeSplitter.normalize([c: 1, a: 2, b: 1])
        #expect(n.map(\.record) == [a, b, c])
        #expect(n.map(\.share) == [0.5, 0.25, 0.25])
        #expect(n.map(\.weight) == [1 << 39, 1 << 38, 1 << 38])
        for bad: [RecordID: Double] in [[:], [a: .nan], [a: -1, b: 2], [a: .infinity], [a: 0], [a: -0.0], [a: .greatestFiniteMagnitude, b: .greatestFiniteMagnitude]] {
            #expect(throws: StoreError.self) { try FeeSplitter.normalize(bad) }
        }
        // Weights of any share vector sum to 2^40 within half a unit per record.
        var rng = SeededGenerator(seed: 77)
        for _ in 0..<500 {
            var shares: [RecordID: Double] = [:]
            for i in 0..<Int.random(in: 1...50, using: &rng) { shares[RecordID(Int64(i))] = Double.random(in: 0...1e6, using: &rng) }
            if shares.values.allSatisfy({ $0 == 0 }) { shares[RecordID(0)] = 1 }
            let q = try FeeSplitter.normalize(shares)
            let sum = q.reduce(Int64(0)) { $0 + Int64($1.weight) }
            #expect(abs(sum - (1 << 40)) <= Int64(q.count))
        }
    }
}
