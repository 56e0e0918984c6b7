import Foundation
import TensorCore

/// A linear layer of a Llama decoder layer that LoRA can adapt, named as PEFT's `target_modules` names it.
public enum LoRATarget: String, CaseIterable, Sendable, Codable, Comparable {
    case query = "q_proj", key = "k_proj", value = "v_proj", output = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The module's path inside a decoder layer, as in transformers' state dict.
    public var modulePath: String {
        switch self {
        case .query, .key, .value, .output: "self_attn.\(rawValue)"
        case .gate, .up, .down: "mlp.\(rawValue)"
        }
    }

    /// Parses a comma list of targets: short names (q,k,v,o,gate,up,down), PEFT names, or `all-linear`.
    public static func parse(_ list: String) throws(LoRAError) -> [LoRATarget] {
        var targets: Set<LoRATarget> = []
        for item in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let short: [String: LoRATarget] = ["q": .query, "k": .key, "v": .value, "o": .output, "gate": .gate, "up": .up, "down": .down]
            if item == "all-linear" {
                targets.formUnion(allCases)
            } else if let target = short[item] ?? LoRATarget(rawValue: item) {
                targets.insert(target)
            } else {
                throw .unknownTarget(item)
            }
        }
        guard !targets.isEmpty else { throw .unknownTarget(list) }
        return targets.sorted()
    }

    public static func < (lhs: LoRATarget, rhs: LoRATarget) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The [out, in] shape of the adapted weight.
    func weightShape(_ config: LlamaConfig) -> (out: Int, in: Int) {
        let qWidth = config.headCount * config.headDimension, kvWidth = config.keyValueHeadCount * config.headDimension
        switch self {
        case .query: return (qWidth, config.hiddenSize)
        case .key, .value: return (kvWidth, config.hiddenSize)
        case .output: return (config.hiddenSize, qWidth)
        case .gate, .up: return (config.intermediateSize, config.hiddenSize)
        case .down: return (config.hiddenSize, config.intermediateSize)
        }
    }
}

/// LoRA hyperparameters, with PEFT's `LoraConfig` meaning.
public struct LoRAConfig: Sendable, Equatable {
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    public var targets: [LoRATarget]
    /// rsLoRA: scale by alpha / sqrt(rank) instead of alpha / rank.
    public var useRSLoRA: Bool

    public init(rank: Int = 8, alpha: Double = 16, dropout: Double = 0, targets: [LoRATarget] = [.query, .value], useRSLoRA: Bool = false) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = targets.sorted()
        self.useRSLoRA = useRSLoRA
    }

    /// The factor s in W + s B A.
    public var scaling: Float { Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }
}

/// One adapted linear layer: ΔW = scaling · B A, with A [rank, in] and B [out, rank] (PEFT's lora_A, lora_B).
public struct LoRAPair: Sendable {
    public var a: Tensor
    public var b: Tensor

    public init(a: Tensor, b: Tensor) {
        self.a = a
        self.b = b
    }
}

/// PEFT's `lora_dropout` in training: an independent inverted-dropout mask on the input of each
/// adapted linear layer, drawn from `seed`, the layer and the target (the same seed gives the same
/// masks on every machine and thread count). Inference and attribution never drop out.
public struct LoRADropout: Sendable, Equatable {
    public var probability: Float
    public var seed: UInt64

    public init(probability: Float, seed: UInt64) {
        self.probability = probability
        self.seed = seed
    }

    /// The mask of `target` in `layer` for an input of `shape`: 0 or 1 / (1 - probability); nil
    /// for probability 0, so that no dropout runs the very same arithmetic as none.
    public func mask(layer: Int, target: LoRATarget, shape: [Int]) -> Tensor? {
        guard probability > 0 else { return nil }
        let stream = UInt64(layer * LoRATarget.allCases.count + LoRATarget.allCases.firstIndex(of: target)! + 1)
        var random = SeededRandom(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        return random.dropoutMaskTensor(shape: shape, dropProbability: probability)
    }
}

/// A LoRA adapter for a Llama model: a pair per (layer, target). Adapters are values passed to the
/// model per call, so several stay resident on one base.
public struct LoRAAdapter: Sendable {
    public var config: LoRAConfig
    /// Indexed by layer, then target.
    public var pairs: [[LoRATarget: LoRAPair]]

