import Foundation
import LlamaModel
import SampleCorpus
import TensorCore
import Tokenizers

/// Everything that determines a pretrained base model: architecture, corpus, initialisation and
/// training options. The same recipe and BLAS thread count give the same weights.
public struct PretrainingRecipe: Sendable, Equatable, Codable {
    /// The Llama shape; the vocabulary is always the bytes plus `specialTokens`.
    public struct Architecture: Sendable, Equatable, Codable {
        public var hiddenSize: Int
        public var intermediateSize: Int
        public var layerCount: Int
        public var headCount: Int
        public var keyValueHeadCount: Int
        public var contextLength: Int
        public var ropeTheta: Double
        public var rmsNormEpsilon: Float

        public init(
            hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, keyValueHeadCount: Int,
            contextLength: Int, ropeTheta: Double, rmsNormEpsilon: Float
        ) {
            (self.hiddenSize, self.intermediateSize, self.layerCount) = (hiddenSize, intermediateSize, layerCount)
            (self.headCount, self.keyValueHeadCount, self.contextLength) = (headCount, keyValueHeadCount, contextLength)
            (self.ropeTheta, self.rmsNormEpsilon) = (ropeTheta, rmsNormEpsilon)
        }
    }

    public var architecture: Architecture
    /// Seed of the generated corpus.
    public var corpusSeed: UInt64
    /// Documents in the corpus, the domains taken in turn.
    public var documentCount: Int
    /// Tokens per training window.
    public var sequenceLength: Int
    /// Seed of the initial weights.
    public var initSeed: UInt64
    public var training: TrainingOptions

    /// Byte-level vocabulary: ids 0...255 are bytes, then these, padded to a multiple of 8.
    public static let bosToken = 256, eosToken = 257, padToken = 258
    public static let vocabularySize = 264

    /// The recipe of `models/tributary-base`.
    public static var builtIn: PretrainingRecipe {
        var training = TrainingOptions(totalSteps: 1000)
        training.learningRate = 3e-3
        training.schedule = .cosine
        training.warmupSteps = 40
        training.batchSize = 8
        training.maxGradientNorm = 1
        training.weightDecay = 0.01
        training.seed = 1
        training.checkpointEvery = 100
        return PretrainingRecipe(
            architecture: Architecture(
                hiddenSize: 256, intermediateSize: 688, layerCount: 4, headCount: 8, keyValueHeadCount: 4,
                contextLength: 256, ropeTheta: 10_000, rmsNormEpsilon: 1e-5),
            corpusSeed: 2026, documentCount: 12_000, sequenceLength: 256, initSeed: 7, training: training)
    }

    /// Problems that would make the recipe fail or train nothing, each naming its field.
    public func validate() throws(RecipeError) {
        let a = architecture
        for (field, value) in [("architecture.hiddenSize", a.hiddenSize), ("architecture.intermediateSize", a.intermediateSize),
                               ("architecture.layerCount", a.layerCount), ("architecture.headCount", a.headCount),
                               ("architecture.keyValueHeadCount", a.keyValueHeadCount), ("architecture.contextLength", a.contextLength),
                               ("documentCount", documentCount), ("training.totalSteps", training.totalSteps),
                               ("training.batchSize", training.batchSize), ("training.gradientAccumulation", training.gradientAccumulation)]
        where value < 1 {
            throw RecipeError("\(field) must be at least 1, got \(value)")
        }
        guard a.hiddenSize % a.headCount == 0, (a.hiddenSize / a.headCount) % 2 == 0 else {
            throw RecipeError("architecture.hiddenSize \(a.hiddenSize) must split into \(a.headCount) heads of even size")
        }
        guard a.headCount % a.keyValueHeadCount == 0 else {
            throw RecipeError("architecture.keyValueHeadCount \(a.keyValueHeadCount) does not divide headCount \(a.headCount)")
        }
        guard sequenceLength >= 2 && sequenceLength <= a.contextLength else {
            throw RecipeError("sequenceLength \(sequenceLength) must lie in 2...\(a.contextLength) (architecture.contextLength)")
        }
        if let every = training.checkpointEvery, every < 1 { throw RecipeError("training.checkpointEvery must be at least 1, got \(every)") }
    }

    public var modelConfig: LlamaConfig {
        LlamaConfig(
            vocabularySize: Self.vocabularySize, hiddenSize: architecture.hiddenSize, intermediateSize: architecture.intermediateSize,
            layerCount: architecture.layerCount, headCount: architecture.headCount, keyValueHeadCount: architecture.keyValueHeadCount,
            maxPositions: architecture.contextLength, rmsNormEpsilon: architecture.rmsNormEpsilon, ropeTheta: architecture.ropeTheta,
            tieWordEmbeddings: true, bosTokenID: Self.bosToken, eosTokenIDs: [Self.eosToken])
    }

    public var initialModel: LlamaModel {
        LlamaModel(config: modelConfig, weights: LlamaWeights(initializing: modelConfig, seed: initSeed))
    }

    /// The corpus as one stream, each document's bytes between `<bos>` and `<eos>`, and the offset
    /// of every `<bos>`: training windows start there, as generation starts at `<bos>`.
    public var corpusTokens: (stream: [Int], documentStarts: [Int]) {
        let tokenizer = try! ByteTokenizer(vocabularySize: Self.vocabularySize)
        var stream: [Int] = [], starts: [Int] = []
        for document in SampleCorpus(seed: corpusSeed).documents(count: documentCount) {
            starts.append(stream.count)
            stream += [Self.bosToken] + tokenizer.encode(document.text) + [Self.eosToken]
        }
        return (stream, starts)
    }

    /// A pretrainer at step 0 of this recipe.
    public var pretrainer: Pretrainer {
        let corpus = corpusTokens
        return Pretrainer(model: initialModel, stream: corpus.stream, windowStarts: corpus.documentStarts, sequenceLength: sequenceLength, options: training)
    }

    public func write(to path: String) throws { try writeJSON(self, to: path) }

    /// The recipe as `write(to:)` writes it.
    public var json: String { String(decoding: try! encodedJSON(self), as: UTF8.self) }

    /// Saves `model` as the recipe's Hugging Face folder in `dtype`, with the pad id and the recipe beside it.
    public func saveModel(_ model: LlamaModel, to folder: String, dtype: SafeTensors.Dtype) throws {
        try model.save(to: folder, dtype: dtype, extraConfig: ["pad_token_id": Self.padToken])
        try write(to: folder + "/recipe.json")
    }
}

extension PretrainingRecipe {
    /// Reads a recipe JSON file (as `write(to:)` writes it).
    public init(contentsOf path: String) throws(RecipeError) {
        do {
            self = try readJSON(PretrainingRecipe.self, from: path)
        } catch {
            throw RecipeError("\(path): not a pretraining recipe: \(error)")
        }
    }
}

/// A recipe that cannot be trained, naming the field at fault.
public struct RecipeError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
