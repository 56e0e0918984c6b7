import Foundation

/// A live progress bar on standard error when it is a terminal; silent otherwise (callers print plain
/// lines then), so that logs and pipes never receive carriage returns.
public final class ProgressBar {
    /// 0 while unknown.
    public var total: Int
    public let isTerminal: Bool
    private var shown = false

    public init(total: Int, isTerminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.total = total
        self.isTerminal = isTerminal
    }

    public func update(done: Int, detail: String = "") {
        guard isTerminal else { return }
        shown = true
        FileHandle.standardError.write(Data(("\r" + Self.line(done: done, total: total, detail: detail) + "\u{1B}[K").utf8))
    }

    /// Ends the bar's line, so that what follows starts on a fresh one.
    public func finish() {
        if shown { FileHandle.standardError.write(Data("\n".utf8)) }
        shown = false
    }

    /// `██████····· 6/11  detail`; a total of 0 (unknown) shows the count alone.
    public static func line(done: Int, total: Int, detail: String, width: Int = 30) -> String {
        let count = total > 0 ? "\(done)/\(total)" : "\(done)"
        let filled = total > 0 ? width * min(max(done, 0), total) / total : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        return detail.isEmpty ? "\(bar) \(count)" : "\(bar) \(count)  \(detail)"
    }
}
