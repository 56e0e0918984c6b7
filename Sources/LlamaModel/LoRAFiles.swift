import Foundation
import TensorCore

/// PEFT's on-disk format: `adapter_config.json` and `adapter_model.safetensors`, with PEFT's tensor
/// names, so PEFT loads Tributary's adapters unchanged and Tributary loads PEFT's.
extension LoRAAdapter {
    /// Writes the adapter to `folder` (created if needed) in PEFT's format.
    public func save(to folder: String, baseModel: String? = nil) throws(LoRAError) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw .invalidFile(path: folder, message: "cannot create folder: \(error.localizedDescription)")
        }
        let peftConfig: [String: Any] = [
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": config.rank,
            "lora_alpha": config.alpha,
            "lora_dropout": config.dropout,
            "target_modules": config.targets.map(\.rawValue),
            "use_rslora": config.useRSLoRA,
            "use_dora": false,
            "bias": "none",
            "fan_in_fan_out": false,
            "init_lora_weights": true,
            "inference_mode": true,
            "modules_to_save": NSNull(),
            "layers_to_transform": NSNull(),
            "rank_pattern": [String: Any](),
            "alpha_pattern": [String: Any](),
            "base_model_name_or_path": baseModel ?? NSNull(),
        ]
        let configPath = folder + "/adapter_config.json"
        do {
            let data = try JSONSerialization.data(withJSONObject: peftConfig, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: configPath), options: .atomic)
        } catch {
            throw .invalidFile(path: configPath, message: "cannot write: \(error.localizedDescription)")
        }
        var tensors: [(name: String, tensor: Tensor)] = []
        for (layer, targets) in pairs.enumerated() {
            for (target, pair) in targets {
                tensors.append((Self.tensorName(layer: layer, target: target, matrix: "A"), pair.a))
                tensors.append((Self.tensorName(layer: layer, target: target, matrix: "B"), pair.b))
            }
        }
        do {
            try SafeTensors.write(tensors, metadata: ["format": "pt"], to: folder + "/adapter_model.safetensors")
        } catch {
            throw .invalidFile(path: error.path, message: error.description)
        }
    }

    /// Reads a PEFT LoRA adapter for a model of `model`'s shape. Refuses what PEFT can express but
    /// Tributary does not implement (DoRA, biases, per-module ranks, ...), naming the field.
    public init(folder: String, model: LlamaConfig) throws(LoRAError) {
        let configPath = folder + "/adapter_config.json"
        let json: [String: Any]
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: configPath))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw LoRAError.invalidFile(path: configPath, message: "not a JSON object")
            }
            json = object
        } catch let error as LoRAError {
            throw error
        } catch {
            throw .invalidFile(path: configPath, message: "cannot read: \(error.localizedDescription)")
        }
        func unsupported(_ field: String, _ value: Any) -> LoRAError {
            .unsupported(path: configPath, field: field, value: "\(value)")
        }
        if let type = json["peft_type"] as? String, type != "LORA" { throw unsupported("peft_type", type) }
        if json["use_dora"] as? Bool == true { throw unsupported("use_dora", true) }
        if json["fan_in_fan_out"] as? Bool == true { throw unsupported("fan_in_fan_out", true) }
        if let bias = json["bias"] as? String, bias != "none" { throw unsupported("bias", bias) }
        for field in ["rank_pattern", "alpha_pattern"] {
            if let pattern = json[field] as? [String: Any], !pattern.isEmpty { throw unsupported(field, pattern) }
        }
        for field in ["layers_to_transform", "modules_to_save"] {
            if let value = json[field], !(value is NSNull) { throw unsupported(field, value) }
        }
        guard let rank = json["r"] as? Int else { throw .invalidFile(path: configPath, message: "field \"r\" is missing") }
        guard let alpha = (json["lora_alpha"] as? NSNumber)?.doubleValue else {
            throw .invalidFile(path: configPath, message: "field \"lora_alpha\" is missing")
        }
        let targetsByLayer = try Self.matchTargets(json["target_modules"], layerCount: model.layerCount, path: configPath)
        let targets = Array(Set(targetsByLayer.flatMap { $0 })).sorted()
        let config = LoRAConfig(
            rank: rank, alpha: alpha, dropout: (json["lora_dropout"] as? NSNumber)?.doubleValue ?? 0,
            targets: targets, useRSLoRA: json["use_rslora"] as? Bool ?? false)
        guard config.dropout >= 0 && config.dropout < 1 else { throw unsupported("lora_dropout", config.dropout) }

        let weightsPath = folder + "/adapter_model.safetensors"
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: weightsPath) } catch { throw .invalidFile(path: error.path, message: error.description) }
        var expected = Set(file.names)
        var pairs: [[LoRATarget: LoRAPair]] = []
        for layer in 0..<model.layerCount {
            var layerPairs: [LoRATarget: LoRAPair] = [:]
            for target in targetsByLayer[layer] {
                let (outFeatures, inFeatures) = target.weightShape(model)
                func load(_ matrix: String, shape: [Int]) throws(LoRAError) -> Tensor {
                    let name = Self.tensorName(layer: layer, target: target, matrix: matrix)
                    expected.remove(name)
                    guard file.contains(name) else { throw .mismatch(path: weightsPath, message: "tensor \"\(name)\" is missing") }
                    let tensor: Tensor
                    do { tensor = try file.tensor(named: name) } catch { throw .invalidFile(path: weightsPath, message: error.description) }
                    guard tensor.shape == shape else {
                        throw .mismatch(path: weightsPath, message: "tensor \"\(name)\" has shape \(tensor.shape), expected \(shape)")
                    }
                    return tensor
                }
                layerPairs[target] = LoRAPair(a: try load("A", shape: [rank, inFeatures]), b: try load("B", shape: [outFeatures, rank]))
            }
            pairs.append(layerPairs)
        }
        if let extra = expected.sorted().first {
            throw .mismatch(path: weightsPath, message: "tensor \"\(extra)\" does not belong to a \(model.layerCount)-layer model with targets \(targets.map(\.rawValue))")
        }
        self.init(config: config, pairs: pairs)
    }

    /// The targets of each layer, matched as PEFT matches `target_modules` against module names
    /// (`model.layers.N.self_attn.q_proj`): a list entry matches a name equal to it or ending in
    /// "." + entry; a string is a regular expression matching whole names, or "all-linear".
    static func matchTargets(_ value: Any?, layerCount: Int, path: String) throws(LoRAError) -> [[LoRATarget]] {
        let modules = (0..<layerCount).flatMap { layer in
            LoRATarget.allCases.map { (layer: layer, target: $0, name: "model.layers.\(layer).\($0.modulePath)") }
        }
        var chosen = [Set<LoRATarget>](repeating: [], count: layerCount)
        switch value {
        case let entries as [String]:
            for entry in entries {
                let matches = modules.filter { $0.name == entry || $0.name.hasSuffix("." + entry) }
                guard !matches.isEmpty else { throw .unsupported(path: path, field: "target_modules", value: "\"\(entry)\"") }
                for match in matches { chosen[match.layer].insert(match.target) }
            }
        case "all-linear" as String:
            for module in modules { chosen[module.layer].insert(module.target) }
        case let pattern as String:
            guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else {
                throw .invalidFile(path: path, message: "field \"target_modules\": invalid regular expression \(pattern)")
            }
            for module in modules
            where regex.firstMatch(in: module.name, range: NSRange(module.name.startIndex..., in: module.name)) != nil {
                chosen[module.layer].insert(module.target)
            }
        default:
            throw .invalidFile(path: path, message: "field \"target_modules\" is missing")
        }
        guard chosen.contains(where: { !$0.isEmpty }) else {
            throw .unsupported(path: path, field: "target_modules", value: "\(value!) (matches no module)")
        }
        return chosen.map { $0.sorted() }
    }
}
