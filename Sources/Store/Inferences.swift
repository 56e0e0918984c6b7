import Crypto
import Foundation
import GRDB

/// What recording an inference takes.
public struct NewInference: Sendable {
    /// The caller's unique id for the request (1 to 200 bytes, no control characters). Recording the same
    /// request twice is refused, so a retried request is never paid twice.
    public var requestID: String
    public var adapter: AdapterID
    /// See ``InferenceHash/of(prompt:output:)``. 32 bytes.
    public var promptOutputHash: Data
    /// The attribution method, e.g. `"datainf"`, `"tracin"`, `"grad-cos"` (1 to 64 bytes of `a-z 0-9 . _ -`).
    public var method: String
    /// The fee paid, in micro-units, 0 to ``MoneyBounds/maximumFee``; 0 for an unpaid inference (recorded, no
    /// ledger entries).
    public var fee: Int64
    /// Attribution shares by record, as the attribution engine produced them. Normalised by their sum.
    public var recordShares: [RecordID: Double]
    /// Whose account pays the fee; required when the fee is above 0.
    public var payer: ContributorID?
    /// The payer's key for this request (1 to 200 bytes, no control characters): the same payer's same key is
    /// recorded and charged once, whatever the request id, and recording it again returns the original.
    public var idempotencyKey: String?

    public init(
        requestID: String, adapter: AdapterID, promptOutputHash: Data, method: String, fee: Int64,
        recordShares: [RecordID: Double], payer: ContributorID? = nil, idempotencyKey: String? = nil
    ) {
        self.requestID = requestID
        self.adapter = adapter
        self.promptOutputHash = promptOutputHash
        self.method = method
        self.fee = fee
        self.recordShares = recordShares
        self.payer = payer
        self.idempotencyKey = idempotencyKey
    }
}

