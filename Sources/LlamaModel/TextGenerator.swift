import Foundation
import Tokenizers

/// What text generation needs of a tokenizer: the ids of a prompt, and the bytes each generated
/// token stands for in the output (so that a character split across tokens can be held back).
public protocol GenerationTokenizer: Sendable {
    /// The ids of `text` as a prompt, with whatever special tokens the tokenizer itself adds.
    func promptTokens(_ text: String) -> [Int]
    /// The UTF-8 bytes token `id` adds to the output text: none for special tokens.
    func textBytes(ofToken id: Int) -> [UInt8]
    /// The ids of `text` with no special token added around it, as transformers' `apply_chat_template`
    /// tokenizes a rendered chat template (which writes any BOS itself).
    func bareTokens(_ text: String) -> [Int]
}

extension GenerationTokenizer {
    /// A tokenizer that adds no special token itself: its prompt ids.
    public func bareTokens(_ text: String) -> [Int] { promptTokens(text) }
}

extension ByteTokenizer: GenerationTokenizer {
    /// The prompt's bytes; the byte tokenizer adds no special token itself.
    public func promptTokens(_ text: String) -> [Int] { encode(text) }
    public func textBytes(ofToken id: Int) -> [UInt8] { id >= 0 && id < 256 ? [UInt8(id)] : [] }
}

extension BPETokenizer: GenerationTokenizer {
    /// The prompt's ids with the post-processor's template (Llama 3's `<|begin_of_text|>`), as
    /// transformers' tokenizer call adds them by default.
    public func promptTokens(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }
    public func textBytes(ofToken id: Int) -> [UInt8] { bytes(ofToken: id, skipSpecialTokens: true) }
    public func bareTokens(_ text: String) -> [Int] { encode(text, addSpecialTokens: false) }
}

/// A piece of generated text, streamed as soon as its token is chosen.
public struct StreamedPiece: Sendable, Equatable {
    /// The token; nil only for a last piece that flushes, when generation ends, text held back: an
    /// unfinished UTF-8 sequence (as U+FFFD), or text that might have begun a stop sequence.
    public var token: Int?
    /// The text the token releases: empty for special tokens, for tokens that start a character the
    /// next token finishes (that one carries the whole character), and for text held back because it
    /// might begin a stop sequence (released with a later token unless a stop sequence completes).
    public var text: String

    public init(token: Int?, text: String) {
        self.token = token
        self.text = text
    }
}

/// Generated text with its tokens and how generation went.
public struct GenerationResult: Sendable, Equatable {
    /// The generated text: the streamed pieces joined (up to, not including, a stop sequence).
    public var text: String
    /// The generated ids, without the prompt and the stop token.
    public var tokens: [Int]
    public var stopReason: StopReason
    public var stopToken: Int?
    public var promptTokenCount: Int
    public var timings: GenerationTimings
    /// Generated tokens per second after the prompt's forward pass.
    public var tokensPerSecond: Double
}

/// A model with its tokenizer: text in, streamed text out.
public struct TextGenerator: Sendable {
    public let model: LlamaModel
    public let tokenizer: any GenerationTokenizer
    /// Ids put before every prompt's own (the byte tokenizer's beginning-of-sequence token).
    public let promptPrefix: [Int]
    /// The stop tokens when the options name none.
    public let defaultStopTokens: Set<Int>

    public init(model: LlamaModel, tokenizer: any GenerationTokenizer, promptPrefix: [Int] = [], stopTokens: Set<Int>? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.promptPrefix = promptPrefix
        defaultStopTokens = stopTokens ?? Set(model.config.eosTokenIDs)
    }

