import ArgumentParser
import Attribution
import Foundation
import LlamaModel
import Tokenizers
import Training

/// Options shared by `attribute` and `curate`: the index, and where its model and adapter are.
struct IndexOptions: ParsableArguments {
    @Option(help: "A gradient index folder (built by `index`).") var index: String
    @Option(help: "The model folder, if not the one the index records.") var model: String?
    @Option(help: "The adapter folder, if not the one the index records (checked by SHA-256).") var adapter: String?
    @Option(help: "datainf, tracin, gradcos, graddot or fisher.") var method: ScorerKind = .dataInf
    @Option(help: "MiB that scoring may allocate (default: half the physical memory); a scorer over it is refused before it starts.")
    var memoryLimitMib: Int?

    func validate() throws {
        if let memoryLimitMib, memoryLimitMib < 1 { throw ValidationError("--memory-limit-mib must be at least 1, got \(memoryLimitMib)") }
    }

    /// The index opened for scoring, and how the model encodes text (as `train` and `index` did).
    func open() throws -> (Attributor, RecordEncoding) {
        do {
            let opened = try GradientIndex(folder: index)
            guard let modelFolder = model ?? opened.manifest.modelFolder else {
                throw CommandFailure("\(index): the index does not record its model folder; pass --model")
            }
            guard let adapterFolder = adapter ?? opened.manifest.adapterFolder else {
                throw CommandFailure("\(index): the index does not record its adapter folder; pass --adapter")
            }
            let base = try LlamaModel(folder: modelFolder)
            let attributor = try Attributor(
                index: opened, model: base, adapterFolder: adapterFolder,
                memoryLimit: memoryLimitMib.map { MemoryBudget(mebibytes: $0) } ?? .physicalDefault)
            return (attributor, try RecordEncoding(modelFolder: modelFolder, vocabularySize: base.config.vocabularySize))
        } catch let error as CommandFailure {
            throw error
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}

struct Attribute: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attribute an output to the training records of a gradient index, with contributor and datanet shares.",
        discussion: """
            The output is a prompt and its completion; its loss is the mean cross-entropy over the completion's \
            tokens, as in training. Scores > 0 mean the record made the completion more likely. Shares split the \
            positive influence; negative influence is listed separately. Formulas: docs/ATTRIBUTION.md.
            """)

    @OptionGroup var source: IndexOptions
    @Option(help: "The prompt, as text.") var prompt: String?
    @Option(help: "The completion, as text.") var completion: String?
    @Option(help: "The prompt as comma-separated token ids (used verbatim).") var promptTokens: String?
    @Option(help: "The completion as comma-separated token ids (used verbatim).") var completionTokens: String?
    @Option(help: "How many top (and most opposing) records to list.") var top = 10
    @Flag(help: "Print JSON with keys records, contributors, datanets (and opposing_records).") var json = false

    func validate() throws {
        let text = prompt != nil || completion != nil, tokens = promptTokens != nil || completionTokens != nil
        guard text != tokens else {
            throw ValidationError("give either --prompt and --completion, or --prompt-tokens and --completion-tokens")
        }
        if text, prompt == nil || completion == nil { throw ValidationError("--prompt and --completion go together") }
        if tokens, promptTokens == nil || completionTokens == nil {
            throw ValidationError("--prompt-tokens and --completion-tokens go together")
        }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let (attributor, encoding) = try source.open()
        let output: TrainingSequence
        if let promptTokens, let completionTokens {
            let vocabulary = encoding.vocabularySize
            output = TrainingSequence(
                prompt: try tokenIDs(promptTokens, option: "--prompt-tokens", vocabularySize: vocabulary),
                completion: try tokenIDs(completionTokens, option: "--completion-tokens", vocabularySize: vocabulary))
        } else {
            output = encoding.sequence(prompt: prompt!, completion: completion!)
        }
        let result: OutputAttribution
        do {
            result = try attributor.attribute([output], method: source.method, topK: top)[0]
        } catch {
            throw CommandFailure("\(error)")
        }
        if json {
            try printJSON(AttributionReport(method: source.method, result))
        } else {
            printAttribution(result, method: source.method)
        }
    }
}

