import Attribution
import Foundation
import LlamaModel
import ProtocolServer
import Serving
import Store
import WireProtocol

// The store's and the model's values as the catalogue's wire types, and the store's errors as wire codes.

extension Wire.Datanet {
    init(_ datanet: Datanet) {
        self.init(
            id: datanet.id.rawValue, name: datanet.name, summary: datanet.summary, description: datanet.description,
            tags: datanet.tags, license: datanet.license, owner: datanet.owner.rawValue,
            visibility: datanet.visibility == .public ? .public : .private, createdAtMs: datanet.createdAt.wireMillis)
    }
}

extension Wire.Record {
    init(_ record: DataRecord) {
        let status: Wire.RecordStatus =
            switch record.status {
            case .pending: .pending
            case .approved: .approved
            case .rejected: .rejected
            }
        self.init(
            id: record.id.rawValue, datanet: record.datanet.rawValue, contributor: record.contributor.rawValue,
            status: status, byteSize: UInt32(record.byteSize), contentHash: Array(record.contentHash),
            createdAtMs: record.createdAt.wireMillis)
    }
}

extension RecordStatus {
    init(_ status: Wire.RecordStatus) {
        self =
            switch status {
            case .pending: .pending
            case .approved: .approved
            case .rejected: .rejected
            }
    }
}

extension Wire.DatanetVersion {
    init(_ version: DatanetVersion) {
        self.init(
            datanet: version.datanet.rawValue, number: UInt32(version.number), recordCount: UInt32(version.recordCount),
            manifestHash: Array(version.manifestHash), publishedBy: version.publishedBy.rawValue,
            createdAtMs: version.createdAt.wireMillis)
    }
}

extension Wire.Adapter {
    init(_ adapter: Adapter, loaded: Bool) {
        self.init(
            id: adapter.id.rawValue, name: adapter.name, owner: adapter.owner.rawValue,
            baseModelHash: adapter.baseModelHash,
            versions: adapter.trainedOn.map { Wire.VersionRef(datanet: $0.datanet.rawValue, number: UInt32($0.number)) },
            loaded: loaded, createdAtMs: adapter.createdAt.wireMillis)
    }
}

extension Wire.LedgerEntry {
    init(_ entry: LedgerEntry) {
        let kind: Wire.LedgerEntryKind =
            switch entry.kind {
            case .contributorShare: .contributorShare
            case .ownerShare: .ownerShare
            case .protocolShare: .protocolShare
            case .penaltyForfeit: .penaltyForfeit
            case .deposit: .deposit
            case .feePayment: .feePayment
            case .penalty: .penalty
            }
        self.init(
            seq: entry.seq, createdAtMs: entry.createdAtMillis, kind: kind, contributor: entry.account.contributorID,
            amount: entry.amount, inference: entry.inference?.rawValue, subjectContributor: entry.subject?.rawValue,
            memo: entry.memo, prevHash: Array(entry.prevHash), hash: Array(entry.hash))
    }
}

extension LedgerAccount {
    /// The wire's account: a contributor's id, or none for the protocol's account.
    var contributorID: Int64? {
        switch self {
        case .protocol: nil
        case .contributor(let id): id.rawValue
        }
    }
}

extension Wire.LedgerHead {
    init(_ head: LedgerHead) { self.init(seq: head.seq, hash: Array(head.hash)) }
}

extension Wire.LedgerVerification {
    init(_ verification: LedgerVerification) {
        let broken = verification.firstBreak.map { failure -> Wire.LedgerBreak in
            let (kind, found): (Wire.LedgerBreakKind, Int64) =
                switch failure {
                case .missingEntry(_, let found): (.missingEntry, found)
                case .prevHashMismatch(let seq): (.prevHashMismatch, seq)
                case .hashMismatch(let seq): (.hashMismatch, seq)
                case .malformed(let seq, _): (.malformed, seq)
                case .anchorMismatch(let seq): (.anchorMismatch, seq)
                case .anchorMissing(let seq): (.anchorMissing, seq)
                case .unbalanced(let seq, _): (.unbalanced, seq)
                }
            return Wire.LedgerBreak(kind: kind, seq: failure.seq, found: found, reason: failure.description)
        }
        self.init(
            checked: UInt64(verification.entriesChecked), head: verification.head.map(Wire.LedgerHead.init), broken: broken,
            deposits: verification.deposits, balances: verification.balances)
    }
}

extension ScorerKind {
    /// The scorer a wire method names; nil for `off`.
    init?(_ method: Wire.AttributionMethod) {
        switch method {
        case .off: return nil
        case .datainf: self = .dataInf
        case .tracin: self = .tracIn
        case .gradcos: self = .gradCos
        case .fisher: self = .fisher
        }
    }

    /// The wire's name of this scorer; nil for one the wire has no name for (grad-dot).
    var wireMethod: Wire.AttributionMethod? {
        switch self {
        case .dataInf: .datainf
        case .tracIn: .tracin
        case .gradCos: .gradcos
        case .fisher: .fisher
        case .gradDot: nil
        }
    }
}

