import Foundation

/// How many bytes scoring may allocate beyond the memory-mapped index rows. Checked before any
/// large allocation, so that an index too wide for a scorer is refused with an error instead of
/// failing to allocate (issue 19: DataInf on an exact 135M-model index asked for ~16 GB).
public struct MemoryBudget: Sendable, Equatable, CustomStringConvertible {
    public var bytes: Int

    public init(bytes: Int) { self.bytes = max(bytes, 0) }

    /// `--memory-limit-mib`.
    public init(mebibytes: Int) { self.init(bytes: mebibytes.multipliedReportingOverflow(by: 1 << 20).overflow ? .max : mebibytes << 20) }

    /// Half the machine's physical memory, as an engine job's default budget (`JobLimits.defaultBudget`):
    /// room is left for the model, the index pages and everything else the process holds.
    public static var physicalDefault: MemoryBudget {
        MemoryBudget(bytes: Int(clamping: ProcessInfo.processInfo.physicalMemory / 2))
    }

    public var description: String { MemoryBudget.format(Double(bytes)) }

    static func format(_ bytes: Double) -> String {
        bytes >= Double(1 << 30) ? String(format: "%.1f GiB", bytes / Double(1 << 30)) : String(format: "%.1f MiB", bytes / Double(1 << 20))
    }
}

/// What a scorer allocates, estimated from the shapes alone (in Double: hostile shapes cannot overflow).
public struct ScorerMemoryEstimate: Sendable, Equatable {
    /// D_l x D_l preconditioners kept for scoring (DataInf, Fisher), over all checkpoints.
    public var preconditioners: Double
    /// The largest scratch while one preconditioner is built (Fisher: the matrix, its Cholesky factor,
    /// the identity and the solution; DataInf: a chunk of weighted rows).
    public var scratch: Double
    /// Per-record, per-block squared norms, over all checkpoints.
    public var norms: Double

    public var bytes: Double { preconditioners + scratch + norms }

    public init(kind: ScorerKind, blockWidths: [Int], recordCount: Int, checkpointCount: Int) {
        let scalar = Double(MemoryLayout<Float>.size)
        let checkpoints = Double(checkpointCount), n = Double(recordCount)
        norms = checkpoints * Double(blockWidths.count) * n * scalar
        let widest = Double(blockWidths.max() ?? 0)
        switch kind {
        case .dataInf, .fisher:
            preconditioners = checkpoints * blockWidths.reduce(0) { $0 + Double($1) * Double($1) } * scalar
            scratch = kind == .fisher
                ? 4 * widest * widest * scalar
                : Double(min(recordCount, PreparedCheckpoint.chunkRows)) * widest * scalar
        case .gradDot, .tracIn, .gradCos:
            preconditioners = 0
            scratch = 0
        }
    }

    /// A message naming what to change when the estimate is over `budget`, or nil when it fits.
    func refusal(kind: ScorerKind, blockWidths: [Int], checkpointCount: Int, budget: MemoryBudget) -> String? {
        guard bytes > Double(budget.bytes) else { return nil }
        let widest = blockWidths.max() ?? 0
        var message = "\(kind.rawValue) needs about \(MemoryBudget.format(bytes)) over \(blockWidths.count) gradient blocks "
            + "(up to \(widest) columns each, \(checkpointCount) checkpoint\(checkpointCount == 1 ? "" : "s"))"
        if preconditioners > 0 {
            message += ": it keeps a D x D matrix per LoRA matrix (\(MemoryBudget.format(preconditioners)))"
        }
        message += ", over the memory limit of \(budget) (--memory-limit-mib)."
        if preconditioners > 0 {
            // The largest power of two k whose k x k matrices (and the rest) fit; LoGra's factored projection keeps the
            // index at k columns per LoRA matrix without ever forming the full gradient.
            let blocks = Double(blockWidths.count), checkpoints = Double(checkpointCount), scalar = Double(MemoryLayout<Float>.size)
            let fitting = (1...12).map { 1 << $0 }.filter { k in
                let kk = Double(k) * Double(k) * scalar
                return checkpoints * blocks * kk + (kind == .fisher ? 4 * kk : 0) + norms <= Double(budget.bytes)
            }.last
            if let k = fitting.map({ min($0, 1024) }) {
                message += " Build the index with a projection, e.g. `tributary-engine index --projection factored --dim \(k)` "
                    + "(\(k) columns per LoRA matrix), or score this index with grad-dot, tracin or grad-cos, which keep no matrix."
            } else {
                message += " Score this index with grad-dot, tracin or grad-cos, which keep no matrix, or raise the limit."
            }
        } else {
            message += " Raise the limit."
        }
        return message
    }
}
