import Foundation
import Training

/// Training progress: a live bar on a terminal, plain lines elsewhere, JSON lines with --json.
final class ProgressDisplay {
    let total: Int
    /// Steps already done when this display started (a resumed run).
    let firstStep: Int
    let json: Bool
    let isTerminal = isatty(STDERR_FILENO) == 1
    let start = Date()
    var tokens = 0
    var lastLoss: Float = 0

    init(total: Int, firstStep: Int = 0, json: Bool) {
        self.total = total
        self.firstStep = firstStep
        self.json = json
    }

    func show(_ report: StepReport) {
        tokens += report.tokens
        lastLoss = report.loss
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(tokens) / max(elapsed, 1e-9)
        let eta = elapsed / Double(max(report.step - firstStep, 1)) * Double(total - report.step)
        if json {
            print(#"{"step":\#(report.step),"loss":\#(report.loss),"learning_rate":\#(report.learningRate),"grad_norm":\#(report.gradientNorm),"tokens_per_second":\#(Int(rate)),"elapsed_seconds":\#(elapsed)}"#)
        } else if isTerminal {
            let width = 30, filled = width * report.step / total
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data(String(format: "\r%@ %d/%d  loss %.4f  %.0f tok/s  ETA %.0fs ", bar, report.step, total, report.loss, rate, eta).utf8))
        } else {
            print(String(format: "step %d/%d loss %.4f lr %.2e grad_norm %.3f tokens/s %.0f", report.step, total, report.loss, report.learningRate, report.gradientNorm, rate))
        }
        // Lines reach a log file or pipe as they happen, not when the buffer fills.
        fflush(nil)
    }

    /// The summary; `kind` names what was written ("adapter", "model"), the JSON key included.
    func finish(output: String, kind: String = "adapter") {
        if isTerminal && !json { FileHandle.standardError.write(Data("\n".utf8)) }
        let elapsed = Date().timeIntervalSince(start)
        if json {
            print(#"{"\#(kind)":"\#(output)","steps":\#(total),"final_loss":\#(lastLoss),"tokens":\#(tokens),"elapsed_seconds":\#(elapsed)}"#)
        } else {
            print("\(kind) written to \(output) (\(total) steps, final loss \(String(format: "%.4f", lastLoss)), \(String(format: "%.0f", elapsed)) s)")
        }
    }
}