/// The hash of an inference's prompt and output: the store keeps this, not the text.
public enum InferenceHash {
    /// SHA-256 over `"tributary.inference.v1" 0x00`, the prompt's UTF-8 length (8 bytes, big-endian) and bytes,
    /// then the output's length and bytes.
    public static func of(prompt: String, output: String) -> Data {
        var hasher = SHA256()
        hasher.update(data: Array("tributary.inference.v1".utf8) + [0])
        for part in [prompt, output] {
            let bytes = Array(part.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        return Data(hasher.finalize())
    }
}

public struct RecordShare: Hashable, Sendable {
    public var record: RecordID
    /// Normalised: the record shares of an inference sum to 1 (up to rounding).
    public var share: Double
}

public struct ContributorShare: Hashable, Sendable {
    public var contributor: ContributorID
    /// The sum of the contributor's records' shares.
    public var share: Double
    /// Their part of the contributor pool before penalties, micro-units.
    public var grossAmount: Int64
    /// What the ledger credited them.
    public var paidAmount: Int64
    /// Their penalty points when the inference was recorded.
    public var penaltyPoints: Int
}

public struct DatanetShare: Hashable, Sendable {
    public var datanet: DatanetID
    /// The sum of the shares of the datanet's records.
    public var share: Double
}

/// A recorded inference and its attribution.
public struct InferenceRecord: Hashable, Sendable {
    public var id: InferenceID
    public var requestID: String
    public var adapter: AdapterID
    public var promptOutputHash: Data
    public var method: String
    public var fee: Int64
    /// Who paid the fee (nil when it was not paid, or was credited before accounts began).
    public var payer: ContributorID?
    /// The payer's idempotency key, if the request carried one.
    public var idempotencyKey: String?
    /// The policies in force when it was recorded.
    public var feePolicy: FeePolicy
    public var penaltyPolicy: PenaltyPolicy
    public var createdAt: Date
    /// By record id.
    public var recordShares: [RecordShare]
    /// By contributor id.
    public var contributorShares: [ContributorShare]
    /// By datanet id.
    public var datanetShares: [DatanetShare]
}

/// What ``Store/recordInference(_:)`` wrote (or, for a replayed idempotency key, had written).
public struct InferenceReceipt: Hashable, Sendable {
    public var inference: InferenceRecord
    /// The ledger entries, in order: the payer's fee payment (a debit of the fee), then contributor shares and
    /// penalty forfeits by contributor id, then the owner's share, then the protocol's. Zero amounts get no entry.
    /// The credits sum to the fee, so the entries net to zero.
    public var entries: [LedgerEntry]
    /// True when the payer's idempotency key was already recorded: this is the original, nothing was written.
    public var isReplay: Bool = false
}

extension Store {
    /// Records an inference, its attribution to records, contributors and datanets, and, when it was paid,
    /// the debit of its fee from the payer and the split of the fee on the ledger, all in one transaction.
    ///
    /// The payer's balance is checked in the transaction: a payer who cannot cover the fee is refused and nothing
    /// is written. With an idempotency key already recorded for the payer, nothing is written either: the
    /// original inference comes back (``InferenceReceipt/isReplay``), provided it was for the same adapter and fee.
    ///
    /// Every record must be in a datanet version the adapter was trained on. The fee is split by the store's
    /// ``StoreConfiguration/feePolicy`` and ``StoreConfiguration/penaltyPolicy`` as ``FeeSplitter`` describes;
    /// the policies are recorded with the inference.
    ///
    /// - Throws: ``StoreError/invalidInference(_:)``, ``StoreError/invalidFee(_:)``,
    ///   ``StoreError/invalidShares(_:)``, ``StoreError/duplicateRequest(_:)``, ``StoreError/adapterNotFound(_:)``,
    ///   ``StoreError/recordNotFound(_:)``, ``StoreError/recordNotInTrainingData(record:adapter:)``,
    ///   ``StoreError/contributorNotFound(_:)`` for an unknown payer,
    ///   ``StoreError/insufficientFunds(payer:balance:fee:)``, ``StoreError/idempotencyKeyReused(key:reason:)``.
    public func recordInference(_ spec: NewInference) throws -> InferenceReceipt {
        let requestID = spec.requestID
        guard !requestID.isEmpty, requestID.utf8.count <= 200, !Validation.containsControlCharacters(requestID) else {
            throw StoreError.invalidInference("request id must be 1 to 200 bytes, without control characters")
        }
        guard spec.promptOutputHash.count == 32 else {
            throw StoreError.invalidInference("prompt/output hash must be 32 bytes (SHA-256)")
        }
        let methodBytes = Array(spec.method.utf8)
        guard !methodBytes.isEmpty, methodBytes.count <= 64,
            methodBytes.allSatisfy({ Validation.isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
                || $0 == UInt8(ascii: "-") })
        else { throw StoreError.invalidInference("method must be 1 to 64 characters from a-z, 0-9, '.', '_', '-'") }
        guard (0...MoneyBounds.maximumFee).contains(spec.fee) else { throw StoreError.invalidFee(spec.fee) }
        guard spec.fee == 0 || spec.payer != nil else {
            throw StoreError.invalidInference("a fee of \(spec.fee) needs a payer: fees are debited from an account")
        }
        if let key = spec.idempotencyKey {
            guard spec.payer != nil else { throw StoreError.invalidInference("an idempotency key is scoped to a payer") }
            guard Self.isValidKey(key) else { throw StoreError.invalidInference(Self.keyRule) }
        }
        let normalised = try FeeSplitter.normalize(spec.recordShares)
        let feePolicy = configuration.feePolicy
        let penaltyPolicy = configuration.penaltyPolicy
        let now = nowMillis()

        return try write { db in
            if let payer = spec.payer { try Self.requireContributor(db, payer) }
            if let payer = spec.payer, let key = spec.idempotencyKey,
                let existing = try InferenceID.fetchOne(
                    db, sql: "SELECT id FROM inference WHERE payer_id = ? AND idempotency_key = ?", arguments: [payer, key])
            {
                let original = try Self.fetchInference(db, existing)
                guard original.adapter == spec.adapter, original.fee == spec.fee else {
                    throw StoreError.idempotencyKeyReused(
                        key: key, reason: "it paid \(original.fee) for inference \(original.id.rawValue) on \(original.adapter)")
                }
                let entries = try Row.fetchAll(
                    db, sql: "SELECT * FROM ledger_entry WHERE inference_id = ? ORDER BY seq", arguments: [existing]
                ).map(Self.entry(from:))
                return InferenceReceipt(inference: original, entries: entries, isReplay: true)
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM inference WHERE request_id = ?", arguments: [requestID]) != nil {
                throw StoreError.duplicateRequest(requestID)
            }
            if let payer = spec.payer, spec.fee > 0 {
                // Checked again when the debit is appended; refusing here writes nothing.
                let balance = try Self.balance(db, of: .contributor(payer))
                guard balance >= spec.fee else {
                    throw StoreError.insufficientFunds(payer: payer, balance: balance, fee: spec.fee)
                }
            }
            let owner = try Self.fetchAdapterOwner(db, spec.adapter)

            // Provenance: each record must be in a version the adapter was trained on.
            let recordInfo = try db.makeStatement(sql: "SELECT contributor_id, datanet_id FROM record WHERE id = ?")
            let inTraining = try db.makeStatement(
                sql: """
                    SELECT 1 FROM version_record vr
                    JOIN adapter_training_version t ON t.version_id = vr.version_id
                    WHERE t.adapter_id = ? AND vr.record_id = ? LIMIT 1
                    """)
            var contributorWeights: [ContributorID: UInt64] = [:]
            var contributorShares: [ContributorID: Double] = [:]
            var datanetShares: [DatanetID: Double] = [:]
            for item in normalised {
                guard let row = try Row.fetchOne(recordInfo, arguments: [item.record]) else {
                    throw StoreError.recordNotFound(item.record)
                }
                guard try Bool.fetchOne(inTraining, arguments: [spec.adapter, item.record]) != nil else {
                    throw StoreError.recordNotInTrainingData(record: item.record, adapter: spec.adapter)
                }
                let contributor: ContributorID = try row.decode(forColumn: "contributor_id")
                let datanet: DatanetID = try row.decode(forColumn: "datanet_id")
                contributorWeights[contributor, default: 0] += item.weight
                contributorShares[contributor, default: 0] += item.share
                datanetShares[datanet, default: 0] += item.share
            }
            var points: [ContributorID: Int] = [:]
            for contributor in contributorWeights.keys {
                points[contributor] = try Self.penaltyPoints(db, contributor, on: spec.adapter)
            }

            // Contributors whose weight rounds to zero still appear in the attribution, with nothing paid.
            guard contributorWeights.values.contains(where: { $0 > 0 }) else {
                throw StoreError.invalidShares("every share rounds to zero")
            }
            let split = try FeeSplitter.split(
                fee: spec.fee, weights: contributorWeights, penaltyPoints: points, policy: feePolicy,
                penalty: penaltyPolicy)
            let payouts = Dictionary(uniqueKeysWithValues: split.contributors.map { ($0.contributor, $0) })

            try db.execute(
                sql: """
                    INSERT INTO inference (request_id, adapter_id, prompt_output_hash, method, fee, contributors_bp,
                                           owner_bp, protocol_bp, penalty_threshold, penalty_keep_bp, created_at,
                                           payer_id, idempotency_key)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    requestID, spec.adapter, spec.promptOutputHash, spec.method, spec.fee,
                    feePolicy.contributorsBasisPoints, feePolicy.ownerBasisPoints, feePolicy.protocolBasisPoints,
                    penaltyPolicy.thresholdPoints, penaltyPolicy.keepBasisPoints, now, spec.payer, spec.idempotencyKey,
                ])
            let inference = InferenceID(db.lastInsertedRowID)
            let insertRecordShare = try db.makeStatement(
                sql: "INSERT INTO inference_record_share (inference_id, record_id, share) VALUES (?, ?, ?)")
            for item in normalised {
                try insertRecordShare.execute(arguments: [inference, item.record, item.share])
            }
            for contributor in contributorShares.keys.sorted() {
                let payout = payouts[contributor]
                try db.execute(
                    sql: """
                        INSERT INTO inference_contributor_share (inference_id, contributor_id, share, gross_amount,
                                                                 paid_amount, penalty_points)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        inference, contributor, min(1, contributorShares[contributor]!), payout?.gross ?? 0,
                        payout?.paid ?? 0, points[contributor] ?? 0,
                    ])
            }
            for datanet in datanetShares.keys.sorted() {
                try db.execute(
                    sql: "INSERT INTO inference_datanet_share (inference_id, datanet_id, share) VALUES (?, ?, ?)",
                    arguments: [inference, datanet, min(1, datanetShares[datanet]!)])
            }

            // The ledger.
            var entries: [LedgerEntry] = []
            var head = try Self.head(db)
            func append(_ kind: LedgerEntryKind, _ account: LedgerAccount, _ amount: Int64, subject: ContributorID? = nil,
                        memo: String = "") throws {
                guard amount > 0 else { return }
                let entry = try Self.append(
                    db, after: head, kind: kind, account: account, amount: amount, inference: inference,
                    subject: subject, memo: memo, at: now)
                head = LedgerHead(seq: entry.seq, hash: entry.hash)
                entries.append(entry)
            }
            // The payer first: the credits below add up to exactly this debit.
            if let payer = spec.payer { try append(.feePayment, .contributor(payer), spec.fee) }
            for payout in split.contributors {
                try append(.contributorShare, .contributor(payout.contributor), payout.paid)
                if payout.isPenalised && payout.forfeited > 0 {
                    try append(
                        .penaltyForfeit, .protocol, payout.forfeited, subject: payout.contributor,
                        memo: "penalty: \(payout.contributor) has \(payout.penaltyPoints) points (threshold "
                            + "\(penaltyPolicy.thresholdPoints)); keeps \(penaltyPolicy.keepBasisPoints)/10000 of "
                            + "\(payout.gross), forfeits \(payout.forfeited)")
                }
            }
            try append(.ownerShare, .contributor(owner), split.owner)
            try append(.protocolShare, .protocol, split.protocolShare)
            return InferenceReceipt(inference: try Self.fetchInference(db, inference), entries: entries)
        }
    }

