import Foundation
import Testing
import Tokenizers

/// `generate --chat`: the prompt rendered as a user message with the folder's chat template, tokenized with no
/// special token added (as transformers' apply_chat_template), so the template's BOS is the only one.
@Suite("generate --chat")
struct GenerateChatTests {
    struct Report: Decodable {
        let chat_prompt: String?
        let tokens: [Int]
        let prompt_tokens: Int
    }

    /// Short markers: the fixture model's context is 64 tokens.
    static let template = """
        {{- bos_token }}
        {%- for message in messages %}
            {{- message['role'][0] + ':' + message['content'] | trim + '<|eot_id|>' }}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- 'a:' }}
        {%- endif %}
        """

    @Test("the rendered conversation is the prompt, its BOS once, and generation as from that text")
    func chatPrompt() throws {
        let model = try ModelCommandTests.modelWithTokenizer()
        let config: [String: Any] = ["bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": Self.template]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: model + "/tokenizer_config.json"))
        let tokenizer = try BPETokenizer(contentsOf: model + "/tokenizer.json")

        let run = try runEngine([
            "generate", "--model", model, "--chat", "--system", "Be brief.", "--prompt", " Héllo there ", "--max-tokens", "4", "--json",
        ])
        #expect(run.status == 0, "\(run.errors)")
        let report = try JSONDecoder().decode(Report.self, from: run.output)
        let rendered = "<|begin_of_text|>s:Be brief.<|eot_id|>u:Héllo there<|eot_id|>a:"
        #expect(report.chat_prompt == rendered)
        let promptIDs = tokenizer.encode(rendered, addSpecialTokens: false)
        #expect(report.prompt_tokens == promptIDs.count)
        #expect(promptIDs.filter { $0 == tokenizer.prefixTokens.first }.count == 1)
        // transformers 5.25's apply_chat_template(messages, tokenize=True, add_generation_prompt=True) on this
        // tokenizer.json and template (PreTrainedTokenizerFast, bos_token <|begin_of_text|>) gives these ids.
        #expect(promptIDs == [0, 85, 28, 36, 71, 339, 84, 75, 71, 72, 16, 2, 87, 28, 42, 329, 351, 352, 264, 2, 67, 28])

        // The same text without its BOS, as a plain prompt (the tokenizer adds the BOS): the same generation.
        let plain = try runEngine([
            "generate", "--model", model, "--prompt", String(rendered.dropFirst("<|begin_of_text|>".count)), "--max-tokens", "4", "--json",
        ])
        let plainReport = try JSONDecoder().decode(Report.self, from: plain.output)
        #expect(plainReport.chat_prompt == nil)
        #expect(plainReport.prompt_tokens == report.prompt_tokens)
        #expect(plainReport.tokens == report.tokens)
    }

    @Test("a folder without a template, or a template that refuses the conversation, fails naming why")
    func failures() throws {
        let model = try ModelCommandTests.modelWithTokenizer()
        let missing = try runEngine(["generate", "--model", model, "--chat", "--prompt", "hi", "--max-tokens", "1"])
        #expect(missing.status != 0)
        #expect(missing.errors.contains("has no chat template"), "\(missing.errors)")
        let noChat = try runEngine(["generate", "--model", model, "--system", "s", "--prompt", "hi"])
        #expect(noChat.status != 0)
        #expect(noChat.errors.contains("--system is a chat message"), "\(noChat.errors)")
        try "{{ raise_exception('System messages are not supported') if messages[0].role == 'system' }}"
            .write(toFile: model + "/chat_template.jinja", atomically: true, encoding: .utf8)
        let refused = try runEngine(["generate", "--model", model, "--chat", "--system", "s", "--prompt", "hi", "--max-tokens", "1"])
        #expect(refused.status != 0)
        #expect(refused.errors.contains("System messages are not supported"), "\(refused.errors)")
        #expect(refused.errors.contains("chat_template.jinja"), "\(refused.errors)")
    }
}
