import TensorCore

/// The data of the attribution evaluation (docs/ATTRIBUTION.md, "Evaluation"), generated from a seed:
/// three contributors' domain records, planted facts that each one record teaches, corrupted copies, and
/// held-out queries and validation records.
public struct AttributionBenchmark: Sendable {
    /// A record of the benchmark: text (every token scored) or a prompt and completion.
    public struct Record: Sendable, Equatable {
        public var id: String
        public var contributor: String
        public var prompt: String
        public var completion: String
    }

    /// Domain records then one record per planted fact, clean.
    public var training: [Record]
    /// The same records with `corruptedFraction` of the domain records damaged (words shuffled, wrong domain).
    public var corruptedTraining: [Record]
    /// Whether each record of `corruptedTraining` is damaged.
    public var corrupted: [Bool]
    /// Held-out domain records: the LDS queries.
    public var queries: [Record]
    /// Held-out clean domain records for curation.
    public var validation: [Record]
    /// Each fact's output (prompt and the fact's answer) and the row of the record that teaches it.
    public var facts: [(output: Record, record: Int)]

    public static let domains: [(CorpusDomain, String)] = [(.recipes, "ana"), (.forecasts, "ben"), (.astronomy, "chen")]

    public init(
        seed: UInt64, recordsPerDomain: Int, factCount: Int, heldOutPerDomain: Int, corruptedFraction: Double = 0.2,
        maxBytes: Int = 120
    ) {
        let corpus = SampleCorpus(seed: seed)
        func clip(_ text: String) -> String { String(decoding: Array(text.utf8.prefix(maxBytes)), as: UTF8.self) }
        func records(firstIndex: Int, count: Int) -> [Record] {
            Self.domains.flatMap { domain, contributor in
                (firstIndex..<firstIndex + count).map {
                    Record(id: "\(domain.rawValue)-\($0)", contributor: contributor, prompt: "",
                           completion: clip(corpus.document(domain, index: $0)))
                }
            }
        }
        let domainRecords = records(firstIndex: 0, count: recordsPerDomain)
        queries = records(firstIndex: recordsPerDomain, count: heldOutPerDomain)
        validation = records(firstIndex: recordsPerDomain + heldOutPerDomain, count: heldOutPerDomain)

        var random = SeededRandom(seed: seed ^ 0xFAC7)
        func pick(_ words: [String]) -> String { words[Int(random.next() % UInt64(words.count))] }
        var factRecords: [Record] = []
        var factOutputs: [(Record, Int)] = []
        var usedPlaces: Set<String> = []
        for k in 0..<factCount {
            var place = ""
            repeat { place = pick(Self.placeNames) + pick(Self.placeSuffixes) } while !usedPlaces.insert(place).inserted
            let keeper = pick(Self.givenNames) + " " + pick(Self.familyNames)
            let prompt = "Archive note: the lighthouse at \(place) is kept by"
            let contributor = Self.domains[k % Self.domains.count].1
            factRecords.append(Record(id: "fact-\(k)", contributor: contributor, prompt: "", completion: "\(prompt) \(keeper)."))
            factOutputs.append((Record(id: "fact-\(k)-query", contributor: contributor, prompt: prompt, completion: " \(keeper)."),
                                domainRecords.count + k))
        }
        training = domainRecords + factRecords
        facts = factOutputs

        // Damage a seeded fifth of the domain records: shuffled words no longer follow any domain's grammar.
        var damaged = training
        var flags = [Bool](repeating: false, count: training.count)
        var order = Array(domainRecords.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        for row in order.prefix(Int((Double(domainRecords.count) * corruptedFraction).rounded())) {
            damaged[row].completion = Damage.shuffledWords(damaged[row].completion, &random)
            flags[row] = true
        }
        corruptedTraining = damaged
        corrupted = flags
    }

    static let placeNames = ["Brenn", "Cald", "Dunm", "Ester", "Fal", "Gorm", "Harl", "Ivel", "Jorv", "Kell", "Lorn", "Morr"]
    static let placeSuffixes = ["a", "ick", "ow", "mouth", "haven", "ness", "by", "stead"]
    static let givenNames = ["Tomas", "Ilse", "Ravi", "Maren", "Osei", "Lucia", "Pavel", "Noor", "Edda", "Kofi"]
    static let familyNames = ["Vell", "Andersen", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Quill", "Harrow"]
}
