import Foundation

/// Why a chat template could not be parsed or rendered.
public enum ChatTemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The template is not valid jinja2.
    case syntax(String, SourcePosition)
    /// Valid jinja2 this renderer does not implement (a tag, filter, test, function or method), named.
    case unsupported(String, SourcePosition)
    /// The template called `raise_exception(message)`: the conversation does not fit it.
    case raised(String)
    /// Rendering failed (an undefined value used, a type error...), where.
    case runtime(String, SourcePosition)
    /// The template went past a bound of ``ChatTemplateLimits``.
    case limit(String)

    public var description: String {
        switch self {
        case .syntax(let message, let position): "chat template syntax error at \(position): \(message)"
        case .unsupported(let construct, let position): "chat template uses \(construct) at \(position), which is not supported"
        case .raised(let message): "the chat template refused the conversation: \(message)"
        case .runtime(let message, let position): "chat template error at \(position): \(message)"
        case .limit(let message): "chat template limit: \(message)"
        }
    }
}

/// Bounds on a template and its rendering, so that a template from an untrusted model folder cannot hang or
/// exhaust memory.
public struct ChatTemplateLimits: Sendable, Equatable {
    /// The largest template source.
    public var maxTemplateBytes = 1 << 20
    /// The largest rendered text, and the largest string a template may build.
    public var maxOutputBytes = 8 << 20
    /// The longest list a template may build.
    public var maxListItems = 1 << 18
    /// How deeply blocks and expressions may nest.
    public var maxNesting = 200
    /// Steps of work: one per expression and statement, plus one per list item and per 16 bytes of text made.
    public var maxWork = 20_000_000

    public init() {}
}

/// A message of a conversation.
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A value handed to a template: JSON's types, objects keeping their key order.
public indirect enum TemplateValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    case object([Member])

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: TemplateValue
        public init(_ key: String, _ value: TemplateValue) {
            self.key = key
            self.value = value
        }
    }

    var value: Value {
        switch self {
        case .none: .none
        case .bool(let value): .bool(value)
        case .int(let value): .int(value)
        case .double(let value): .double(value)
        case .string(let value): .string(value)
        case .list(let items): .list(items.map(\.value))
        case .object(let members):
            .dictionary(Value.Dictionary(entries: members.map { (Value.string($0.key), $0.value.value) }))
        }
    }
}

/// A chat template (the Jinja subset of Llama, Qwen, SmolLM and Mistral templates), parsed once and rendered
/// as transformers' `apply_chat_template` renders it: jinja2's sandbox with `trim_blocks` and `lstrip_blocks`,
/// `raise_exception`, `strftime_now`, `namespace`, and transformers' `tojson`.
public struct ChatTemplate: Sendable {
    public let source: String
    public let limits: ChatTemplateLimits
    let lexer: Lexer
    let body: [Statement]

    public init(_ source: String, limits: ChatTemplateLimits = ChatTemplateLimits()) throws(ChatTemplateError) {
        guard source.utf8.count <= limits.maxTemplateBytes else {
            throw .limit("the template has \(source.utf8.count) bytes, more than \(limits.maxTemplateBytes)")
        }
        self.source = source
        self.limits = limits
        var lexer = Lexer(source: normalizedSource(source))
        let tokens = try lexer.tokenize()
        self.lexer = lexer
        var parser = Parser(tokens: tokens, lexer: lexer, maxNesting: limits.maxNesting)
        body = try parser.parseTemplate()
    }

    /// The conversation as the model reads it: `messages` as dicts {role, content}, `add_generation_prompt`,
    /// the tokenizer's special tokens (`bos_token`, `eos_token`...), `tools` and `documents` none, as
    /// transformers passes them; `variables` adds or replaces any (e.g. `enable_thinking`).
    public func render(
        messages: [ChatMessage], addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
        variables: [String: TemplateValue] = [:], now: Date = Date()
    ) throws(ChatTemplateError) -> String {
        var context: [String: TemplateValue] = ["tools": .none, "documents": .none]
        for (name, token) in specialTokens { context[name] = .string(token) }
        context["messages"] = .list(messages.map { .object([.init("role", .string($0.role)), .init("content", .string($0.content))]) })
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        context.merge(variables) { _, new in new }
        return try render(context, now: now)
    }

    /// Renders with exactly these variables (plus the functions every template has).
    public func render(_ variables: [String: TemplateValue], now: Date = Date()) throws(ChatTemplateError) -> String {
        var renderer = Renderer(lexer: lexer, limits: limits, now: now, variables: variables.mapValues(\.value))
        _ = try renderer.execute(body)
        return renderer.output
    }
}
