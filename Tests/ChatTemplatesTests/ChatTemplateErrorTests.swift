import ChatTemplates
import Foundation
import Testing

@Suite("Chat template errors and bounds")
struct ChatTemplateErrorTests {
    @Test("constructs outside the subset are named with their line and column", arguments: [
        ("{% macro greet(name) %}hi{% endmacro %}", "the \"macro\" tag", 1, 4),
        ("ok\n  {{ messages | wordcount }}", "the filter \"wordcount\"", 2, 15),
        ("{% if x is mytest %}{% endif %}", "the test \"mytest\"", 1, 9),
        ("\n\n{% raw %}{{ x }}{% endraw %}", "the raw block", 3, 1),
        ("{{ '%s' % 'x' }}", "printf-style string formatting with %", 1, 9),
        ("{% for m in messages recursive %}{% endfor %}", "recursive for loops", 1, 22),
        ("{{ lipsum() }}", "the function lipsum()", 1, 10),
        ("{{ 'a'.format(1) }}", "the str method format()", 1, 14),
        ("{% filter upper %}x{% endfilter %}", "the \"filter\" tag", 1, 4),
    ] as [(String, String, Int, Int)])
    func unsupported(source: String, construct: String, line: Int, column: Int) throws {
        let error = #expect(throws: ChatTemplateError.self) {
            let template = try ChatTemplate(source)
            _ = try template.render(["messages": .list([]), "x": .int(1)])
        }
        guard case .unsupported(let named, let position)? = error else {
            Issue.record("expected unsupported, got \(String(describing: error))")
            return
        }
        #expect(named == construct)
        #expect(position == SourcePosition(line: line, column: column))
        #expect(error?.description.contains("line \(line), column \(column)") == true)
    }

    @Test("syntax errors name where they are", arguments: [
        ("{% if x %}never closed", "never closed with endif", 1, 1),
        ("{{ 'open", "never closed", 1, 4),
        ("{% endfor %}", "without its opening block", 1, 4),
        ("\n {{ a + }}", "expected an expression", 2, 9),
        ("{% for x y %}{% endfor %}", "expected \"in\"", 1, 10),
        ("{% break %}", "outside a for loop", 1, 4),
        ("{# no end", "never closed with #}", 1, 1),
        ("{{ a ? b }}", "unexpected character", 1, 6),
    ] as [(String, String, Int, Int)])
    func syntax(source: String, message: String, line: Int, column: Int) throws {
        let error = #expect(throws: ChatTemplateError.self) { _ = try ChatTemplate(source) }
        guard case .syntax(let text, let position)? = error else {
            Issue.record("expected a syntax error, got \(String(describing: error))")
            return
        }
        #expect(text.contains(message), "\(text)")
        #expect(position == SourcePosition(line: line, column: column))
    }

    @Test("raise_exception's message, and runtime errors, reach the caller")
    func raisedAndRuntime() throws {
        let mistral = try ChatTemplate(
            "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% endfor %}")
        #expect(throws: ChatTemplateError.raised("Conversation roles must alternate user/assistant/user/assistant/...")) {
            try mistral.render(
                messages: [ChatMessage(role: "assistant", content: "x")], addGenerationPrompt: false)
        }
        #expect(try mistral.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false) == "")
        let undefinedAttribute = try ChatTemplate("{{ messages[0].missing.deeper }}")
        #expect(throws: ChatTemplateError.runtime("'dict object' has no attribute 'missing'", SourcePosition(line: 1, column: 23))) {
            try undefinedAttribute.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false)
        }
        let typeError = try ChatTemplate("{{ 'a' + 1 }}")
        #expect(throws: ChatTemplateError.self) { try typeError.render([:]) }
        let unsafe = try ChatTemplate("{{ messages.__class__ }}")
        #expect(throws: ChatTemplateError.self) { try unsafe.render(["messages": .list([])]) }
        let mutation = try ChatTemplate("{{ messages[0].update({'role': 'x'}) }}")
        #expect(throws: ChatTemplateError.self) {
            try mutation.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false)
        }
    }

    @Test("hostile templates end with a limit error, quickly, instead of hanging or exhausting memory", arguments: [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        // A set inside a loop is the iteration's own: growth across iterations goes through a namespace.
        "{% set ns = namespace(s='aaaaaaaa') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "{{ 'x' * 1000000000 }}",
        "{% set ns = namespace(l=[1, 2]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "{{ range(1000000000) | length }}",
        "{% for i in range(1000000) %}{{ 'spam spam spam spam spam spam spam spam spam spam spam spam' }}{% endfor %}",
        "{{ [1] * 100000000 }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    ])
    func hostile(source: String) throws {
        var limits = ChatTemplateLimits()
        limits.maxWork = 2_000_000
        let template = try ChatTemplate(source, limits: limits)
        let start = ContinuousClock.now
        let error = #expect(throws: ChatTemplateError.self) { _ = try template.render([:]) }
        guard case .limit? = error else {
            Issue.record("expected a limit, got \(String(describing: error))")
            return
        }
        #expect(ContinuousClock.now - start < .seconds(60))
    }

    @Test("nesting past the bound is an error, not a stack overflow")
    func deepNesting() throws {
        for source in [String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000),
                       String(repeating: "{% if true %}", count: 3000) + String(repeating: "{% endif %}", count: 3000),
                       "{{ " + String(repeating: "not ", count: 5000) + "true }}",
                       "{{ " + String(repeating: "-", count: 5000) + "1 }}",
                       "{{ x" + String(repeating: "[0]", count: 5000) + " }}",
                       "{{ 1" + String(repeating: " + 1", count: 100_000) + " }}",
                       "{{ x" + String(repeating: "|trim", count: 100_000) + " }}"] {
            let wrapped = source.hasPrefix("(") ? "{{ " + source + " }}" : source
            #expect(throws: ChatTemplateError.self) { _ = try ChatTemplate(wrapped) }
        }
        #expect(throws: ChatTemplateError.limit("the template has 2000000 bytes, more than 1048576")) {
            _ = try ChatTemplate(String(repeating: "a", count: 2_000_000))
        }
    }

    @Test("values built deeper than the bound, or holding themselves, end with an error")
    func deepValues() throws {
        for source in [
            "{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = {'k': ns.d} %}{% endfor %}",
            "{% set ns = namespace(n=none) %}{% for i in range(100000) %}{% set ns.n = namespace(p=ns.n) %}{% endfor %}",
            "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}",
            "{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}",
            "{% set ns = namespace() %}{% set ns.me = [ns, ns, ns, ns, ns, ns] %}",
            "{% set ns = namespace(l=[1]) %}{% for i in range(300) %}{% set ns.l = [ns.l, ns.l, ns.l] %}{% endfor %}",
            "{% set l = [[[[[[[[[[1]]]]]]]]]] %}{% set l = [[[[[[[[[[l]]]]]]]]]] %}" + String(repeating: "{% set l = [[[[[[[[[[l]]]]]]]]]] %}", count: 30),
        ] {
            let error = #expect(throws: ChatTemplateError.self) { try ChatTemplate(source).render([:]) }
            guard case .limit? = error else {
                Issue.record("expected a limit, got \(String(describing: error))")
                continue
            }
        }
    }

    @Test("random bytes and random token soups never trap")
    func fuzz() throws {
        var generator = SeededGenerator(seed: 19)
        let pieces = ["{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "if", "for", "in", "endif", "endfor", "set", "x", "=", "'", "\"",
                      "(", ")", "[", "]", "{", "}", ":", ",", "|", "trim", "is", "not", "defined", "loop", ".", "1", "messages", "~", "\n", " ", "é"]
        for _ in 0..<3000 {
            var source = ""
            for _ in 0..<Int.random(in: 1...24, using: &generator) { source += pieces.randomElement(using: &generator)! }
            if let template = try? ChatTemplate(source) {
                _ = try? template.render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true)
            }
        }
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if let template = try? ChatTemplate(String(decoding: bytes, as: UTF8.self)) { _ = try? template.render([:]) }
        }
    }

    @Test("a model folder's template: chat_template.jinja first, else tokenizer_config.json's string or named list")
    func folderTemplates() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chat-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func writeConfig(_ object: [String: Any]) throws {
            try JSONSerialization.data(withJSONObject: object).write(to: folder.appendingPathComponent("tokenizer_config.json"))
        }
        let messages = [ChatMessage(role: "user", content: "hi")]
        #expect(try ModelChatTemplate.load(folder: folder.path) == nil)
        try writeConfig(["bos_token": ["content": "<s>", "lstrip": false], "eos_token": "</s>"])
        #expect(try ModelChatTemplate.load(folder: folder.path) == nil)
        try writeConfig(["bos_token": ["content": "<s>"], "eos_token": "</s>", "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"])
        #expect(try ModelChatTemplate.load(folder: folder.path)?.render(messages: messages) == "<s>hi</s>")
        try writeConfig([
            "bos_token": "<s>",
            "chat_template": [["name": "tool_use", "template": "tools"], ["name": "default", "template": "default {{ bos_token }}"]],
        ])
        #expect(try ModelChatTemplate.load(folder: folder.path)?.render(messages: messages) == "default <s>")
        try writeConfig(["chat_template": [["name": "tool_use", "template": "tools"]]])
        #expect(throws: ModelChatTemplate.LoadError.self) { try ModelChatTemplate.load(folder: folder.path) }
        try writeConfig(["chat_template": 7])
        #expect(throws: ModelChatTemplate.LoadError.self) { try ModelChatTemplate.load(folder: folder.path) }
        try "from the file {{ messages | length }}\n".write(to: folder.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        let fromFile = try #require(try ModelChatTemplate.load(folder: folder.path))
        #expect(try fromFile.render(messages: messages) == "from the file 1")
        #expect(fromFile.path.hasSuffix("chat_template.jinja"))
        try "{% if %}".write(to: folder.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        let error = #expect(throws: ModelChatTemplate.LoadError.self) { try ModelChatTemplate.load(folder: folder.path) }
        #expect(error?.description.contains("chat_template.jinja") == true)
        #expect(error?.description.contains("line 1, column 7") == true)
        try Data([0x7B, 0x7B, 0xFF]).write(to: folder.appendingPathComponent("chat_template.jinja"))
        #expect(throws: ModelChatTemplate.LoadError.self) { try ModelChatTemplate.load(folder: folder.path) }
    }
}

/// SplitMix64: the same sequence on every machine.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
