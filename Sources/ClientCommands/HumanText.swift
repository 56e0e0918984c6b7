import Foundation
import WireProtocol

/// The replies as text for a person: one line per thing, tables for lists, hashes shortened.
public enum HumanText {
    public static func signedUp(_ reply: Wire.SignedUp) -> String {
        """
        contributor \(reply.contributor)
        token       \(reply.token)

        The token is shown only once; keep it. To use it:
          export TRIBUTARY_TOKEN=\(reply.token)
        """
    }

    public static func datanet(_ datanet: Wire.Datanet) -> String {
        "datanet \(datanet.id) \"\(datanet.name)\" (\(datanet.visibility.catalogueName), owner \(datanet.owner))"
    }

    public static func datanets(_ summaries: [Wire.DatanetSummary]) -> String {
        guard !summaries.isEmpty else { return "no datanets" }
        return table(
            ["id", "name", "visibility", "owner", "versions", "pending", "approved", "rejected", "summary"],
            summaries.map { summary in
                let datanet = summary.datanet
                return [
                    "\(datanet.id)", datanet.name, datanet.visibility.catalogueName, "\(datanet.owner)",
                    "\(summary.versions.count)", "\(summary.pending)", "\(summary.approved)", "\(summary.rejected)",
                    datanet.summary,
                ]
            })
    }

    public static func datanetDetails(_ summary: Wire.DatanetSummary) -> String {
        let datanet = summary.datanet
        var lines = [
            Self.datanet(datanet),
            "summary      \(datanet.summary)",
            "description  \(datanet.description)",
            "tags         \(datanet.tags.joined(separator: ", "))",
            "license      \(datanet.license)",
            "created      \(date(datanet.createdAtMs))",
            "records      \(summary.pending) pending, \(summary.approved) approved, \(summary.rejected) rejected",
        ]
        if summary.versions.isEmpty {
            lines.append("versions     none published")
        } else {
            lines.append("versions")
            lines.append(
                table(
                    ["version", "records", "manifest", "published by", "at"],
                    summary.versions.map {
                        ["\($0.number)", "\($0.recordCount)", short($0.manifestHash), "\($0.publishedBy)", date($0.createdAtMs)]
                    }, indent: "  "))
        }
        return lines.joined(separator: "\n")
    }

    public static func record(_ record: Wire.Record) -> String {
        "record \(record.id) \(record.status.catalogueName) in datanet \(record.datanet) (\(record.byteSize) bytes, sha256 \(short(record.contentHash)))"
    }

    public static func records(_ records: [Wire.Record]) -> String {
        guard !records.isEmpty else { return "no records" }
        return table(
            ["id", "contributor", "status", "bytes", "sha256", "created"],
            records.map {
                ["\($0.id)", "\($0.contributor)", $0.status.catalogueName, "\($0.byteSize)", short($0.contentHash), date($0.createdAtMs)]
            })
    }

    public static func version(_ version: Wire.DatanetVersion) -> String {
        "datanet \(version.datanet) version \(version.number): \(version.recordCount) records, manifest \(hexString(version.manifestHash))"
    }

    public static func exported(_ end: Wire.ExportEnd, version: Wire.VersionRef, to destination: String) -> String {
        "datanet \(version.datanet) version \(version.number): \(end.records) records, \(end.bytes) bytes to \(destination), SHA-256 \(hexString(end.sha256)) verified"
    }

    public static func job(_ job: Wire.Job) -> String {
        var text = "job \(job.id) \(job.kind.catalogueName) \(job.state.catalogueName)"
        if job.totalSteps > 0 { text += ", step \(job.step)/\(job.totalSteps)" }
        if let adapter = job.adapter { text += ", adapter \(adapter)" }
        if let engine = job.engine { text += ", on \(engine)" }
        if !job.message.isEmpty { text += ": \(job.message)" }
        return text
    }

    /// Whether progress at `step` of `total` is worth a plain line: the first step, every twentieth of the
    /// way, and the last (every step when the total is unknown).
    public static func isMilestone(step: UInt64, of total: UInt64) -> Bool {
        guard total > 0 else { return true }
        let every = max(1, total / 20)
        return step == 1 || step % every == 0 || step == total
    }

    /// One job event as a plain line (logs, pipes).
    public static func jobEvent(_ event: Wire.JobEvent, totalSteps: UInt64) -> String {
        var text = "job \(event.job) #\(event.seq) \(event.kind.catalogueName)"
        if event.kind == .progress || event.kind == .checkpoint {
            text += totalSteps > 0 ? " step \(event.step)/\(totalSteps)" : " step \(event.step)"
        }
        if let loss = event.loss { text += String(format: " loss %.4f", loss) }
        if let checkpoint = event.checkpoint { text += " at \(checkpoint)" }
        if !event.message.isEmpty { text += ": \(event.message)" }
        return text
    }

