import Foundation
import LlamaModel
import Tokenizers

/// One training record of a datanet, as the JSON Lines export writes it.
public struct TrainingRecord: Sendable, Equatable {
    public var id: String
    public var contributor: String
    public var sequence: TrainingSequence
    /// The datanet and its version the record was exported from (optional fields `datanet`, `datanet_version`).
    public var datanet: String?
    public var datanetVersion: Int?

    public init(id: String, contributor: String, sequence: TrainingSequence, datanet: String? = nil, datanetVersion: Int? = nil) {
        self.id = id
        self.contributor = contributor
        self.sequence = sequence
        self.datanet = datanet
        self.datanetVersion = datanetVersion
    }
}

/// A training file that cannot be read, naming the file and the 1-based line.
public struct TrainingDataError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int
    public var message: String

    public var description: String { "\(path):\(line): \(message)" }
}

/// Reads JSON Lines training records. Accepted forms, one object per line:
/// `{"id", "contributor", "prompt", "completion"}` (loss on the completion),
/// `{"id", "contributor", "text"}` (loss on every token), or pre-tokenized
/// `{"id", "contributor", "prompt_tokens": [...], "completion_tokens": [...]}`, used verbatim.
/// Optional on every form: `"datanet"` (a string) and `"datanet_version"` (a positive integer).
/// Text is encoded with `encode`; `prefix` and `suffix` (a tokenizer's template, e.g. BOS and EOS) go
/// once around each text record and around prompt + completion, never around pre-tokenized records.
/// Blank lines are skipped; anything else that is wrong is an error naming the line, never skipped.
public func readTrainingRecords(
    path: String, vocabularySize: Int, encode: (String) -> [Int], prefix: [Int] = [], suffix: [Int] = []
) throws(TrainingDataError) -> [TrainingRecord] {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw TrainingDataError(path: path, line: 0, message: "cannot read: \(error.localizedDescription)")
    }
    var records: [TrainingRecord] = []
    var seen: [String: Int] = [:]
    for (index, lineBytes) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
        let line = index + 1
        func fail(_ message: String) -> TrainingDataError { TrainingDataError(path: path, line: line, message: message) }
        if lineBytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(lineBytes)) else {
            throw fail("not a JSON object")
        }
        guard let id = object["id"]?.identifier else { throw fail("missing \"id\"") }
        guard let contributor = object["contributor"]?.identifier else {
            throw fail("record \"\(id)\": missing \"contributor\"")
        }
        if let first = seen[id] { throw fail("duplicate id \"\(id)\" (first on line \(first))") }
        seen[id] = line

        func tokens(_ field: String) throws(TrainingDataError) -> [Int]? {
            guard let raw = object[field] else { return nil }
            guard case .array(let list) = raw else { throw fail("record \"\(id)\": \"\(field)\" is not a list of token ids") }
            var ids: [Int] = []
            for (position, item) in list.enumerated() {
                guard let token = item.integer else {
                    throw fail("record \"\(id)\": \"\(field)\"[\(position)] is not an integer")
                }
                guard token >= 0 && token < vocabularySize else {
                    throw fail("record \"\(id)\": token \(token) at \"\(field)\"[\(position)] is outside the vocabulary 0..<\(vocabularySize)")
                }
                ids.append(token)
            }
            return ids
        }
        let sequence: TrainingSequence
        if let prompt = try tokens("prompt_tokens") {
            guard let completion = try tokens("completion_tokens") else { throw fail("record \"\(id)\": \"prompt_tokens\" without \"completion_tokens\"") }
            sequence = TrainingSequence(prompt: prompt, completion: completion)
        } else if case .string(let prompt)? = object["prompt"], case .string(let completion)? = object["completion"] {
            sequence = TrainingSequence(prompt: prefix + encode(prompt), completion: encode(completion) + suffix)
        } else if case .string(let text)? = object["text"] {
            sequence = TrainingSequence(text: prefix + encode(text) + suffix)
        } else {
            throw fail("record \"\(id)\": needs \"text\", \"prompt\" and \"completion\", or \"prompt_tokens\" and \"completion_tokens\"")
        }
        guard sequence.tokens.count >= 2 else { throw fail("record \"\(id)\": fewer than 2 tokens, nothing to learn") }
        if let bad = sequence.tokens.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw fail("record \"\(id)\": token \(bad) is outside the vocabulary 0..<\(vocabularySize)")
        }
        var record = TrainingRecord(id: id, contributor: contributor, sequence: sequence)
        if let datanet = object["datanet"] {
            guard case .string(let name) = datanet else { throw fail("record \"\(id)\": \"datanet\" is not a string") }
            record.datanet = name
        }
        if let version = object["datanet_version"] {
            guard let number = version.integer, number >= 1 else {
                throw fail("record \"\(id)\": \"datanet_version\" is not a positive integer")
            }
            record.datanetVersion = number
        }
        records.append(record)
    }
    return records
}

