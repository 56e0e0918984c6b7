/// How a paid inference's fee is split, in basis points (1/10 000) of the fee. The three parts sum to 10 000.
///
/// The documented default: 70% to the data contributors, by attribution share; 20% to the adapter's owner;
/// 10% to the protocol. Amounts are integer micro-units; see ``FeeSplitter`` for the rounding rule.
public struct FeePolicy: Sendable, Hashable, Codable {
    public var contributorsBasisPoints: Int
    public var ownerBasisPoints: Int
    public var protocolBasisPoints: Int

    public static let `default` = FeePolicy(contributorsBasisPoints: 7000, ownerBasisPoints: 2000, protocolBasisPoints: 1000)

    public init(contributorsBasisPoints: Int, ownerBasisPoints: Int, protocolBasisPoints: Int) {
        self.contributorsBasisPoints = contributorsBasisPoints
        self.ownerBasisPoints = ownerBasisPoints
        self.protocolBasisPoints = protocolBasisPoints
    }

    public func validate() throws {
        let parts = [contributorsBasisPoints, ownerBasisPoints, protocolBasisPoints]
        guard parts.allSatisfy({ $0 >= 0 && $0 <= 10_000 }), parts.reduce(0, +) == 10_000 else {
            throw StoreError.invalidPolicy(
                "fee basis points must be non-negative and sum to 10000, not "
                    + parts.map(String.init).joined(separator: " + "))
        }
    }
}

/// When and how much flagged contributors' shares are reduced.
///
/// Default: a contributor with more than 3 penalty points (strictly above the threshold) keeps 50% (5000 basis
/// points) of each future contributor share, rounded down; the forfeited rest goes to the protocol, in its own
/// `penalty_forfeit` ledger entry naming the contributor.
public struct PenaltyPolicy: Sendable, Hashable, Codable {
    /// Reductions apply to contributors with strictly more points than this.
    public var thresholdPoints: Int
    /// The part of their share such contributors keep, in basis points (0 to 10 000).
    public var keepBasisPoints: Int

    public static let `default` = PenaltyPolicy(thresholdPoints: 3, keepBasisPoints: 5000)

    public init(thresholdPoints: Int, keepBasisPoints: Int) {
        self.thresholdPoints = thresholdPoints
        self.keepBasisPoints = keepBasisPoints
    }

    public func validate() throws {
        guard thresholdPoints >= 0 else { throw StoreError.invalidPolicy("penalty threshold must be non-negative") }
        guard (0...10_000).contains(keepBasisPoints) else {
            throw StoreError.invalidPolicy("penalty keep basis points must be 0 to 10000")
        }
    }

    /// Whether a contributor with `points` penalty points has their shares reduced.
    public func applies(to points: Int) -> Bool { points > thresholdPoints }
}

/// One contributor's part of a fee split.
public struct ContributorPayout: Hashable, Sendable {
    public var contributor: ContributorID
    /// The contributor's integer attribution weight (sum of their records' weights).
    public var weight: UInt64
    /// Their share of the contributor pool before any penalty.
    public var gross: Int64
    /// What they are credited: `gross`, or `gross * keep / 10000` rounded down when penalised.
    public var paid: Int64
    public var penaltyPoints: Int
    public var forfeited: Int64 { gross - paid }
    public var isPenalised: Bool
}

/// An exact split of a fee: `contributors.paid` + forfeits + owner + protocol = fee.
public struct FeeSplit: Hashable, Sendable {
    public var fee: Int64
    /// `floor(fee * contributorsBasisPoints / 10000)`, apportioned among the contributors.
    public var contributorPool: Int64
    /// `floor(fee * ownerBasisPoints / 10000)`.
    public var owner: Int64
    /// `fee - contributorPool - owner`: the protocol's part plus the rounding remainder of the three parts.
    public var protocolShare: Int64
    /// By contributor id; contributors with zero weight are left out.
    public var contributors: [ContributorPayout]
    public var forfeited: Int64 { contributors.reduce(0) { $0 + $1.forfeited } }
    /// Everything the protocol receives: its share and the forfeits.
    public var protocolTotal: Int64 { protocolShare + forfeited }
}

/// Attribution shares (Doubles from the attribution engine) turned into exact integer splits.
///
/// 1. Shares are validated (finite, non-negative, positive sum) and normalised by their sum, summed in record-id
///    order. Each record's weight is `round(normalised * 2^40)` (ties to even); a contributor's weight is the sum
///    of their records' weights. From here on everything is integer arithmetic, so the split is exact and the
///    same on every machine.
/// 2. The fee's parts: contributor pool `C = floor(fee * c / 10000)`, owner `O = floor(fee * o / 10000)`,
///    protocol `P = fee - C - O` (so the protocol receives the rounding remainder of the three-way split).
/// 3. The pool is apportioned by largest remainder (Hamilton): contributor `j` first gets
///    `floor(C * W_j / W)`; the micro-units left over (fewer than the number of contributors) go one each to the
///    contributors with the largest remainders `C * W_j mod W`, ties broken by the lower contributor id.
/// 4. Penalised contributors keep `floor(gross * keep / 10000)`; the rest is forfeited to the protocol.
public enum FeeSplitter {
    /// The scale of the integer weights: a normalised share of 1 is `2^40`.
    public static let weightScale: Double = 1_099_511_627_776  // 2^40
    /// At most this many records per inference.
    public static let maxRecords = 1_000_000