    public static func adapters(_ adapters: [Wire.Adapter]) -> String {
        guard !adapters.isEmpty else { return "no adapters" }
        return table(
            ["id", "name", "owner", "loaded", "trained on", "created"],
            adapters.map {
                ["\($0.id)", $0.name, "\($0.owner)", $0.loaded ? "yes" : "no", versions($0.versions), date($0.createdAtMs)]
            })
    }

    public static func engines(_ engines: [Wire.EngineEntry]) -> String {
        guard !engines.isEmpty else { return "no engines registered" }
        return table(
            ["id", "name", "address", "owner", "jobs", "kinds", "state", "last heartbeat"],
            engines.map {
                [
                    "\($0.engine)", $0.name, $0.address, "\($0.owner)", "\($0.jobsRunning)/\($0.computeSlots)",
                    $0.jobKinds.map(\.catalogueName).joined(separator: ","), $0.draining ? "draining" : "in dispatch",
                    String(format: "%.1f s ago", Double($0.heartbeatAgeMs) / 1000),
                ]
            })
    }

    public static func engine(_ engine: Wire.EngineEntry) -> String {
        engine.draining
            ? "engine \(engine.name) draining: no new jobs, \(engine.jobsRunning) still running"
            : "engine \(engine.name) in dispatch"
    }

    public static func adapterState(_ state: Wire.AdapterState) -> String {
        state.loaded
            ? "adapter \(state.adapter) loaded (\(String(format: "%.1f", Double(state.residentBytes) / 1_048_576)) MiB resident)"
            : "adapter \(state.adapter) unloaded"
    }

    public static func usage(_ end: Wire.InferEnd) -> String {
        let seconds = Double(end.generationUs) / 1e6
        let rate = seconds > 0 ? String(format: ", %.1f tokens/s", Double(end.completionTokens) / seconds) : ""
        return "\(end.promptTokens) prompt + \(end.completionTokens) completion tokens, stopped by \(end.stopReason.catalogueName)"
            + String(format: " (prompt %.3f s, generation %.3f s", Double(end.promptUs) / 1e6, seconds) + rate + ")"
    }

    /// What to print for one frame of an inference stream, as it arrives: a token's text as is, the rest on lines of their own.
    public static func inferenceFrame(_ frame: Message) -> String {
        switch frame {
        case .token(let token): token.text
        case .inferEnd(let end): "\n\n" + usage(end) + "\n"
        case .attribution(let value): attribution(value) + "\n"
        case .rewardSplit(let split): rewardSplit(split) + "\n"
        default: ""
        }
    }

