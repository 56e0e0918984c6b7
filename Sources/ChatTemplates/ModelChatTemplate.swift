import Foundation

/// A model folder's chat template with the tokenizer's special tokens it renders with, found where transformers
/// finds them: `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template` (a string, or a list of
/// {name, template} whose "default" is used); the special tokens from `tokenizer_config.json` (and
/// `special_tokens_map.json` for any it lacks).
public struct ModelChatTemplate: Sendable {
    public let template: ChatTemplate
    /// `bos_token`, `eos_token`... as the template sees them.
    public let specialTokens: [String: String]
    /// The file the template came from.
    public let path: String

    /// Why a folder's template could not be read.
    public struct LoadError: Error, Equatable, Sendable, CustomStringConvertible {
        public let path: String
        public let message: String
        public var description: String { "\(path): \(message)" }
    }

    public init(template: ChatTemplate, specialTokens: [String: String], path: String) {
        self.template = template
        self.specialTokens = specialTokens
        self.path = path
    }

    static let specialTokenNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

    /// The folder's template; nil when it has none.
    public static func load(folder: String, limits: ChatTemplateLimits = ChatTemplateLimits()) throws(LoadError) -> ModelChatTemplate? {
        let configPath = folder + "/tokenizer_config.json"
        let config = try readObject(configPath) ?? [:]
        var source: String?
        var origin = configPath
        let jinjaPath = folder + "/chat_template.jinja"
        if FileManager.default.fileExists(atPath: jinjaPath) {
            source = try readText(jinjaPath, limit: limits.maxTemplateBytes)
            origin = jinjaPath
        } else {
            switch config["chat_template"] {
            case nil, is NSNull: break
            case let text as String: source = text
            case let list as [Any]:
                let named = list.compactMap { entry -> (String, String)? in
                    guard let entry = entry as? [String: Any], let name = entry["name"] as? String, let template = entry["template"] as? String else { return nil }
                    return (name, template)
                }
                guard named.count == list.count else {
                    throw LoadError(path: configPath, message: "field \"chat_template\": every entry of the list needs a string name and template")
                }
                guard let chosen = named.first(where: { $0.0 == "default" }) else {
                    throw LoadError(
                        path: configPath,
                        message: "field \"chat_template\": no template named \"default\" (it has \(named.map { "\"\($0.0)\"" }.joined(separator: ", ")))")
                }
                source = chosen.1
            default:
                throw LoadError(path: configPath, message: "field \"chat_template\": expected a string or a list of {name, template}")
            }
        }
        guard let source else { return nil }
        var tokens: [String: String] = [:]
        let map = try readObject(folder + "/special_tokens_map.json") ?? [:]
        for name in specialTokenNames {
            if let token = tokenText(config[name]) ?? tokenText(map[name]) { tokens[name] = token }
        }
        let template: ChatTemplate
        do {
            template = try ChatTemplate(source, limits: limits)
        } catch {
            throw LoadError(path: origin, message: error.description)
        }
        return ModelChatTemplate(template: template, specialTokens: tokens, path: origin)
    }

    /// The conversation as the model reads it (see ``ChatTemplate/render(messages:addGenerationPrompt:specialTokens:variables:now:)``).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool = true, now: Date = Date()) throws(ChatTemplateError) -> String {
        try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, specialTokens: specialTokens, now: now)
    }

    /// A special token as tokenizer_config.json writes it: the text, or an AddedToken object with its content.
    static func tokenText(_ value: Any?) -> String? {
        if let text = value as? String { return text }
        if let object = value as? [String: Any], let content = object["content"] as? String { return content }
        return nil
    }

    static func readText(_ path: String, limit: Int) throws(LoadError) -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw LoadError(path: path, message: "cannot be read: \(error.localizedDescription)")
        }
        guard data.count <= limit else { throw LoadError(path: path, message: "\(data.count) bytes, more than the \(limit) a template may have") }
        guard let text = String(data: data, encoding: .utf8) else { throw LoadError(path: path, message: "not UTF-8 text") }
        return text
    }

    static func readObject(_ path: String) throws(LoadError) -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text = try readText(path, limit: 64 << 20)
        do {
            guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw LoadError(path: path, message: "expected a JSON object")
            }
            return object
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(path: path, message: "not valid JSON: \(error.localizedDescription)")
        }
    }
}
