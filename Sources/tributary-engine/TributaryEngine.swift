import ArgumentParser
import Foundation
import LlamaModel
import TensorCore
import Training

@main
struct TributaryEngine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary-engine",
        abstract: "Tributary's engine: training, attribution and inference for LoRA-adapted models.",
        subcommands: [Doctor.self, Logits.self, Tokenize.self, Train.self, Generate.self, Pretrain.self, Corpus.self, Index.self, Attribute.self, Curate.self, Evaluate.self, Serve.self, Contributors.self])
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Report the BLAS library, its kernel set and threads, the CPU's SIMD features, and measured sgemm speed.")

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "Order of the square sgemm to time.")
    var size = 1024

    func run() throws {
        let report: ComputeDiagnostics
        do {
            report = try ComputeDiagnostics.collect(sgemmSize: size)
        } catch {
            throw CommandFailure(error.description)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        let overridden = report.blasCoreOverridden.map {
            "\n               (overrode OPENBLAS_CORETYPE=\($0) from the environment; TRIBUTARY_BLAS_CORETYPE=\($0) forces it)"
        } ?? ""
        print("""
            BLAS library   \(report.blasLibrary)
            BLAS config    \(report.blasConfig)
            kernel set     \(report.blasCore) (chosen by \(report.blasCoreSource.rawValue))\(report.avx512KernelsActive ? ", AVX-512" : "")\(overridden)
            BLAS threads   \(report.blasThreads) of \(report.availableCores) available cores
            CPU features   \(report.cpuFeatures.joined(separator: " "))
            sgemm n=\(report.sgemmSize)  \(String(format: "%.1f", report.sgemmGflops)) GFLOP/s
            """)
    }
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the logits of a Llama model for a token sequence, one row per input position.")

    @Option(help: "A Hugging Face model folder (config.json, model.safetensors or a sharded index).")
    var model: String

    @Option(help: "A PEFT LoRA adapter folder to apply.")
    var adapter: String?

    @Option(help: "Comma-separated token ids, e.g. 1,2,3.")
    var tokens: String

    @Flag(help: "Print {\"logits\": [[...], ...]} as JSON (the only format for now).")
    var json = false

    func run() throws {
        let ids = try tokenIDs(tokens, option: "--tokens")
        let logits: Tensor
        do {
            let base = try LlamaModel(folder: model)
            let lora = try adapter.map { try LoRAAdapter(folder: $0, model: base.config) }
            logits = try base.logits(ids, adapter: lora)
        } catch let error as ModelLoadError {
            throw CommandFailure(error.description)
        } catch let error as LoRAError {
            throw CommandFailure(error.description)
        } catch let error as ModelInputError {
            throw CommandFailure("--tokens: \(error.description)")
        }
        let width = logits.shape[1]
        let scalars = logits.scalars
        let rows = (0..<logits.shape[0]).map { Array(scalars[$0 * width..<($0 + 1) * width]) }
        print(String(decoding: try JSONEncoder().encode(["logits": rows]), as: UTF8.self))
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids a model folder's tokenizer gives a text, as training and attribution encode it.")

    @Option(help: "A Hugging Face model folder (config.json; tokenizer.json if it has one, else bytes).")
    var model: String

    @Option(help: "The text to encode, every character kept.")
    var text: String?

    @Option(help: "A UTF-8 text file to encode whole, every character kept (instead of --text).")
    var file: String?

    @Flag(help: "Leave out the tokenizer template's tokens (BOS, EOS) that a training record gets around its text.")
    var bare = false

    @Flag(help: "Print {\"tokens\": [...]} as JSON.")
    var json = false

    func validate() throws {
        guard (text == nil) != (file == nil) else { throw ValidationError("give either --text or --file") }
    }

    func run() throws {
        let text: String
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw CommandFailure("\(file): cannot read the file") }
            guard let contents = String(validating: data, as: UTF8.self) else { throw CommandFailure("\(file): not UTF-8 text") }
            text = contents
        } else {
            text = self.text ?? ""
        }
        let tokens: [Int]
        do {
            let config = try LlamaConfig(contentsOf: model + "/config.json")
            tokens = try RecordEncoding(modelFolder: model, vocabularySize: config.vocabularySize).tokens(text, template: !bare)
        } catch let error as ModelLoadError {
            throw CommandFailure(error.description)
        } catch {
            throw CommandFailure("\(model): \(error)")
        }
        // Comma-separated, as `logits --tokens` takes them.
        print(json ? String(decoding: try JSONEncoder().encode(["tokens": tokens]), as: UTF8.self) : tokens.map(String.init).joined(separator: ","))
    }
}

/// A failure at run time (not a usage error): printed as "Error: ..." without the usage text, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `list` ("1,2,3") as token ids; with `vocabularySize`, each must lie in `0..<vocabularySize`.
func tokenIDs(_ list: String, option: String, vocabularySize: Int? = nil) throws -> [Int] {
    try list.split(separator: ",").map { part in
        guard let id = Int(part.trimmingCharacters(in: .whitespaces)),
            vocabularySize.map({ id >= 0 && id < $0 }) ?? true
        else {
            let range = vocabularySize.map { " in 0..<\($0)" } ?? ""
            throw ValidationError("\(option): \"\(part)\" is not a token id\(range)")
        }
        return id
    }
}

/// The model of `model` and the records of `data`, encoded as the model encodes text; at least one record.
func loadModelAndRecords(model: String, data: String) throws -> (LlamaModel, [TrainingRecord]) {
    let base: LlamaModel
    do { base = try LlamaModel(folder: model) } catch { throw CommandFailure(error.description) }
    let records: [TrainingRecord]
    do {
        records = try RecordEncoding(modelFolder: model, vocabularySize: base.config.vocabularySize).records(path: data)
    } catch { throw CommandFailure("\(error)") }
    guard !records.isEmpty else { throw CommandFailure("\(data): no records") }
    return (base, records)
}