    public static func attribution(_ attribution: Wire.Attribution) -> String {
        var lines = ["attribution (\(attribution.method.catalogueName))" + (attribution.inference.map { ", inference \($0)" } ?? "")]
        func scored(_ title: String, _ records: [Wire.ScoredRecord]) {
            guard !records.isEmpty else { return }
            lines.append("  \(title)")
            lines.append(
                table(
                    ["record", "contributor", "datanet", "score"],
                    records.map { ["\($0.record)", "\($0.contributor)", "\($0.datanet)", String(format: "%.6g", $0.score)] },
                    indent: "    "))
        }
        scored("top records", attribution.top)
        scored("most negative records", attribution.negative)
        if !attribution.contributors.isEmpty {
            lines.append("  contributors  " + attribution.contributors.map { "\($0.contributor) \(percent($0.share))" }.joined(separator: ", "))
        }
        if !attribution.datanets.isEmpty {
            lines.append("  datanets      " + attribution.datanets.map { "\($0.datanet) \(percent($0.share))" }.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    public static func rewardSplit(_ split: Wire.RewardSplit) -> String {
        var lines = [
            "reward split of inference \(split.inference): fee \(split.fee) = contributors \(split.contributorPool) + owner \(split.owner) + protocol \(split.protocolShare)"
                + (split.forfeited > 0 ? " (\(split.forfeited) forfeited by penalties)" : "")
        ]
        if !split.payouts.isEmpty {
            lines.append(
                table(
                    ["contributor", "share", "gross", "paid", "penalty points"],
                    split.payouts.map { ["\($0.contributor)", percent($0.share), "\($0.gross)", "\($0.paid)", "\($0.penaltyPoints)"] },
                    indent: "  "))
        }
        lines.append("  ledger head \(split.ledgerHead.seq) \(short(split.ledgerHead.hash))")
        return lines.joined(separator: "\n")
    }

    public static func curation(_ report: Wire.CurationReport) -> String {
        var lines = ["\(report.evaluated) training records scored; \(report.flagged.count) flagged" + (report.applied ? " (penalties applied)" : " (dry run: nothing applied)")]
        if !report.flagged.isEmpty {
            lines.append(
                table(
                    ["record", "contributor", "score", "reason"],
                    report.flagged.map { ["\($0.record)", "\($0.contributor)", String(format: "%.6g", $0.score), $0.reason] }, indent: "  "))
        }
        return lines.joined(separator: "\n")
    }

    public static func penalties(_ penalties: [Wire.Penalty]) -> String {
        guard !penalties.isEmpty else { return "no penalties" }
        return table(
            ["record", "contributor", "adapter", "points", "imposed by", "method", "evaluation", "score", "ledger entry"],
            penalties.map {
                [
                    "\($0.record)", "\($0.contributor)", "\($0.adapter)", "\($0.points)", "\($0.imposedBy)", $0.method.catalogueName,
                    "\($0.evaluation.datanet):\($0.evaluation.number)", String(format: "%.6g", $0.score), "\($0.ledgerSeq)",
                ]
            })
    }

    public static func grants(_ grants: Wire.DatanetGrants) -> String {
        guard !grants.grants.isEmpty else { return "datanet \(grants.datanet): no read grants (only its owner and operators read it)" }
        return "datanet \(grants.datanet) is readable by contributors "
            + grants.grants.map { "\($0.grantee)" }.joined(separator: ", ") + " (and its owner and operators)"
    }

    public static func balances(_ balances: [Wire.Balance]) -> String {
        guard !balances.isEmpty else { return "no balances" }
        return table(["account", "balance"], balances.map { [$0.contributor.map { "contributor \($0)" } ?? "protocol", "\($0.amount)"] })
    }

    public static func ledgerEntries(_ entries: [Wire.LedgerEntry]) -> String {
        guard !entries.isEmpty else { return "no entries" }
        return table(
            ["seq", "kind", "account", "amount", "inference", "hash", "memo"],
            entries.map {
                [
                    // A fee payment is a debit: shown with its sign.
                    "\($0.seq)", $0.kind.catalogueName, $0.contributor.map { "contributor \($0)" } ?? "protocol",
                    $0.kind == .feePayment ? "-\($0.amount)" : "\($0.amount)",
                    $0.inference.map(String.init) ?? "", short($0.hash), $0.memo,
                ]
            })
    }

    public static func verification(_ verification: Wire.LedgerVerification) -> String {
        let head = verification.head.map { ", head \($0.seq) \(hexString($0.hash))" } ?? ""
        guard let broken = verification.broken else {
            return "ledger intact: \(verification.checked) entries checked\(head); balances \(verification.balances), "
                + "deposits \(verification.deposits)"
        }
        return "ledger BROKEN at entry \(broken.seq) (\(broken.kind.catalogueName)): \(broken.reason); \(verification.checked) entries checked\(head)"
    }

    public static func deposited(_ deposited: Wire.Deposited, key: String) -> String {
        let entry = deposited.entry
        let account = entry.contributor.map { "contributor \($0)" } ?? "protocol"
        return (deposited.replayed ? "already deposited (key \(key)): " : "deposited: ")
            + "\(entry.amount) to \(account), ledger entry \(entry.seq) \(short(entry.hash)); balance \(deposited.balance)"
    }

    public static func health(_ health: Wire.HealthStatus, address: ServerAddress) -> String {
        "\(address): \(health.state.catalogueName), version \(health.serverVersion), up \(String(format: "%.1f", Double(health.uptimeMs) / 1000)) s"
    }

    public static func stats(_ stats: Wire.StatsReport) -> String {
        table(
            ["", ""],
            [
                ["connections", "\(stats.connections)"], ["requests in flight", "\(stats.requestsInFlight)"],
                ["requests completed", "\(stats.requestsCompleted)"], ["tokens generated", "\(stats.tokensGenerated)"],
                ["adapters loaded", "\(stats.adaptersLoaded)"], ["jobs queued", "\(stats.jobsQueued)"],
                ["jobs running", "\(stats.jobsRunning)"], ["latency p50", "\(stats.latencyP50Us) µs"],
                ["latency p99", "\(stats.latencyP99Us) µs"],
            ], header: false)
    }

    // MARK: - Pieces

    /// `DATANET:VERSION` references, comma-separated.
    public static func versions(_ versions: [Wire.VersionRef]) -> String {
        versions.map { "\($0.datanet):\($0.number)" }.joined(separator: ",")
    }

    public static func percent(_ share: Double) -> String { String(format: "%.1f%%", share * 100) }

    static func short(_ hash: [UInt8]) -> String { String(hexString(hash).prefix(12)) }

    static func date(_ milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// Columns padded to their widest cell, two spaces apart; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]], indent: String = "", header showHeader: Bool = true) -> String {
        let all = showHeader ? [header] + rows : rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            indent
                + row.indices.map { column in
                    column == row.count - 1 ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
                }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
