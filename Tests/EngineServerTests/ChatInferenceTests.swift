import EngineServer
import Foundation
import LlamaModel
import Logging
import Store
import TensorCore
import Testing
import Tokenizers
import TributaryClient
import WireProtocol

/// INFER's chat field over a real socket: the engine renders the messages with its model folder's template and
/// generates exactly as from the rendered text, with no beginning-of-text token added twice.
@Suite("Chat inference", .serialized)
struct ChatInferenceTests {
    /// The tiny Llama 3 tokenizer of TokenizersTests (its post-processor adds <|begin_of_text|>, id 0).
    static func llama3Tokenizer() throws -> BPETokenizer {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TokenizersTests/Fixtures/llama3/tokenizer.json").path
        return try BPETokenizer(contentsOf: path)
    }

    static let template = """
        {{- bos_token }}
        {%- for message in messages %}
            {%- if (message.role == 'user') != (loop.index0 % 2 == (1 if messages[0].role == 'system' else 0)) and message.role != 'system' %}
                {{- raise_exception('roles must alternate user/assistant') }}
            {%- endif %}
            {{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + message.content | trim + '<|eot_id|>' }}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
        {%- endif %}
        """

    /// A server whose engine has a random model on the Llama 3 tokenizer and, when `template` is given, that chat
    /// template in its model folder's tokenizer_config.json.
    static func start(template: String?) async throws -> (EngineServer, Task<Void, any Error>, URL, BPETokenizer) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-inference-\(UUID().uuidString)")
        let folder = directory.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var config: [String: Any] = ["bos_token": "<|begin_of_text|>", "eos_token": ["content": "<|eot_id|>", "special": true]]
        if let template { config["chat_template"] = template }
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("tokenizer_config.json"))

        let tokenizer = try llama3Tokenizer()
        let modelConfig = LlamaConfig(
            vocabularySize: tokenizer.vocabularySize, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4,
            keyValueHeadCount: 2, maxPositions: 256, rmsNormEpsilon: 1e-5, ropeTheta: 10_000, bosTokenID: 0, eosTokenIDs: [2])
        let model = LlamaModel(
            config: modelConfig, weights: LlamaWeights(random: modelConfig, seed: 11, standardDeviation: 0.5, normRange: 0.5..<1.5))
        let generator = TextGenerator(model: model, tokenizer: tokenizer, stopTokens: [])
        let store = try Store(directory: directory.appendingPathComponent("store"))
        let engine = Engine(store: store, generator: generator, chatTemplate: .load(folder: folder.path), computeThreads: 1)
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.drainTimeout = .seconds(5)
        configuration.handshakeTimeout = .seconds(120)
        var logger = Logger(label: "test.chat")
        logger.logLevel = .warning
        let server = try await EngineServer.bind(configuration, engine: engine, logger: logger)
        return (server, Task { try await server.run() }, directory, tokenizer)
    }

    static func infer(prompt: String, chat: [Wire.ChatMessage]?) -> Message {
        .infer(Wire.Infer(
            adapter: nil, prompt: prompt, maxTokens: 6, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [], method: .off,
            topRecords: 0, fee: 0, idempotencyKey: "", chat: chat))
    }

    @Test("a chat INFER generates the tokens of its rendered prompt sent as text, the template's BOS kept once")
    func chatMatchesRenderedText() async throws {
        let (server, serving, directory, tokenizer) = try await Self.start(template: Self.template)
        let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: server.localPort, token: "")
        let messages = [Wire.ChatMessage(role: "system", content: "Be brief. "), Wire.ChatMessage(role: "user", content: "Héllo, wörld 🎉")]
        let rendered =
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHéllo, wörld 🎉<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        let chat = try await collect(try await connection.stream(Self.infer(prompt: "", chat: messages)))
        // The text path's tokenizer adds the BOS itself: the rendered text without the template's.
        let text = try await collect(try await connection.stream(Self.infer(prompt: String(rendered.dropFirst("<|begin_of_text|>".count)), chat: nil)))
        let expectedPrompt = tokenizer.encode(rendered, addSpecialTokens: false)
        #expect(expectedPrompt.first == 0 && expectedPrompt.dropFirst().contains(0) == false)
        #expect(chat.end?.promptTokens == UInt32(expectedPrompt.count))
        #expect(text.end?.promptTokens == chat.end?.promptTokens)
        #expect(chat.tokens.count == 6)
        #expect(chat.tokens.map(\.token) == text.tokens.map(\.token))
        #expect(chat.text == text.text)
        // The whole rendered text sent as a prompt would begin with two BOS: another prompt.
        let doubled = try await collect(try await connection.stream(Self.infer(prompt: rendered, chat: nil)))
        #expect(doubled.end?.promptTokens == UInt32(expectedPrompt.count + 1))
        await connection.close()
        server.shutdown()
        try await serving.value
        try? FileManager.default.removeItem(at: directory)
    }

    @Test("chat requests refused: with a prompt too, empty, a bad role, a conversation the template refuses, no template")
    func refusals() async throws {
        let (server, serving, directory, _) = try await Self.start(template: Self.template)
        let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: server.localPort, token: "")
        let user = Wire.ChatMessage(role: "user", content: "hi")
        let cases: [(Message, ErrorCode, String)] = [
            (Self.infer(prompt: "x", chat: [user]), .invalidArgument, "prompt and chat are exclusive"),
            (Self.infer(prompt: "", chat: []), .invalidArgument, "1 to 1024 messages"),
            (Self.infer(prompt: "", chat: Array(repeating: user, count: 1025)), .invalidArgument, "got 1025"),
            (Self.infer(prompt: "", chat: [Wire.ChatMessage(role: "", content: "x")]), .invalidArgument, "chat[0].role"),
            (Self.infer(prompt: "", chat: [user, user]), .invalidArgument, "roles must alternate user/assistant"),
        ]
        for (request, code, text) in cases {
            let error = await #expect(throws: ServerError.self) { _ = try await collect(try await connection.stream(request)) }
            #expect(error?.errorCode == code)
            #expect(error?.message.contains(text) == true, "\(error?.message ?? "")")
        }
        await connection.close()
        server.shutdown()
        try await serving.value
        try? FileManager.default.removeItem(at: directory)

        // A model folder without a template, and one whose template uses what the renderer does not support.
        for (template, text) in [(nil, "has no chat template"), ("{% macro m() %}{% endmacro %}", "line 1, column 4")] as [(String?, String)] {
            let (server, serving, directory, _) = try await Self.start(template: template)
            let connection = try await TributaryConnection.connect(host: "127.0.0.1", port: server.localPort, token: "")
            let error = await #expect(throws: ServerError.self) {
                _ = try await collect(try await connection.stream(Self.infer(prompt: "", chat: [user])))
            }
            #expect(error?.errorCode == .failedPrecondition)
            #expect(error?.message.contains(text) == true, "\(error?.message ?? "")")
            // The text path is unaffected.
            let plain = try await collect(try await connection.stream(Self.infer(prompt: "hi", chat: nil)))
            #expect(plain.tokens.count == 6)
            await connection.close()
            server.shutdown()
            try await serving.value
            try? FileManager.default.removeItem(at: directory)
        }
    }
}