struct Curate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rank a gradient index's records by self-influence and by influence on a validation set; flag harmful records and contributors.",
        discussion: """
            A record's net influence is its mean (or summed) score over the validation records: below the \
            threshold (default 0) it raised the validation loss on balance, and is flagged.
            """)

    @OptionGroup var source: IndexOptions
    @Option(help: "Held-out validation records (JSON Lines, as train reads them).") var validation: String
    @Option(help: "mean or sum over validation records.") var aggregation: ValidationAggregation = .mean
    @Option(help: "Net influence below this flags a record.") var threshold: Float = 0
    @Option(help: "How many records to list per ranking.") var top = 10
    @Flag(help: "Print the whole report as JSON.") var json = false

    func run() throws {
        let (attributor, encoding) = try source.open()
        let report: CurationReport
        do {
            let records = try encoding.records(path: validation)
            guard !records.isEmpty else { throw CommandFailure("\(validation): no records") }
            report = try attributor.curate(
                validation: records.map(\.sequence), method: source.method, aggregation: aggregation,
                harmfulThreshold: threshold)
        } catch let error as CommandFailure {
            throw error
        } catch {
            throw CommandFailure("\(error)")
        }
        if json {
            try printJSON(report)
        } else {
            printCuration(report, top: top)
        }
    }
}

extension ScorerKind: ExpressibleByArgument {
    /// Accepts the scorer names with or without their hyphen (`gradcos`, `grad-cos`).
    public init?(argument: String) {
        let key = argument.lowercased().replacingOccurrences(of: "-", with: "")
        guard let kind = ScorerKind.allCases.first(where: { $0.rawValue.replacingOccurrences(of: "-", with: "") == key })
        else { return nil }
        self = kind
    }
}

extension ValidationAggregation: ExpressibleByArgument {}

/// The JSON of `attribute`: one flat object per record.
struct AttributionReport: Encodable {
    struct Record: Encodable {
        var id, contributor, datanet: String
        var datanet_version: Int
        var score, share: Double
        init(_ entry: AttributedRecord) {
            (id, contributor, datanet) = (entry.record.id, entry.record.contributor, entry.record.datanet)
            (datanet_version, score, share) = (entry.record.datanetVersion, entry.score, entry.share)
        }
    }
    var method: String
    var records, opposing_records: [Record]
    var contributors, datanets: [GroupShare]
    var positive_total, negative_total: Double

    init(method: ScorerKind, _ result: OutputAttribution) {
        self.method = method.rawValue
        records = result.records.map(Record.init)
        opposing_records = result.opposingRecords.map(Record.init)
        (contributors, datanets) = (result.contributors, result.datanets)
        (positive_total, negative_total) = (result.positiveTotal, result.negativeTotal)
    }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func printAttribution(_ result: OutputAttribution, method: ScorerKind) {
    print("method \(method.rawValue): positive influence \(result.positiveTotal), negative \(result.negativeTotal)")
    print("top records:")
    for entry in result.records {
        print(String(format: "  %@  %@  %@ v%d  score %.4g  share %.1f%%", entry.record.id, entry.record.contributor,
                     entry.record.datanet, entry.record.datanetVersion, entry.score, entry.share * 100))
    }
    print("contributors:")
    for group in result.contributors {
        print(String(format: "  %@  share %.1f%%  (negative %.4g, %d records)", group.name, group.share * 100,
                     group.negativeInfluence, group.records))
    }
    print("datanets:")
    for group in result.datanets {
        print(String(format: "  %@ v%d  share %.1f%%", group.name, group.version ?? 0, group.share * 100))
    }
    if !result.opposingRecords.isEmpty {
        print("opposing records (made the output less likely):")
        for entry in result.opposingRecords {
            print(String(format: "  %@  %@  score %.4g", entry.record.id, entry.record.contributor, entry.score))
        }
    }
}

func printCuration(_ report: CurationReport, top: Int) {
    print("method \(report.scorer.rawValue), \(report.aggregation.rawValue) over validation, threshold \(report.harmfulThreshold)")
    print("harmful contributors: \(report.harmfulContributors.isEmpty ? "none" : "")")
    for contributor in report.harmfulContributors {
        print(String(format: "  %@  net %.4g  (%d of %d records harmful)", contributor.contributor,
                     contributor.netInfluence, contributor.harmfulRecords, contributor.records))
    }
    print("most harmful records (\(report.harmfulRecords.count) flagged):")
    for entry in report.harmfulRecords.prefix(top) {
        print(String(format: "  %@  %@  net %.4g", entry.record.id, entry.record.contributor, entry.score))
    }
    if let selfInfluence = report.selfInfluence {
        print("highest self-influence:")
        for entry in selfInfluence.prefix(top) {
            print(String(format: "  %@  %@  %.4g", entry.record.id, entry.record.contributor, entry.score))
        }
    }
}