    /// Loads a Hugging Face model folder and picks its tokenizer:
    /// - with `tokenizer.json`: that byte-level BPE tokenizer, whose post-processor adds any
    ///   beginning-of-text token (as transformers' tokenizer does); nothing else is prepended;
    /// - without: the byte tokenizer (ids 0...255 are bytes; the config's bos/eos ids are the
    ///   specials "<bos>"/"<eos>"), and the config's `bos_token_id`, when it has one, before
    ///   every prompt.
    /// The stop tokens are `eos_token_id` of `generation_config.json` when it has one (as
    /// transformers' `generate` uses it), else of `config.json`.
    public init(folder: String) throws(ModelLoadError) {
        let model = try LlamaModel(folder: folder)
        let config = model.config
        let tokenizerPath = folder + "/tokenizer.json"
        let tokenizer: any GenerationTokenizer
        var prefix: [Int] = []
        if FileManager.default.fileExists(atPath: tokenizerPath) {
            let bpe: BPETokenizer
            do {
                bpe = try BPETokenizer(contentsOf: tokenizerPath)
            } catch {
                throw ModelLoadError(path: tokenizerPath, error.field.isEmpty ? error.message : "field \"\(error.field)\": \(error.message)")
            }
            guard bpe.vocabularySize <= config.vocabularySize else {
                throw ModelLoadError(
                    path: tokenizerPath,
                    "the tokenizer has \(bpe.vocabularySize) token ids, more than the model's vocab_size \(config.vocabularySize)")
            }
            tokenizer = bpe
        } else {
            var specials: [Int: String] = [:]
            if let bos = config.bosTokenID, bos >= 256, bos < config.vocabularySize { specials[bos] = "<bos>" }
            for eos in config.eosTokenIDs where eos >= 256 && eos < config.vocabularySize { specials[eos] = "<eos>" }
            do {
                tokenizer = try ByteTokenizer(vocabularySize: config.vocabularySize, specialTokens: specials)
            } catch {
                throw ModelLoadError(path: folder, "no tokenizer.json, and \(error.description)")
            }
            if let bos = config.bosTokenID { prefix = [bos] }
        }
        self.init(
            model: model, tokenizer: tokenizer, promptPrefix: prefix,
            stopTokens: try Self.generationStopTokens(folder + "/generation_config.json"))
    }

    /// `eos_token_id` of a `generation_config.json`, or nil when the file or the field is absent.
    static func generationStopTokens(_ path: String) throws(ModelLoadError) -> Set<Int>? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let object: [String: Any]?
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        } catch {
            throw ModelLoadError(path: path, "cannot read the generation config: \(error.localizedDescription)")
        }
        switch object?["eos_token_id"] {
        case let single as Int: return [single]
        case let many as [Int]: return Set(many)
        case nil, is NSNull: return nil
        case let other?: throw ModelLoadError(path: path, "field \"eos_token_id\": expected an id or a list of ids, got \(other)")
        }
    }

    /// The ids the model sees for `text`.
    public func promptTokens(_ text: String) -> [Int] { promptPrefix + tokenizer.promptTokens(text) }

    /// Generates text after `prompt`, handing each piece to `onPiece` as its token is chosen.
    /// `options.stopTokens` nil means `defaultStopTokens`; generation also ends once the text contains one
    /// of `options.stopSequences` (stop reason `.stopSequence`); `shouldStop` as for `LlamaModel.generate`.
    public func generate(
        prompt: String, options: GenerationOptions = GenerationOptions(), adapter: LoRAAdapter? = nil,
        onPiece: (StreamedPiece) -> Void = { _ in }, shouldStop: () -> Bool = { false }
    ) throws(GenerationError) -> GenerationResult {
        try generate(promptTokens: promptTokens(prompt), options: options, adapter: adapter, onPiece: onPiece, shouldStop: shouldStop)
    }

    /// ``generate(prompt:options:adapter:onPiece:shouldStop:)`` after prompt ids already made (a rendered chat
    /// template's ``GenerationTokenizer/bareTokens(_:)``).
    public func generate(
        promptTokens: [Int], options: GenerationOptions = GenerationOptions(), adapter: LoRAAdapter? = nil,
        onPiece: (StreamedPiece) -> Void = { _ in }, shouldStop: () -> Bool = { false }
    ) throws(GenerationError) -> GenerationResult {
        var options = options
        if options.stopTokens == nil { options.stopTokens = defaultStopTokens }
        var decoder = UTF8StreamDecoder()
        var filter = StopSequenceFilter(options.stopSequences)
        var text = ""
        var reachedStopSequence = false
        let generation = try model.generate(
            prompt: promptTokens, options: options, adapter: adapter,
            onToken: { token in
                let (piece, stopped) = filter.append(decoder.append(tokenizer.textBytes(ofToken: token)))
                reachedStopSequence = stopped
                text += piece
                onPiece(StreamedPiece(token: token, text: piece))
            },
            shouldStop: { reachedStopSequence || shouldStop() })
        let tail = reachedStopSequence ? "" : filter.flush() + decoder.finish()
        if !tail.isEmpty {
            text += tail
            onPiece(StreamedPiece(token: nil, text: tail))
        }
        return GenerationResult(
            text: text, tokens: generation.tokens, stopReason: reachedStopSequence ? .stopSequence : generation.stopReason,
            stopToken: generation.stopToken,
            promptTokenCount: generation.promptTokenCount, timings: generation.timings,
            tokensPerSecond: generation.tokensPerSecond)
    }
}