    /// PEFT's default initialisation: A Kaiming-uniform (a = sqrt(5), so U(-1/sqrt(in), 1/sqrt(in))), B zero.
    public init(config: LoRAConfig, model: LlamaConfig, seed: UInt64) throws(LoRAError) {
        guard config.rank >= 1 else { throw .invalidRank(config.rank) }
        guard config.dropout >= 0 && config.dropout < 1 else { throw .invalidDropout(config.dropout) }
        self.config = config
        var random = SeededRandom(seed: seed)
        pairs = (0..<model.layerCount).map { _ in
            var layer: [LoRATarget: LoRAPair] = [:]
            for target in config.targets {
                let (outFeatures, inFeatures) = target.weightShape(model)
                let bound = 1 / Float(inFeatures).squareRoot()
                layer[target] = LoRAPair(
                    a: random.uniformTensor(shape: [config.rank, inFeatures], in: -bound..<bound),
                    b: Tensor(zeros: [outFeatures, config.rank]))
            }
            return layer
        }
    }

    public init(config: LoRAConfig, pairs: [[LoRATarget: LoRAPair]]) {
        self.config = config
        self.pairs = pairs
    }

    /// PEFT's tensor name of a layer's lora_A or lora_B weight.
    public static func tensorName(layer: Int, target: LoRATarget, matrix: String) -> String {
        "base_model.model.model.layers.\(layer).\(target.modulePath).lora_\(matrix).weight"
    }

    /// `x Wᵀ + scaling (x' Aᵀ) Bᵀ` for an adapted target, with `x' Aᵀ` (the backward pass needs it);
    /// nil when the adapter does not adapt `target` in `layer`. `x'` is `x`, or in training
    /// `x ⊙ dropoutMask`: PEFT drops out the input of lora_A only, never of the base weight.
    public func apply(
        _ x: Tensor, weight: Tensor, layer: Int, target: LoRATarget, dropoutMask: Tensor? = nil
    ) -> (output: Tensor, down: Tensor)? {
        guard pairs[layer][target] != nil else { return nil }
        var y = Tensor(unfilled: [x.shape[0], weight.shape[0]])
        LlamaModel.linear(x, weight, into: &y)
        let down = addDelta(x, into: &y, layer: layer, target: target, dropoutMask: dropoutMask)!
        return (y, down)
    }

    /// Adds `scaling (x' Aᵀ) Bᵀ` to `y` and returns `x' Aᵀ`; nil, leaving `y` as it is, when the
    /// adapter does not adapt `target` in `layer`.
    @discardableResult
    public func addDelta(
        _ x: Tensor, into y: inout Tensor, layer: Int, target: LoRATarget, dropoutMask: Tensor? = nil
    ) -> Tensor? {
        guard let pair = pairs[layer][target] else { return nil }
        var down = Tensor(unfilled: [x.shape[0], config.rank])
        LlamaModel.linear(dropoutMask.map { Kernels.multiply(x, $0) } ?? x, pair.a, into: &down)
        LlamaModel.linear(down, pair.b, into: &y, alpha: config.scaling, beta: 1)
        return down
    }

    /// The weights with ΔW = s B A added (`sign` 1, merge) or subtracted (`sign` -1, unmerge).
    public func merged(into weights: LlamaWeights, sign: Float = 1) -> LlamaWeights {
        var result = weights
        for (layer, targets) in pairs.enumerated() {
            for (target, pair) in targets {
                result.layers[layer].update(target) { weight in
                    BLAS.gemm(pair.b, pair.a, into: &weight, alpha: sign * config.scaling, beta: 1)
                }
            }
        }
        return result
    }
}

extension LlamaLayerWeights {
    /// Calls `body` on the weight of `target`, in place.
    public mutating func update(_ target: LoRATarget, _ body: (inout Tensor) -> Void) {
        switch target {
        case .query: body(&query)
        case .key: body(&key)
        case .value: body(&value)
        case .output: body(&output)
        case .gate: body(&gate)
        case .up: body(&up)
        case .down: body(&down)
        }
    }

    public subscript(target: LoRATarget) -> Tensor {
        switch target {
        case .query: query
        case .key: key
        case .value: value
        case .output: output
        case .gate: gate
        case .up: up
        case .down: down
        }
    }
}

/// An adapter that cannot be built, read or used.
public enum LoRAError: Error, Equatable, CustomStringConvertible {
    case invalidRank(Int)
    case invalidDropout(Double)
    case unknownTarget(String)
    case unsupported(path: String, field: String, value: String)
    case invalidFile(path: String, message: String)
    case mismatch(path: String, message: String)

    public var description: String {
        switch self {
        case .invalidRank(let rank): "LoRA rank must be at least 1, got \(rank)"
        case .invalidDropout(let p): "LoRA dropout must lie in [0, 1), got \(p)"
        case .unknownTarget(let name): "unknown LoRA target \"\(name)\" (use q,k,v,o,gate,up,down or all-linear)"
        case .unsupported(let path, let field, let value): "\(path): field \"\(field)\": \(value) is not supported"
        case .invalidFile(let path, let message): "\(path): \(message)"
        case .mismatch(let path, let message): "\(path): \(message)"
        }
    }
}
