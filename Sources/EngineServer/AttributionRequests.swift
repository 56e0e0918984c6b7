import Attribution
import Foundation
import NIOCore
import Store
import WireProtocol

/// ATTRIBUTE and CURATE: attribution queries on an adapter's gradient index, computed on the compute pool.
extension RequestRouter {
    /// `stream`: the request's, so that work whose client has cancelled it is not started.
    func attribute(_ request: Wire.Attribute, stream: RequestStream) async throws -> Wire.Attribution {
        switch request.target {
        case .inference(let target): try await recordedAttribution(target.requestId, request)
        case .text(let target): try await textAttribution(target, request, stream: stream)
        }
    }

    /// A given prompt and completion on an adapter: every training record scored, nothing recorded.
    private func textAttribution(_ target: Wire.TextTarget, _ request: Wire.Attribute, stream: RequestStream) async throws -> Wire.Attribution {
        guard let method = ScorerKind(request.method) else {
            throw RequestFailure(.invalidArgument, "method must name a scorer (datainf, tracin, gradcos, fisher), not off")
        }
        let pipeline = engine.pipeline
        let adapter = AdapterID(target.adapter)
        let top = Int(request.topRecords)
        let (attribution, scores) = try await engine.withCompute(for: computeBucket, isCancelled: { stream.isCancelled }) {
            try pipeline.scoredAttribution(
                adapter: adapter, prompt: target.prompt,
                completion: try pipeline.completionTokens(prompt: target.prompt, completion: target.completion), method: method,
                topRecords: top)
        }
        let reply = try await engine.wireAttribution(
            attribution, method: request.method, inference: nil, allScores: request.allScores ? scores : nil)
        try Self.requireFits(reply, maxPayload: peerMaxPayload)
        return reply
    }

    /// Every record's score can outgrow what the client accepts in one frame: it is refused, not sent.
    /// Measured without encoding the scores (they are most of it, and the reply is encoded again to be sent).
    static func requireFits(_ reply: Wire.Attribution, maxPayload: UInt32) throws(RequestFailure) {
        guard let scores = reply.allScores else { return }
        var rest = reply
        rest.allScores = nil
        var encoded = ByteBuffer()
        rest.write(to: &encoded)
        let size = encoded.readableBytes + scores.encodedSize
        guard size > Int(maxPayload) else { return }
        throw RequestFailure(
            .tooLarge,
            "the attribution with all \(scores.values.count) scores takes \(size) bytes, more than this connection's max_frame_size \(maxPayload): connect with a larger max_frame_size, or ask without all_scores")
    }

    /// A past inference, as the store recorded it: its records' shares (the scores it was paid by; negative
    /// influence is not recorded) and its contributor and datanet shares.
    private func recordedAttribution(_ requestID: String, _ request: Wire.Attribute) async throws -> Wire.Attribution {
        guard !request.allScores else {
            throw RequestFailure(
                .failedPrecondition, "the store keeps an inference's shares, not its text: attribute the prompt and completion for all scores")
        }
        let top = Int(request.topRecords)
        return try await engine.withStore { store in
            let inference: InferenceRecord
            do {
                inference = try store.inference(requestID: requestID)
            } catch StoreError.inferenceNotFound {
                // Or the store's id of the inference, as its ATTRIBUTION named it.
                guard let id = Int64(requestID) else { throw StoreError.inferenceNotFound(requestID) }
                inference = try store.inference(InferenceID(id))
            }
            let records = try inference.recordShares.sorted { ($1.share, $0.record) < ($0.share, $1.record) }.prefix(top).map { share in
                let record = try store.record(share.record)
                return Wire.ScoredRecord(
                    record: record.id.rawValue, contributor: record.contributor.rawValue, datanet: record.datanet.rawValue,
                    score: share.share)
            }
            guard let method = ScorerKind(rawValue: inference.method)?.wireMethod else {
                throw RequestFailure(.failedPrecondition, "inference \(inference.id.rawValue) was attributed with \(inference.method), which the protocol cannot name")
            }
            return Wire.Attribution(
                method: method, inference: inference.id.rawValue, top: records, negative: [],
                contributors: inference.contributorShares.map { Wire.ContributorWeight(contributor: $0.contributor.rawValue, share: $0.share) },
                datanets: inference.datanetShares.map { Wire.DatanetWeight(datanet: $0.datanet.rawValue, share: $0.share) },
                allScores: nil)
        }
    }

    /// Scores the adapter's training records against an evaluation version and, with `apply`, penalises the most
    /// harmful ones for this adapter only. The caller answers for the adapter's data (``AccessRule/adapterSteward``,
    /// checked before): its owner or an operator penalises any of its records, a datanet's owner only their own.
    func curate(_ request: Wire.Curate, stream: RequestStream) async throws -> Wire.CurationReport {
        let curator = try requireContributor()
        guard let method = ScorerKind(request.method) else {
            throw RequestFailure(.invalidArgument, "method must name a scorer (datainf, tracin, gradcos, fisher), not off")
        }
        guard !request.apply || (1...1000).contains(request.points) else {
            throw RequestFailure(.invalidArgument, "points must be 1 to 1000, got \(request.points)")
        }
        let adapter = AdapterID(request.adapter)
        let evaluation = DatanetVersionRef(datanet: DatanetID(request.evaluation.datanet), number: Int(request.evaluation.number))
        let pipeline = engine.pipeline
        let report = try await engine.withCompute(for: computeBucket, isCancelled: { stream.isCancelled }) {
            try pipeline.curate(adapter: adapter, evaluation: evaluation, method: method)
        }
        let harmful = report.harmfulRecords.prefix(Int(request.maxFlags))
        let (apply, points) = (request.apply, Int(request.points))
        let flagged = try await engine.withStore { store in
            try harmful.map { entry -> Wire.FlaggedRecord in
                guard let record = Int64(entry.record.id), let contributor = Int64(entry.record.contributor) else {
                    throw RequestFailure(.internal, "the gradient index names record \"\(entry.record.id)\", not a store id")
                }
                var reason = "net influence \(entry.score) on datanet \(evaluation.datanet.rawValue) version \(evaluation.number)"
                if apply {
                    do {
                        let evidence = PenaltyEvidence(method: method.rawValue, evaluation: evaluation, score: entry.score)
                        let penalty = try store.penalize(RecordID(record), adapter: adapter, by: curator, evidence: evidence, points: points)
                        reason = "penalised (ledger entry \(penalty.ledgerSeq)); " + reason
                    } catch StoreError.recordAlreadyFlagged {
                        // Curating again penalises nothing twice.
                        reason = "already penalised on this adapter; " + reason
                    } catch StoreError.notAdapterOwner {
                        // A datanet owner answers for their own datanets' records only.
                        reason = "not penalised: its datanet is not the curator's; " + reason
                    }
                }
                return Wire.FlaggedRecord(record: record, contributor: contributor, score: entry.score, reason: reason)
            }
        }
        return Wire.CurationReport(evaluated: UInt32(report.validationInfluence.count), applied: apply, flagged: flagged)
    }
}