    /// The inference with this request id. - Throws: ``StoreError/inferenceNotFound(_:)``.
    public func inference(requestID: String) throws -> InferenceRecord {
        try read { db in
            guard let id = try InferenceID.fetchOne(
                db, sql: "SELECT id FROM inference WHERE request_id = ?", arguments: [requestID])
            else { throw StoreError.inferenceNotFound("\"\(requestID)\"") }
            return try Self.fetchInference(db, id)
        }
    }

    /// The inference with this id. - Throws: ``StoreError/inferenceNotFound(_:)``.
    public func inference(_ id: InferenceID) throws -> InferenceRecord {
        try read { db in try Self.fetchInference(db, id) }
    }

    /// The number of recorded inferences.
    public func inferenceCount() throws -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM inference") ?? 0 }
    }

    static func fetchInference(_ db: Database, _ id: InferenceID) throws -> InferenceRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM inference WHERE id = ?", arguments: [id]) else {
            throw StoreError.inferenceNotFound(String(id.rawValue))
        }
        let recordShares = try Row.fetchAll(
            db, sql: "SELECT record_id, share FROM inference_record_share WHERE inference_id = ? ORDER BY record_id",
            arguments: [id]
        ).map { RecordShare(record: try $0.decode(forColumn: "record_id"), share: try $0.decode(forColumn: "share")) }
        let contributorShares = try Row.fetchAll(
            db, sql: "SELECT * FROM inference_contributor_share WHERE inference_id = ? ORDER BY contributor_id",
            arguments: [id]
        ).map {
            ContributorShare(
                contributor: try $0.decode(forColumn: "contributor_id"), share: try $0.decode(forColumn: "share"),
                grossAmount: try $0.decode(forColumn: "gross_amount"), paidAmount: try $0.decode(forColumn: "paid_amount"),
                penaltyPoints: try $0.decode(forColumn: "penalty_points"))
        }
        let datanetShares = try Row.fetchAll(
            db, sql: "SELECT datanet_id, share FROM inference_datanet_share WHERE inference_id = ? ORDER BY datanet_id",
            arguments: [id]
        ).map { DatanetShare(datanet: try $0.decode(forColumn: "datanet_id"), share: try $0.decode(forColumn: "share")) }
        return InferenceRecord(
            id: id, requestID: try row.decode(forColumn: "request_id"), adapter: try row.decode(forColumn: "adapter_id"),
            promptOutputHash: try row.decode(forColumn: "prompt_output_hash"), method: try row.decode(forColumn: "method"),
            fee: try row.decode(forColumn: "fee"), payer: try row.decode(forColumn: "payer_id"),
            idempotencyKey: try row.decode(forColumn: "idempotency_key"),
            feePolicy: FeePolicy(
                contributorsBasisPoints: try row.decode(forColumn: "contributors_bp"),
                ownerBasisPoints: try row.decode(forColumn: "owner_bp"),
                protocolBasisPoints: try row.decode(forColumn: "protocol_bp")),
            penaltyPolicy: PenaltyPolicy(
                thresholdPoints: try row.decode(forColumn: "penalty_threshold"),
                keepBasisPoints: try row.decode(forColumn: "penalty_keep_bp")),
            createdAt: Date(millis: try row.decode(forColumn: "created_at")),
            recordShares: recordShares, contributorShares: contributorShares, datanetShares: datanetShares)
    }
}
