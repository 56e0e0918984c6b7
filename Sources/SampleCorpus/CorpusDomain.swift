import TensorCore

/// The domains of the sample corpus: each has its own vocabulary, templates and sentence shapes, so
/// that a model learns distinct styles and an adapter trained on one domain visibly writes like it.
public enum CorpusDomain: String, CaseIterable, Sendable, Codable, Comparable {
    case recipes, forecasts, astronomy, football

    public static func < (lhs: CorpusDomain, rhs: CorpusDomain) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// Generates one document of this domain from `random`.
    public func document(_ random: inout SeededRandom) -> String {
        var writer = DocumentWriter(random: random)
        let text: String
        switch self {
        case .recipes: text = writer.recipe()
        case .forecasts: text = writer.forecast()
        case .astronomy: text = writer.observingLog()
        case .football: text = writer.matchReport()
        }
        random = writer.random
        return text
    }

    /// The word lists the domain's documents draw on; the classifier keeps the words no other domain uses.
    var vocabulary: [[String]] {
        switch self {
        case .recipes: Recipes.vocabulary
        case .forecasts: Forecasts.vocabulary
        case .astronomy: Astronomy.vocabulary
        case .football: Football.vocabulary
        }
    }
}

/// Picks words and numbers from a seeded stream. Uses only `next()`, so the text is the same on
/// every platform and Swift version for a seed.
struct DocumentWriter {
    var random: SeededRandom

    mutating func number(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(random.next() % UInt64(range.count))
    }

    mutating func pick<T>(_ items: [T]) -> T { items[number(0...items.count - 1)] }

    /// `count` distinct items in a random order.
    mutating func pick<T>(_ count: Int, of items: [T]) -> [T] {
        var pool = items, chosen: [T] = []
        for _ in 0..<min(count, pool.count) { chosen.append(pool.remove(at: number(0...pool.count - 1))) }
        return chosen
    }

    mutating func chance(_ probability: Double) -> Bool { Double(random.next() >> 11) * 0x1p-53 < probability }

    /// "a, b and c".
    func list(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " and " + items.last!
    }

    func capitalized(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }
}
