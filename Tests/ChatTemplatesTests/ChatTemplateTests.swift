import ChatTemplates
import Foundation
import Testing

/// The fixture of make_fixtures.py: templates, and what transformers' renderer made of each case.
struct TemplateFixture {
    let templates: [String: String]
    let cases: [TemplateValue]
    let now: Date

    static let shared: TemplateFixture = {
        let url = Bundle.module.url(forResource: "chat_templates", withExtension: "json", subdirectory: "Fixtures")!
        let root = try! OrderedJSON.parse(try! Data(contentsOf: url))
        guard case .object(let templateMembers)? = root["templates"], case .list(let cases)? = root["cases"],
            case .string(let local)? = root["now_local"]
        else { fatalError("malformed fixture") }
        var templates: [String: String] = [:]
        for member in templateMembers { templates[member.key] = member.value.stringValue! }
        // The fixture's "now" is a local time, as datetime.now() gives it.
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone.current
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return TemplateFixture(templates: templates, cases: cases, now: formatter.date(from: local)!)
    }()
}

@Suite("Chat templates against transformers' renderer")
struct ChatTemplateFixtureTests {
    @Test("every fixture case renders byte for byte as transformers' render_jinja_template, or fails as it does")
    func fixtureCases() throws {
        let fixture = TemplateFixture.shared
        #expect(fixture.cases.count > 150)
        var compiled: [String: ChatTemplate] = [:]
        for (name, source) in fixture.templates { compiled[name] = try ChatTemplate(source) }
        var checked = 0
        for testCase in fixture.cases {
            let name = testCase["template"]!.stringValue!
            let label = "\(name) / \(testCase["conversation"]!.stringValue!) / add_generation_prompt \(testCase["add_generation_prompt"]!)"
            var variables: [String: TemplateValue] = ["tools": .none, "documents": .none]
            if case .object(let members)? = testCase["variables"] {
                for member in members { variables[member.key] = member.value }
            }
            variables["messages"] = testCase["messages"]!
            variables["add_generation_prompt"] = testCase["add_generation_prompt"]!
            let template = try #require(compiled[name])
            if let expected = testCase["expected"]?.stringValue {
                let rendered = try template.render(variables, now: fixture.now)
                #expect(Array(rendered.utf8) == Array(expected.utf8), "\(label)\n--- got:\n\(rendered)\n--- expected:\n\(expected)")
            } else {
                #expect(throws: ChatTemplateError.self, "\(label)") { try template.render(variables, now: fixture.now) }
                if case .bool(true)? = testCase["raised"], let message = testCase["error"]?.stringValue {
                    #expect(throws: ChatTemplateError.raised(message), "\(label)") { try template.render(variables, now: fixture.now) }
                }
            }
            checked += 1
        }
        #expect(checked == fixture.cases.count)
    }

    @Test("the typed API renders messages with the special tokens, tools and documents none, as apply_chat_template")
    func typedMessages() throws {
        let fixture = TemplateFixture.shared
        let template = try ChatTemplate(try #require(fixture.templates["llama31"]))
        let messages = [ChatMessage(role: "system", content: "You are terse."), ChatMessage(role: "user", content: "Hi there")]
        let rendered = try template.render(
            messages: messages, addGenerationPrompt: true,
            specialTokens: ["bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"])
        let expected = fixture.cases.first {
            $0["template"]?.stringValue == "llama31" && $0["conversation"]?.stringValue == "system" && $0["add_generation_prompt"] == .bool(true)
        }?["expected"]?.stringValue
        #expect(rendered == expected)
    }

    @Test("Llama 3.2's strftime_now gives the render's date")
    func strftimeNow() throws {
        let template = try ChatTemplate("{{ strftime_now('%d %b %Y|%Y-%m-%d|%A %B %j') }}")
        let components = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone.current, year: 2025, month: 3, day: 9, hour: 12)
        let date = try #require(components.date)
        #expect(try template.render([:], now: date) == "09 Mar 2025|2025-03-09|Sunday March 068")
    }
}
