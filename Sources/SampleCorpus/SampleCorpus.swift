import Foundation
import TensorCore

/// The project's own corpus: English documents in several distinct domains, generated from a seed.
/// Document `index` of a domain depends only on the seed, the domain and the index, so any subset is
/// cheap to regenerate and the same on every machine.
public struct SampleCorpus: Sendable, Equatable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    public func document(_ domain: CorpusDomain, index: Int) -> String {
        let domainNumber = UInt64(CorpusDomain.allCases.firstIndex(of: domain)!)
        var random = SeededRandom(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ domainNumber &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(index))
        return domain.document(&random)
    }

    /// `count` documents taking the domains in turn: document i is of `domains[i % domains.count]`.
    public func documents(count: Int, domains: [CorpusDomain] = CorpusDomain.allCases) -> [(domain: CorpusDomain, text: String)] {
        (0..<count).map { i in
            let domain = domains[i % domains.count]
            return (domain, document(domain, index: i / domains.count))
        }
    }

    /// Training records of one domain, ids "DOMAIN-INDEX", for a datanet of `contributor`: each
    /// document's whole lines up to `maxBytes` UTF-8 bytes, so that records fit a model's context.
    public func records(_ domain: CorpusDomain, count: Int, contributor: String, firstIndex: Int = 0, maxBytes: Int = 250) -> [SampleRecord] {
        (firstIndex..<firstIndex + count).map {
            SampleRecord(id: "\(domain.rawValue)-\($0)", contributor: contributor, text: Self.excerpt(document(domain, index: $0), maxBytes: maxBytes))
        }
    }

    /// The leading whole lines of `text` within `maxBytes` bytes (the first line cut when it alone is longer).
    static func excerpt(_ text: String, maxBytes: Int) -> String {
        var kept: [Substring] = [], size = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let added = line.utf8.count + (kept.isEmpty ? 0 : 1)
            if size + added > maxBytes { break }
            kept.append(line)
            size += added
        }
        if kept.isEmpty { return String(decoding: text.utf8.prefix(maxBytes), as: UTF8.self) }
        return kept.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One record in the training-record JSON Lines format (`{"id", "contributor", "text"}`) that
/// `readTrainingRecords` reads.
public struct SampleRecord: Sendable, Equatable, Codable {
    public var id: String
    public var contributor: String
    public var text: String

    public init(id: String, contributor: String, text: String) {
        self.id = id
        self.contributor = contributor
        self.text = text
    }

    /// The records as JSON Lines, one object per line, keys sorted.
    public static func jsonLines(_ records: [SampleRecord]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return records.map { String(decoding: try! encoder.encode($0), as: UTF8.self) + "\n" }.joined()
    }
}

/// Damage, as a careless or malicious contributor submits it.
public enum Damage {
    /// `text`'s space-separated words in a seeded random order (Fisher-Yates): text that follows no domain's
    /// grammar, though every word is in its vocabulary.
    public static func shuffledWords(_ text: String, _ random: inout SeededRandom) -> String {
        var words = text.split(separator: " ").map(String.init)
        for i in stride(from: words.count - 1, to: 0, by: -1) { words.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return words.joined(separator: " ")
    }
}

/// Decides which domain a text reads like, by counting words that only one domain's vocabulary uses.
/// Cheap and deterministic; meant for tests and demos, not as a language model.
public struct DomainClassifier: Sendable {
    /// Each domain's signature words, lowercased.
    public let keywords: [CorpusDomain: Set<String>]

    public init() {
        var owners: [String: Set<CorpusDomain>] = [:]
        for domain in CorpusDomain.allCases {
            for phrase in domain.vocabulary.joined() {
                for word in Self.words(phrase) where word.count >= 3 && !Self.common.contains(word) {
                    owners[word, default: []].insert(domain)
                }
            }
        }
        var keywords: [CorpusDomain: Set<String>] = [:]
        for (word, domains) in owners where domains.count == 1 { keywords[domains.first!, default: []].insert(word) }
        self.keywords = keywords
    }

    /// Each domain's share of the signature words found in `text` (all zero when there are none).
    public func scores(_ text: String) -> [CorpusDomain: Double] {
        var hits = Dictionary(uniqueKeysWithValues: CorpusDomain.allCases.map { ($0, 0) })
        for word in Self.words(text) {
            for domain in CorpusDomain.allCases where keywords[domain]!.contains(word) { hits[domain]! += 1 }
        }
        let total = hits.values.reduce(0, +)
        return hits.mapValues { total == 0 ? 0 : Double($0) / Double(total) }
    }

    /// The domain with the largest share, or nil when no signature word occurs (ties go to the first domain).
    public func classify(_ text: String) -> CorpusDomain? {
        let scores = scores(text)
        guard let best = CorpusDomain.allCases.max(by: { scores[$0]! < scores[$1]! }), scores[best]! > 0 else { return nil }
        return best
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().split(whereSeparator: { !$0.isLetter && $0 != "-" }).map(String.init)
    }

    /// Words too common in English to say anything about a domain.
    static let common: Set<String> = [
        "the", "and", "with", "from", "for", "into", "over", "that", "this", "was", "were", "are", "but", "not", "out",
        "its", "his", "her", "their", "then", "than", "now", "new", "one", "two", "all", "has", "had", "have", "later",
        "first", "good", "low", "high", "very", "more", "just", "after", "soon", "real", "day", "night", "time", "next",
    ]
}
