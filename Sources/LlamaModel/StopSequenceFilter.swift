/// Streams generated text while watching for stop sequences: text that might be the start of one is held back
/// until the next tokens tell, and the output ends just before the first one that completes (the OpenAI API's
/// and vLLM's semantics: the stop sequence is not part of the output).
struct StopSequenceFilter {
    private let sequences: [[UInt8]]
    /// Text not yet released: at most a possible start of a stop sequence, between calls.
    private var pending: [UInt8] = []

    init(_ sequences: [String]) {
        self.sequences = sequences.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// Takes the text of one token; returns the text that can be released now, and whether a stop sequence
    /// completed (then nothing after it is released, ever).
    mutating func append(_ text: String) -> (released: String, stopped: Bool) {
        guard !sequences.isEmpty else { return (text, false) }
        pending += text.utf8
        // Every possible start lies in `pending`: whatever was released could not begin a stop sequence.
        if let cut = sequences.compactMap({ firstOccurrence(of: $0) }).min() {
            defer { pending = [] }
            return (String(decoding: pending[..<cut], as: UTF8.self), true)
        }
        let held = longestSuffixStartingASequence()
        // Both cuts fall on character boundaries: a stop sequence starts with a whole character.
        let released = String(decoding: pending[..<(pending.count - held)], as: UTF8.self)
        pending.removeFirst(pending.count - held)
        return (released, false)
    }

    /// The held-back text, once generation has ended without a stop sequence.
    mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    private func firstOccurrence(of sequence: [UInt8]) -> Int? {
        guard pending.count >= sequence.count else { return nil }
        return (0...(pending.count - sequence.count)).first { start in
            pending[start..<(start + sequence.count)].elementsEqual(sequence)
        }
    }

    /// The length of the longest suffix of `pending` that is a proper prefix of some stop sequence.
    private func longestSuffixStartingASequence() -> Int {
        let longest = min(pending.count, (sequences.map(\.count).max() ?? 1) - 1)
        guard longest > 0 else { return 0 }
        for length in stride(from: longest, through: 1, by: -1) {
            let suffix = pending[(pending.count - length)...]
            if sequences.contains(where: { $0.count > length && $0.starts(with: suffix) }) { return length }
        }
        return 0
    }
}