extension Wire.Attribution {
    /// An output's attribution as the wire carries it: the index's contributor and record ids are the store's
    /// (as its jobs index them) and its datanets are named; `datanetIDs` maps those names to the store's ids.
    init(
        _ attribution: OutputAttribution, method: Wire.AttributionMethod, inference: InferenceID?,
        datanetIDs: [String: Int64], allScores: [Float]? = nil
    ) throws {
        func id(_ text: String, _ what: String) throws -> Int64 {
            guard let id = Int64(text) else {
                throw RequestFailure(.internal, "the gradient index names \(what) \"\(text)\", not a store id: rebuild it with an index job")
            }
            return id
        }
        func datanet(_ name: String) throws -> Int64 {
            guard let id = datanetIDs[name] else { throw RequestFailure(.internal, "the gradient index names an unknown datanet \"\(name)\"") }
            return id
        }
        func scored(_ record: AttributedRecord) throws -> Wire.ScoredRecord {
            Wire.ScoredRecord(
                record: try id(record.record.id, "record"), contributor: try id(record.record.contributor, "contributor"),
                datanet: try datanet(record.record.datanet), score: record.score)
        }
        // Datanet shares come per version; the wire gives them per datanet.
        var datanetShares: [Int64: Double] = [:]
        for group in attribution.datanets { datanetShares[try datanet(group.name), default: 0] += group.share }
        self.init(
            method: method, inference: inference?.rawValue, top: try attribution.records.map(scored),
            negative: try attribution.opposingRecords.map(scored),
            contributors: try attribution.contributors.map { Wire.ContributorWeight(contributor: try id($0.name, "contributor"), share: $0.share) },
            datanets: datanetShares.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { Wire.DatanetWeight(datanet: $0.key, share: $0.value) },
            allScores: allScores.map { FloatTensor(shape: [$0.count], values: $0) })
    }
}

extension Wire.RewardSplit {
    /// A paid inference's split, from what the store recorded and appended.
    init(_ receipt: InferenceReceipt) {
        // Each total is a part of the fee (at most MoneyBounds.maximumFee): no overflow.
        func total(_ kind: LedgerEntryKind) -> Int64 { receipt.entries.filter { $0.kind == kind }.reduce(0) { $0 + $1.amount } }
        let inference = receipt.inference
        // A fee above 0 always appends at least one entry; an empty head would say the ledger is empty.
        let head = receipt.entries.last.map { Wire.LedgerHead(seq: $0.seq, hash: Array($0.hash)) } ?? Wire.LedgerHead(seq: 0, hash: [])
        self.init(
            inference: inference.id.rawValue, fee: inference.fee,
            contributorPool: inference.contributorShares.reduce(0) { $0 + $1.grossAmount }, owner: total(.ownerShare),
            protocolShare: total(.protocolShare), forfeited: total(.penaltyForfeit),
            payouts: inference.contributorShares.map {
                Wire.ContributorPayout(
                    contributor: $0.contributor.rawValue, share: $0.share, gross: $0.grossAmount, paid: $0.paidAmount,
                    penaltyPoints: UInt32(clamping: $0.penaltyPoints))
            },
            ledgerHead: head)
    }
}

/// The model's stop reason (the name alone, inside `Wire`, means the wire's).
typealias GenerationStopReason = StopReason

extension Wire.StopReason {
    init(_ reason: GenerationStopReason) {
        self =
            switch reason {
            case .stopToken: .stopToken
            case .maxTokens: .maxTokens
            case .contextFull: .contextFull
            case .cancelled: .cancelled
            case .stopSequence: .stopSequence
            }
    }
}

extension Date {
    var wireMillis: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
}

extension GenerationError: WireFailureConvertible {
    public var requestFailure: RequestFailure { RequestFailure(.invalidArgument, description) }
}

extension LoRAError: WireFailureConvertible {
    public var requestFailure: RequestFailure { RequestFailure(.failedPrecondition, description) }
}

extension JobRunError: WireFailureConvertible {
    public var requestFailure: RequestFailure { RequestFailure(.failedPrecondition, description) }
}

extension AttributionInputError: WireFailureConvertible {
    public var requestFailure: RequestFailure { RequestFailure(.invalidArgument, description) }
}

extension AttributionError: WireFailureConvertible {
    public var requestFailure: RequestFailure { RequestFailure(.failedPrecondition, description) }
}

extension Wire.Penalty {
    init(_ penalty: RecordPenalty) throws {
        guard let method = ScorerKind(rawValue: penalty.evidence.method)?.wireMethod else {
            throw RequestFailure(.internal, "penalty on \(penalty.record) names method \(penalty.evidence.method), which the protocol cannot name")
        }
        self.init(
            record: penalty.record.rawValue, contributor: penalty.contributor.rawValue, adapter: penalty.adapter.rawValue,
            imposedBy: penalty.imposedBy.rawValue, method: method,
            evaluation: Wire.VersionRef(datanet: penalty.evidence.evaluation.datanet.rawValue, number: UInt32(penalty.evidence.evaluation.number)),
            score: penalty.evidence.score, points: UInt32(penalty.points), ledgerSeq: penalty.ledgerSeq,
            createdMs: penalty.createdAt.wireMillis)
    }
}

extension Wire.DatanetGrantEntry {
    init(_ grant: DatanetGrant) {
        self.init(grantee: grant.grantee.rawValue, grantedBy: grant.grantedBy.rawValue, grantedMs: grant.grantedAt.wireMillis)
    }
}
