import Foundation
import LlamaModel
import ProtocolServer
import Store
import WireProtocol

// The store's and the model's values as the catalogue's wire types, and the model's errors as wire codes.

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
