import Foundation
import WireProtocol

/// A JSON Lines file of records to contribute, in our training-record forms: `{"text": ...}` or
/// `{"prompt": ..., "completion": ...}` per line (other fields, such as `id`, are ignored). Blank lines are
/// skipped; a line that is not a record is kept as invalid, so that it is reported with the others.
public struct ContributionFile: Sendable {
    public struct Line: Sendable {
        /// 1-based.
        public var number: Int
        public var content: Result<Wire.RecordContent, Invalid>
    }

    public struct Invalid: Error, Sendable, Equatable {
        public var reason: String
    }

    public let path: String
    public let lines: [Line]

    public init(path: String) throws(ClientFailure) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ClientFailure(.input, "cannot read \(path): \(error.localizedDescription)")
        }
        self.init(path: path, data: data)
    }

    public init(path: String, data: Data) {
        self.path = path
        var lines: [Line] = []
        for (index, bytes) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            lines.append(Line(number: index + 1, content: Self.content(of: Data(bytes))))
        }
        self.lines = lines
    }

    /// Where line `number` is, as `FILE:LINE`.
    public func location(_ number: Int) -> String { "\(path):\(number)" }

    static func content(of line: Data) -> Result<Wire.RecordContent, Invalid> {
        do throws(Invalid) { return .success(try record(line)) } catch { return .failure(error) }
    }

    static func record(_ line: Data) throws(Invalid) -> Wire.RecordContent {
        guard let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else {
            throw Invalid(reason: "not a JSON object")
        }
        func text(_ field: String) throws(Invalid) -> [UInt8]? {
            guard let value = object[field] else { return nil }
            guard let string = value as? String else { throw Invalid(reason: "\"\(field)\" is not a string") }
            return Array(string.utf8)
        }
        switch (try text("text"), try text("prompt"), try text("completion")) {
        case (let body?, nil, nil): return .text(Wire.TextRecord(text: body))
        case (nil, let prompt?, let completion?): return .pair(Wire.PairRecord(prompt: prompt, completion: completion))
        case (nil, _?, nil), (nil, nil, _?): throw Invalid(reason: "a pair record needs both \"prompt\" and \"completion\"")
        case (nil, nil, nil): throw Invalid(reason: "no \"text\", or \"prompt\" and \"completion\"")
        default: throw Invalid(reason: "give either \"text\" or \"prompt\" and \"completion\", not both")
        }
    }
}

/// What became of one line of a contribution file.
public struct ContributionOutcome: Sendable {
    /// 1-based.
    public var line: Int
    public var result: Result<Wire.Record, ClientFailure>
}

extension ClientSession {
    /// Contributes every record of `file` to `datanet`, one `Contribute` each, in file order (one at a time:
    /// the server may run concurrent requests in any order, and record ids fix a version's order), handing
    /// each line's outcome to `onOutcome`. A line that is not a record, or that the server refuses (a
    /// duplicate, too large, ...), is an outcome; anything else (a lost connection, a refused token) stops
    /// the run and is thrown. With `stopOnError`, nothing is sent after the first line that fails.
    public func contribute(
        _ file: ContributionFile, to datanet: Int64, stopOnError: Bool = false, onOutcome: (ContributionOutcome) -> Void
    ) async throws(ClientFailure) -> [ContributionOutcome] {
        var outcomes: [ContributionOutcome] = []
        for line in file.lines {
            let result: Result<Wire.Record, ClientFailure>
            switch line.content {
            case .failure(let invalid):
                result = .failure(ClientFailure(.input, invalid.reason))
            case .success(let content):
                do throws(ClientFailure) { result = .success(try await contribute(content, to: datanet)) } catch {
                    guard error.kind == .refused else { throw error }
                    result = .failure(error)
                }
            }
            let outcome = ContributionOutcome(line: line.number, result: result)
            outcomes.append(outcome)
            onOutcome(outcome)
            if stopOnError, case .failure = result { break }
        }
        return outcomes
    }
}
