import Foundation

/// A model folder or file that Tributary cannot load, with the file and the field or tensor at fault.
public struct ModelLoadError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// The hyperparameters of transformers' `LlamaConfig` that Tributary implements.
///
/// Loading refuses what it does not implement (another architecture, a `rope_scaling` kind,
/// biases, another activation), naming the config field, rather than computing something else.
public struct LlamaConfig: Sendable, Equatable, Codable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    public var headDimension: Int
    public var maxPositions: Int
    public var rmsNormEpsilon: Float
    public var ropeTheta: Double
    public var tieWordEmbeddings: Bool
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
        keyValueHeadCount: Int? = nil, headDimension: Int? = nil, maxPositions: Int = 2048,
        rmsNormEpsilon: Float = 1e-6, ropeTheta: Double = 10_000, tieWordEmbeddings: Bool = false,
        bosTokenID: Int? = nil, eosTokenIDs: [Int] = []
    ) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount ?? headCount
        self.headDimension = headDimension ?? hiddenSize / headCount
        self.maxPositions = maxPositions
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
    }

    /// Query heads per key/value head.
    public var groupSize: Int { headCount / keyValueHeadCount }

    /// Reads a Hugging Face `config.json`, with transformers' defaults for absent fields.
    public init(contentsOf path: String) throws(ModelLoadError) {
        let object: [String: Any]
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let parsed = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelLoadError(path: path, "not a JSON object")
            }
            object = parsed
        } catch let error as ModelLoadError {
            throw error
        } catch {
            throw ModelLoadError(path: path, "cannot read config: \(error.localizedDescription)")
        }
        try self.init(json: object, path: path)
    }

    init(json: [String: Any], path: String) throws(ModelLoadError) {
        func fail(_ field: String, _ problem: String) -> ModelLoadError {
            ModelLoadError(path: path, "field \"\(field)\": \(problem)")
        }
        func integer(_ field: String, default value: Int? = nil) throws(ModelLoadError) -> Int {
            guard let raw = json[field], !(raw is NSNull) else {
                if let value { return value }
                throw fail(field, "missing")
            }
            guard let exact = (raw as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }), exact > 0 else {
                throw fail(field, "expected a positive integer, got \(raw)")
            }
            return exact
        }
        func number(_ field: String, default value: Double) throws(ModelLoadError) -> Double {
            guard let raw = json[field], !(raw is NSNull) else { return value }
            guard let number = raw as? NSNumber, number.doubleValue > 0 else {
                throw fail(field, "expected a positive number, got \(raw)")
            }
            return number.doubleValue
        }
        func flag(_ field: String) throws(ModelLoadError) -> Bool {
            guard let raw = json[field], !(raw is NSNull) else { return false }
            guard let value = raw as? Bool else { throw fail(field, "expected true or false, got \(raw)") }
            return value
        }

        if let architectures = json["architectures"] as? [String], architectures != ["LlamaForCausalLM"] {
            throw fail("architectures", "\(architectures) is not supported (only LlamaForCausalLM)")
        }
        if let modelType = json["model_type"] as? String, modelType != "llama" {
            throw fail("model_type", "\"\(modelType)\" is not supported (only \"llama\")")
        }
        if let activation = json["hidden_act"] as? String, activation != "silu" {
            throw fail("hidden_act", "\"\(activation)\" is not supported (only \"silu\")")
        }
        for field in ["attention_bias", "mlp_bias"] where try flag(field) {
            throw fail(field, "biases are not supported")
        }
        if let scaling = json["rope_scaling"], !(scaling is NSNull) {
            let kind = (scaling as? [String: Any])?["rope_type"] ?? (scaling as? [String: Any])?["type"] ?? scaling
            throw fail("rope_scaling", "rope scaling \(kind) is not supported")
        }
        var theta = try number("rope_theta", default: 10_000)
        // transformers 5 groups RoPE settings under rope_parameters.
        if let parameters = json["rope_parameters"] as? [String: Any] {
            if let kind = parameters["rope_type"] as? String, kind != "default" {
                throw fail("rope_parameters.rope_type", "\"\(kind)\" is not supported (only \"default\")")
            }
            if let value = (parameters["rope_theta"] as? NSNumber)?.doubleValue { theta = value }
        }
        if let tp = json["pretraining_tp"] as? Int, tp != 1 {
            throw fail("pretraining_tp", "\(tp) is not supported (only 1)")
        }

        let hidden = try integer("hidden_size")
        let heads = try integer("num_attention_heads")
        let kvHeads = try integer("num_key_value_heads", default: heads)
        let headDimension = try integer("head_dim", default: hidden / heads)
        guard heads % kvHeads == 0 else {
            throw fail("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        guard headDimension % 2 == 0 else { throw fail("head_dim", "rotary embedding needs an even head dimension, got \(headDimension)") }
        let eos: [Int]
        switch json["eos_token_id"] {
        case let single as Int: eos = [single]
        case let many as [Int]: eos = many
        default: eos = []
        }
        self.init(
            vocabularySize: try integer("vocab_size"),
            hiddenSize: hidden,
            intermediateSize: try integer("intermediate_size"),
            layerCount: try integer("num_hidden_layers"),
            headCount: heads,
            keyValueHeadCount: kvHeads,
            headDimension: headDimension,
            maxPositions: try integer("max_position_embeddings", default: 2048),
            rmsNormEpsilon: Float(try number("rms_norm_eps", default: 1e-6)),
            ropeTheta: theta,
            tieWordEmbeddings: try flag("tie_word_embeddings"),
            bosTokenID: json["bos_token_id"] as? Int,
            eosTokenIDs: eos)
    }
}
