import ChatTemplates
import LlamaModel
import ProtocolServer
import WireProtocol

/// The chat template of the engine's base model folder, for INFER's `chat` field: loaded once when the engine
/// starts; a template that cannot be used fails only the chat requests, naming why.
public enum EngineChatTemplate: Sendable {
    case absent
    case usable(ModelChatTemplate)
    case unusable(String)

    /// The template of a model folder (chat_template.jinja, else tokenizer_config.json's chat_template).
    public static func load(folder: String) -> EngineChatTemplate {
        do {
            return try ModelChatTemplate.load(folder: folder).map(EngineChatTemplate.usable) ?? .absent
        } catch {
            return .unusable(error.description)
        }
    }
}

/// What an INFER generates after: its prompt text, or its chat messages with the template that renders them.
enum InferencePrompt: Sendable {
    case text(String)
    case chat([ChatMessage], ModelChatTemplate)

    /// The most messages a chat may have, and the longest role.
    static let maxChatMessages = 1024
    static let maxRoleBytes = 64

    /// Checks the request's prompt fields: text or chat, never both; a chat within bounds, on an engine with a template.
    init(_ request: Wire.Infer, template: EngineChatTemplate) throws {
        guard let chat = request.chat else {
            self = .text(request.prompt)
            return
        }
        guard request.prompt.isEmpty else {
            throw RequestFailure(
                .invalidArgument, "prompt and chat are exclusive: send the prompt as text, or the chat's messages with an empty prompt")
        }
        guard !chat.isEmpty, chat.count <= Self.maxChatMessages else {
            throw RequestFailure(.invalidArgument, "chat must have 1 to \(Self.maxChatMessages) messages, got \(chat.count)")
        }
        for (index, message) in chat.enumerated() {
            guard !message.role.isEmpty, message.role.utf8.count <= Self.maxRoleBytes,
                !message.role.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw RequestFailure(
                    .invalidArgument, "chat[\(index)].role must be 1 to \(Self.maxRoleBytes) bytes without control characters")
            }
        }
        switch template {
        case .absent:
            throw RequestFailure(
                .failedPrecondition,
                "the engine's base model folder has no chat template (chat_template.jinja, or chat_template in tokenizer_config.json): send the prompt as text")
        case .unusable(let reason):
            throw RequestFailure(.failedPrecondition, "the engine's chat template cannot be used: \(reason)")
        case .usable(let template):
            self = .chat(chat.map { ChatMessage(role: $0.role, content: $0.content) }, template)
        }
    }

    /// The prompt's text and ids: a text as the tokenizer encodes a prompt; a chat rendered with its template,
    /// ending with the assistant's turn, and encoded with no special token added (as transformers'
    /// apply_chat_template does: the template writes any BOS itself).
    func tokens(for generator: TextGenerator) throws -> (text: String, tokens: [Int]) {
        switch self {
        case .text(let text):
            return (text, generator.promptTokens(text))
        case .chat(let messages, let template):
            let text: String
            do {
                text = try template.render(messages: messages, addGenerationPrompt: true)
            } catch {
                switch error {
                case .raised, .limit: throw RequestFailure(.invalidArgument, "chat: \(error.description)")
                default: throw RequestFailure(.failedPrecondition, "\(template.path): \(error.description)")
                }
            }
            return (text, generator.tokenizer.bareTokens(text))
        }
    }
}