    /// Normalised shares and integer weights, by record, from raw attribution shares.
    ///
    /// - Throws: ``StoreError/invalidShares(_:)`` for an empty set, too many records, a NaN, infinite or
    ///   negative share, or a sum that is zero or not finite.
    public static func normalize(_ shares: [RecordID: Double]) throws
        -> [(record: RecordID, share: Double, weight: UInt64)]
    {
        guard !shares.isEmpty else {
            throw StoreError.invalidShares("no records: an inference is attributed to at least one record")
        }
        guard shares.count <= maxRecords else { throw StoreError.invalidShares("more than \(maxRecords) records") }
        let ordered = shares.sorted { $0.key < $1.key }
        var total = 0.0
        for (record, share) in ordered {
            guard share.isFinite else { throw StoreError.invalidShares("\(record) has a share that is not finite") }
            guard share >= 0 else { throw StoreError.invalidShares("\(record) has a negative share (\(share))") }
            total += share
        }
        guard total.isFinite else { throw StoreError.invalidShares("the shares' sum is not finite") }
        guard total > 0 else { throw StoreError.invalidShares("the shares sum to zero") }
        return ordered.map { record, share in
            let normalised = share / total
            return (record, normalised, UInt64((normalised * weightScale).rounded(.toNearestOrEven)))
        }
    }

    /// `floor(value * numerator / denominator)` without overflow; requires the result to fit (numerator <=
    /// denominator).
    @inline(__always)
    static func mulDiv(_ value: UInt64, _ numerator: UInt64, _ denominator: UInt64)
        -> (quotient: UInt64, remainder: UInt64)
    {
        let product = value.multipliedFullWidth(by: numerator)
        return denominator.dividingFullWidth(product)
    }

    /// Splits `fee` among contributors weighted by `weights`, the owner and the protocol.
    ///
    /// - Parameters:
    ///   - weights: integer attribution weights by contributor (see ``normalize(_:)``); at least one positive.
    ///   - penaltyPoints: penalty points by contributor; missing means 0.
    /// - Throws: ``StoreError/invalidFee(_:)`` for a negative fee, ``StoreError/invalidShares(_:)`` when no
    ///   weight is positive or they overflow, ``StoreError/invalidPolicy(_:)``.
    public static func split(
        fee: Int64, weights: [ContributorID: UInt64], penaltyPoints: [ContributorID: Int] = [:],
        policy: FeePolicy = .default, penalty: PenaltyPolicy = .default
    ) throws -> FeeSplit {
        guard fee >= 0 else { throw StoreError.invalidFee(fee) }
        try policy.validate()
        try penalty.validate()
        let positive = weights.filter { $0.value > 0 }.sorted { $0.key < $1.key }
        guard !positive.isEmpty else { throw StoreError.invalidShares("no contributor has a positive weight") }
        var totalWeight: UInt64 = 0
        for (_, w) in positive {
            let (sum, overflow) = totalWeight.addingReportingOverflow(w)
            guard !overflow else { throw StoreError.invalidShares("weights overflow") }
            totalWeight = sum
        }

        let f = UInt64(fee)
        let pool = mulDiv(f, UInt64(policy.contributorsBasisPoints), 10_000).quotient
        let owner = mulDiv(f, UInt64(policy.ownerBasisPoints), 10_000).quotient
        let protocolShare = f - pool - owner

        // Largest remainder.
        var base: [UInt64] = []
        var remainders: [UInt64] = []
        base.reserveCapacity(positive.count)
        remainders.reserveCapacity(positive.count)
        var assigned: UInt64 = 0
        for (_, w) in positive {
            let (q, r) = mulDiv(pool, w, totalWeight)
            base.append(q)
            remainders.append(r)
            assigned += q
        }
        let leftover = pool - assigned
        if leftover > 0 {
            let order = positive.indices.sorted { a, b in
                remainders[a] != remainders[b] ? remainders[a] > remainders[b] : positive[a].key < positive[b].key
            }
            for i in order.prefix(Int(leftover)) { base[i] += 1 }
        }

        var payouts: [ContributorPayout] = []
        payouts.reserveCapacity(positive.count)
        for (i, (contributor, w)) in positive.enumerated() {
            let gross = base[i]
            let points = penaltyPoints[contributor] ?? 0
            let penalised = penalty.applies(to: points)
            let paid = penalised ? mulDiv(gross, UInt64(penalty.keepBasisPoints), 10_000).quotient : gross
            payouts.append(
                ContributorPayout(
                    contributor: contributor, weight: w, gross: Int64(gross), paid: Int64(paid), penaltyPoints: points,
                    isPenalised: penalised))
        }
        return FeeSplit(
            fee: fee, contributorPool: Int64(pool), owner: Int64(owner), protocolShare: Int64(protocolShare),
            contributors: payouts)
    }
}