/// A JSON value as `JSONDecoder` reads it, which keeps every character of a string: Foundation's
/// `JSONSerialization` on Linux drops a string's leading U+FEFF, so such a record would tokenize differently from
/// Hugging Face's.
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// A whole number, exactly.
    var integer: Int? {
        if case .number(let number) = self { Int(exactly: number) } else { nil }
    }

    /// An id field: a string, or a whole number as its decimal text.
    var identifier: String? {
        switch self {
        case .string(let string): string
        case .number: integer.map(String.init)
        default: nil
        }
    }
}

/// How text becomes tokens for a model folder, the same for training, indexing and attribution: the folder's
/// `tokenizer.json` (byte-level BPE) when it has one, with its post-processor template's tokens once around each
/// record (`prefix` before, `suffix` after); else bytes, with nothing added.
public struct RecordEncoding: Sendable {
    public let vocabularySize: Int
    public let prefix: [Int]
    public let suffix: [Int]
    let encodeText: @Sendable (String) -> [Int]

    /// A model folder whose tokenizer cannot be read, or does not fit the model's vocabulary.
    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(modelFolder: String, vocabularySize: Int) throws {
        self.vocabularySize = vocabularySize
        let tokenizerPath = modelFolder + "/tokenizer.json"
        if FileManager.default.fileExists(atPath: tokenizerPath) {
            let tokenizer = try BPETokenizer(contentsOf: tokenizerPath)
            guard tokenizer.vocabularySize <= vocabularySize else {
                throw LoadError(description: "\(tokenizerPath): the tokenizer has \(tokenizer.vocabularySize) token ids, more than the model's vocab_size \(vocabularySize)")
            }
            (prefix, suffix) = (tokenizer.prefixTokens, tokenizer.suffixTokens)
            encodeText = { tokenizer.encode($0, addSpecialTokens: false) }
        } else {
            let tokenizer = try ByteTokenizer(vocabularySize: vocabularySize)
            (prefix, suffix) = ([], [])
            encodeText = { tokenizer.encode($0) }
        }
    }

    /// The JSON Lines records of `path`, as ``readTrainingRecords(path:vocabularySize:encode:prefix:suffix:)`` reads them.
    public func records(path: String) throws(TrainingDataError) -> [TrainingRecord] {
        try readTrainingRecords(path: path, vocabularySize: vocabularySize, encode: encodeText, prefix: prefix, suffix: suffix)
    }

    /// The token ids of `text`: as a text record gets them (with the template's tokens around it), or bare.
    public func tokens(_ text: String, template: Bool) -> [Int] {
        template ? prefix + encodeText(text) + suffix : encodeText(text)
    }

    /// A prompt and its completion as a training record encodes them: the loss is on the completion.
    public func sequence(prompt: String, completion: String) -> TrainingSequence {
        TrainingSequence(prompt: prefix + encodeText(prompt), completion: encodeText(completion) + suffix)
    }
}
