import Crypto
import Foundation

/// One adapter state an index holds gradients for: a `checkpoint-N` folder that `LoRATrainer` wrote
/// (a PEFT adapter and `trainer_state.json`), or an adapter folder without checkpoints.
public struct AdapterCheckpoint: Sendable, Equatable, Codable {
    /// The folder's name inside the adapter folder ("checkpoint-N"), or "." for the adapter folder itself.
    public var name: String
    public var step: Int?
    /// The learning rate used at its step (TracIn's weight); 1 when the folder has no `trainer_state.json`.
    public var learningRate: Float
    /// `AdapterCheckpoint.fingerprint` of its adapter files.
    public var adapterSHA256: String

    enum CodingKeys: String, CodingKey {
        case name, step
        case learningRate = "learning_rate"
        case adapterSHA256 = "adapter_sha256"
    }

    /// Which checkpoints of a training run to index.
    public enum Selection: String, Sendable, CaseIterable {
        case all, last
    }

    /// The checkpoints of the adapter folder `folder`: its `checkpoint-N` subfolders by step (all, or
    /// the last), or the folder itself when it has none.
    public static func discover(in folder: String, selection: Selection) throws(AttributionError) -> [AdapterCheckpoint] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let steps = entries.compactMap { name -> Int? in
            guard name.hasPrefix("checkpoint-"), let step = Int(name.dropFirst("checkpoint-".count)) else { return nil }
            return FileManager.default.fileExists(atPath: "\(folder)/\(name)/adapter_model.safetensors") ? step : nil
        }.sorted()
        let names = steps.isEmpty ? ["."] : steps.map { "checkpoint-\($0)" }
        let chosen = selection == .last ? [names.last!] : names
        var checkpoints: [AdapterCheckpoint] = []
        for name in chosen { checkpoints.append(try AdapterCheckpoint(folder: folder, name: name)) }
        return checkpoints
    }

    /// Reads checkpoint `name` of the adapter folder `folder`.
    public init(folder: String, name: String) throws(AttributionError) {
        let path = name == "." ? folder : "\(folder)/\(name)"
        self.name = name
        adapterSHA256 = try Self.fingerprint(folder: path)
        let statePath = path + "/trainer_state.json"
        guard FileManager.default.fileExists(atPath: statePath) else {
            step = nil
            learningRate = 1
            return
        }
        struct TrainerState: Decodable {
            var step: Int
            var learningRate: Float
        }
        do {
            let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: statePath)))
            step = state.step
            learningRate = state.learningRate
        } catch {
            throw .invalidAdapter(path: statePath, message: "not a trainer state with \"step\" and \"learningRate\": \(error)")
        }
    }

    /// SHA-256 over "tributary.adapter.v1", then `adapter_config.json` and `adapter_model.safetensors`,
    /// each preceded by its byte count (8 bytes, big-endian): the exact adapter files, hex.
    public static func fingerprint(folder: String) throws(AttributionError) -> String {
        var hasher = SHA256()
        hasher.update(data: Data("tributary.adapter.v1".utf8))
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            let path = "\(folder)/\(file)"
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
                throw .invalidAdapter(path: path, message: "cannot read: \(error.localizedDescription)")
            }
            hasher.update(data: Data(stride(from: 56, through: 0, by: -8).map { UInt8(truncatingIfNeeded: data.count >> $0) }))
            hasher.update(data: data)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Where this checkpoint lies in the adapter folder `folder`.
    public func path(in folder: String) -> String { name == "." ? folder : "\(folder)/\(name)" }
}
