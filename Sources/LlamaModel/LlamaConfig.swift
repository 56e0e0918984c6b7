import Foundation
import TensorCore

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

/// The decoder-only families that share Llama's layer (RMSNorm, rotary grouped-query attention, SwiGLU MLP),
/// with what each adds: Qwen2 (and Qwen2.5) biases on q, k, v; Qwen3 an RMSNorm per head on queries and keys;
/// Mistral a sliding attention window.
public enum ModelFamily: String, Sendable, Codable, CaseIterable {
    case llama, qwen2, qwen3, mistral

    /// transformers' class name in `config.json`'s `architectures`.
    public var architecture: String {
        switch self {
        case .llama: "LlamaForCausalLM"
        case .qwen2: "Qwen2ForCausalLM"
        case .qwen3: "Qwen3ForCausalLM"
        case .mistral: "MistralForCausalLM"
        }
    }
}

/// The hyperparameters of transformers' `LlamaConfig`, `Qwen2Config`, `Qwen3Config` and `MistralConfig`
/// that Tributary implements.
///
/// Loading refuses what it does not implement (another architecture, a `rope_scaling` kind, another
/// activation, sliding windows on Qwen layers), naming the config field, rather than computing something else.
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
    /// Which family's `config.json` this came from (and is written as).
    public var family: ModelFamily
    /// The linear layers that add a bias (`self_attn.q_proj.bias`, ...): Qwen2 q, k, v; Llama's `attention_bias`
    /// q, k, v, o and `mlp_bias` gate, up, down; Qwen3's `attention_bias` q, k, v, o.
    public var biasTargets: Set<LoRATarget>
    /// Qwen3: RMSNorm over each head of the queries and keys (`self_attn.q_norm`, `k_norm`, weight
    /// [headDimension], epsilon `rmsNormEpsilon`), after the projections and before rotary embedding.
    public var queryKeyNorm: Bool
    /// Mistral's `sliding_window`: a query at position i sees keys at positions j with `i - window < j <= i`
    /// (transformers' `sliding_window_overlay`: `kv_idx > q_idx - sliding_window`); nil sees every earlier key.
    public var slidingWindow: Int?
    /// `rope_scaling` (or transformers 5's `rope_parameters`) applied to the rotary inverse frequencies.
    public var ropeScaling: RotaryScaling

    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
        keyValueHeadCount: Int? = nil, headDimension: Int? = nil, maxPositions: Int = 2048,
        rmsNormEpsilon: Float = 1e-6, ropeTheta: Double = 10_000, tieWordEmbeddings: Bool = false,
        bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], family: ModelFamily = .llama,
        biasTargets: Set<LoRATarget> = [], queryKeyNorm: Bool = false, slidingWindow: Int? = nil,
        ropeScaling: RotaryScaling = .none
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
        self.family = family
        self.biasTargets = biasTargets
        self.queryKeyNorm = queryKeyNorm
        self.slidingWindow = slidingWindow
        self.ropeScaling = ropeScaling
    }

    /// Query heads per key/value head.
    public var groupSize: Int { headCount / keyValueHeadCount }

    /// Whether `target`'s linear layer adds a bias.
    public func hasBias(_ target: LoRATarget) -> Bool { biasTargets.contains(target) }

    /// Whether any attention projection carries a bias.
    public var attentionBias: Bool { !biasTargets.isDisjoint(with: [.query, .key, .value, .output]) }

    /// The softmax mask of self-attention scores whose first query row follows `queryOffset` cached
    /// positions: causal, within the sliding window when the config has one.
    public func attentionMask(queryOffset: Int = 0) -> SoftmaxMask {
        slidingWindow.map { .slidingWindow(queryOffset: queryOffset, window: $0) } ?? .causal(queryOffset: queryOffset)
    }

    /// The rotary table of this config: theta, head dimension and scaling.
    public var rotaryTable: RotaryTable {
        RotaryTable(headDimension: headDimension, maxPositions: maxPositions, theta: ropeTheta, scaling: ropeScaling)
    }

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
        func isAbsent(_ value: Any?) -> Bool { value == nil || value is NSNull }
        // A JSON true/false, which is an NSNumber too (and on Linux `1 is Bool` holds, so `is Bool` cannot tell).
        func isBoolean(_ raw: Any) -> Bool {
            if type(of: raw) == Bool.self { return true }
            guard let number = raw as? NSNumber else { return false }
            return String(cString: number.objCType) == "c"
        }
        func positiveInteger(_ raw: Any, _ field: String) throws(ModelLoadError) -> Int {
            // JSON true/false are NSNumbers too: refuse them as integers.
            guard let number = raw as? NSNumber, !isBoolean(raw), let exact = Int(exactly: number.doubleValue), exact > 0 else {
                throw fail(field, "expected a positive integer, got \(raw)")
            }
            return exact
        }
        func positiveNumber(_ raw: Any, _ field: String) throws(ModelLoadError) -> Double {
            guard let number = raw as? NSNumber, !isBoolean(raw), number.doubleValue > 0, number.doubleValue.isFinite else {
                throw fail(field, "expected a positive number, got \(raw)")
            }
            return number.doubleValue
        }
        func integer(_ field: String, default value: Int? = nil) throws(ModelLoadError) -> Int {
            guard let raw = json[field], !(raw is NSNull) else {
                if let value { return value }
                throw fail(field, "missing")
            }
            return try positiveInteger(raw, field)
        }
        func number(_ field: String, default value: Double) throws(ModelLoadError) -> Double {
            guard let raw = json[field], !(raw is NSNull) else { return value }
            return try positiveNumber(raw, field)
        }
        func flag(_ field: String) throws(ModelLoadError) -> Bool {
            guard let raw = json[field], !(raw is NSNull) else { return false }
            guard let value = raw as? Bool else { throw fail(field, "expected true or false, got \(raw)") }
            return value
        }

        // The family: model_type, architectures, or both agreeing; neither is Llama, as before.
        let supported = ModelFamily.allCases.map(\.rawValue).map { "\"\($0)\"" }.joined(separator: ", ")
        var family: ModelFamily? = nil
        if let raw = json["model_type"], !(raw is NSNull) {
            guard let name = raw as? String, let named = ModelFamily(rawValue: name) else {
                throw fail("model_type", "\(raw) is not supported (only \(supported))")
            }
            family = named
        }
        if let raw = json["architectures"], !(raw is NSNull) {
            let classes = ModelFamily.allCases.map(\.architecture)
            guard let architectures = raw as? [String], architectures.count == 1,
                  let named = ModelFamily.allCases.first(where: { $0.architecture == architectures[0] }) else {
                throw fail("architectures", "\(raw) is not supported (only one of \(classes))")
            }
            if let family, family != named {
                throw fail("architectures", "\(architectures[0]) contradicts model_type \"\(family.rawValue)\"")
            }
            family = named
        }
        let resolvedFamily = family ?? .llama

        if let activation = json["hidden_act"], !(activation is NSNull), activation as? String != "silu" {
            throw fail("hidden_act", "\(activation) is not supported (only \"silu\")")
        }
        if let tp = json["pretraining_tp"], !(tp is NSNull), (tp as? NSNumber)?.intValue != 1 || isBoolean(tp) {
            throw fail("pretraining_tp", "\(tp) is not supported (only 1)")
        }

        // Biases, as each family's modeling file builds its nn.Linear layers.
        var biasTargets: Set<LoRATarget> = []
        switch resolvedFamily {
        case .llama:
            if try flag("attention_bias") { biasTargets.formUnion([.query, .key, .value, .output]) }
            if try flag("mlp_bias") { biasTargets.formUnion([.gate, .up, .down]) }
        case .qwen2:
            biasTargets = [.query, .key, .value]
        case .qwen3:
            if try flag("attention_bias") { biasTargets.formUnion([.query, .key, .value, .output]) }
        case .mistral:
            break
        }

        let hidden = try integer("hidden_size")
        let heads = try integer("num_attention_heads")
        let kvHeads = try integer("num_key_value_heads", default: heads)
        let layers = try integer("num_hidden_layers")
        let maxPositions = try integer("max_position_embeddings", default: 2048)
        if isAbsent(json["head_dim"]), hidden % heads != 0 {
            throw fail("head_dim", "missing, and hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)")
        }
        let headDimension = try integer("head_dim", default: hidden / heads)
        guard heads % kvHeads == 0 else {
            throw fail("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        guard headDimension % 2 == 0 else { throw fail("head_dim", "rotary embedding needs an even head dimension, got \(headDimension)") }

        // Sliding windows: Mistral's applies to every layer; Qwen's only when use_sliding_window, and only
        // to the layers layer_types (or max_window_layers) marks sliding.
        var slidingWindow: Int? = nil
        switch resolvedFamily {
        case .mistral:
            // MistralConfig's default when the field is absent is 4096; null means no window.
            if let raw = json["sliding_window"] {
                slidingWindow = raw is NSNull ? nil : try positiveInteger(raw, "sliding_window")
            } else {
                slidingWindow = 4096
            }
        case .qwen2, .qwen3:
            if try flag("use_sliding_window"), let raw = json["sliding_window"], !(raw is NSNull) {
                let window = try positiveInteger(raw, "sliding_window")
                let slidingLayers: [Int]
                if let rawTypes = json["layer_types"], !(rawTypes is NSNull) {
                    guard let types = rawTypes as? [String], types.count == layers else {
                        throw fail("layer_types", "expected \(layers) strings, got \(rawTypes)")
                    }
                    slidingLayers = types.indices.filter { types[$0] == "sliding_attention" }
                } else {
                    // The layers from max_window_layers on slide (0: all of them).
                    var first = 28
                    if let raw = json["max_window_layers"], !(raw is NSNull) {
                        guard let number = raw as? NSNumber, !isBoolean(raw), let exact = Int(exactly: number.doubleValue), exact >= 0 else {
                            throw fail("max_window_layers", "expected a non-negative integer, got \(raw)")
                        }
                        first = exact
                    }
                    slidingLayers = Array(min(first, layers)..<layers)
                }
                // A window as long as the context masks nothing: plain causal attention.
                if !slidingLayers.isEmpty && window < maxPositions {
                    throw fail("use_sliding_window", "sliding-window attention (window \(window) on layers \(slidingLayers)) is not supported for \(resolvedFamily.rawValue)")
                }
            }
        case .llama:
            break
        }
        if let rawTypes = json["layer_types"], !(rawTypes is NSNull), resolvedFamily != .mistral {
            guard let types = rawTypes as? [String],
                  types.allSatisfy({ $0 == "full_attention" || $0 == "sliding_attention" }) else {
                throw fail("layer_types", "\(rawTypes) is not supported (only \"full_attention\" and \"sliding_attention\")")
            }
        }

        // RoPE: rope_theta and rope_scaling (transformers 4), or both under rope_parameters (transformers 5).
        var theta = try number("rope_theta", default: 10_000)
        var scalingObject: (field: String, value: [String: Any])? = nil
        if let raw = json["rope_parameters"], !(raw is NSNull) {
            guard let parameters = raw as? [String: Any] else { throw fail("rope_parameters", "expected an object, got \(raw)") }
            if let value = parameters["rope_theta"], !(value is NSNull) { theta = try positiveNumber(value, "rope_parameters.rope_theta") }
            scalingObject = ("rope_parameters", parameters)
        }
        if let raw = json["rope_scaling"], !(raw is NSNull) {
            guard let scaling = raw as? [String: Any] else { throw fail("rope_scaling", "expected an object, got \(raw)") }
            scalingObject = ("rope_scaling", scaling)
        }
        var ropeScaling = RotaryScaling.none
        if let (field, scaling) = scalingObject {
            let typeField = scaling["rope_type"] != nil ? "rope_type" : "type"
            let kind = scaling[typeField].flatMap { $0 is NSNull ? nil : $0 } ?? "default"
            func parameter(_ name: String) throws(ModelLoadError) -> Double {
                guard let raw = scaling[name], !(raw is NSNull) else { throw fail("\(field).\(name)", "missing for rope type \"\(kind)\"") }
                return try positiveNumber(raw, "\(field).\(name)")
            }
            if let partial = scaling["partial_rotary_factor"], !(partial is NSNull), (partial as? NSNumber)?.doubleValue != 1 || isBoolean(partial) {
                throw fail("\(field).partial_rotary_factor", "\(partial) is not supported (only 1)")
            }
            switch kind as? String {
            case "default":
                break
            case "linear":
                ropeScaling = .linear(factor: try parameter("factor"))
            case "llama3":
                let (low, high) = (try parameter("low_freq_factor"), try parameter("high_freq_factor"))
                guard high > low else {
                    throw fail("\(field).high_freq_factor", "\(high) must exceed low_freq_factor \(low)")
                }
                let original: Int
                if let raw = scaling["original_max_position_embeddings"], !(raw is NSNull) {
                    original = try positiveInteger(raw, "\(field).original_max_position_embeddings")
                } else {
                    throw fail("\(field).original_max_position_embeddings", "missing for rope type \"llama3\"")
                }
                ropeScaling = .llama3(factor: try parameter("factor"), lowFrequencyFactor: low, highFrequencyFactor: high, originalMaxPositions: original)
            default:
                let shown = (kind as? String).map { "\"\($0)\"" } ?? "\(kind)"
                throw fail("\(field).\(typeField)", "\(shown) is not supported (only \"default\", \"linear\" and \"llama3\")")
            }
        }
        if let partial = json["partial_rotary_factor"], !(partial is NSNull), (partial as? NSNumber)?.doubleValue != 1 || isBoolean(partial) {
            throw fail("partial_rotary_factor", "\(partial) is not supported (only 1)")
        }

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
            layerCount: layers,
            headCount: heads,
            keyValueHeadCount: kvHeads,
            headDimension: headDimension,
            maxPositions: maxPositions,
            rmsNormEpsilon: Float(try number("rms_norm_eps", default: 1e-6)),
            ropeTheta: theta,
            tieWordEmbeddings: try flag("tie_word_embeddings"),
            bosTokenID: json["bos_token_id"] as? Int,
            eosTokenIDs: eos,
            family: resolvedFamily,
            biasTargets: biasTargets,
            queryKeyNorm: resolvedFamily == .qwen3,
            slidingWindow: slidingWindow,
            ropeScaling: ropeScaling)
    }
}
