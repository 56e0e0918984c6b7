import Dispatch
import Foundation

/// SIGTERM and SIGINT call `handler` (on a dispatch queue) instead of ending the process, so a server can
/// drain. Keep the value alive while serving; ``cancel()`` stops listening.
public struct TerminationSignals {
    private let sources: [any DispatchSourceSignal]

    public init(handler: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    public func cancel() { sources.forEach { $0.cancel() } }
}

/// Tells a parent process where a server listens: one line on standard output, `{"host","port"}` with `json`,
/// written at once (not line-buffered), since the parent waits for it to learn a port picked by the system.
public func announceListening(host: String, port: Int, json: Bool) {
    let line = json ? "{\"host\":\"\(host)\",\"port\":\(port)}" : "listening on \(host):\(port)"
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
