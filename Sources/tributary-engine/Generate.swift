import ArgumentParser
import ChatTemplates
import Foundation
import LlamaModel

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text after a prompt, streaming it to standard output as it is produced.",
        discussion: """
            The model folder's tokenizer.json (byte-level BPE) is used when it has one; its \
            post-processor adds any beginning-of-text token. Without one, tokens are bytes and the \
            config's bos_token_id is put before the prompt. Generation stops at an eos_token_id of \
            generation_config.json (else config.json), which is not printed.

            With --chat the prompt is a user message (after a --system message, when given), rendered with the \
            folder's chat template (chat_template.jinja, else tokenizer_config.json's chat_template) and its special \
            tokens, ending with the assistant's turn; the rendered text is tokenized with no special token added, as \
            transformers' apply_chat_template does (the template writes any beginning-of-text token itself).
            """)

    @Option(help: "A Hugging Face model folder (config.json, model.safetensors or a sharded index, tokenizer.json).")
    var model: String

    @Option(help: "A PEFT LoRA adapter folder to apply.")
    var adapter: String?

    @Option(help: "The prompt text (with --chat: the user's message).")
    var prompt: String

    @Flag(help: "Render the prompt as a user message with the model folder's chat template.")
    var chat = false

    @Option(help: "With --chat: a system message before the user's.")
    var system: String?

    @Option(help: "The most tokens to generate.")
    var maxTokens = 128

    @Option(help: "0: greedy decoding (the default); above 0: sample, logits divided by this.")
    var temperature: Float = 0

    @Option(help: "Sample only from the k most likely tokens.")
    var topK: Int?

    @Option(help: "Sample only from the most likely tokens whose probabilities sum to this, in (0, 1].")
    var topP: Float = 1

    @Option(help: "The seed of sampling: the same seed gives the same text.")
    var seed: UInt64 = 0

    @Option(help: "Stop once the text contains this, which is left out (repeat for several).")
    var stop: [String] = []

    @Flag(help: """
        Print nothing while generating, then one JSON object: text, tokens (the generated ids), \
        chat_prompt (with --chat: the rendered template), \
        stop_reason (stop_token, stop_sequence, max_tokens or context_full), prompt_tokens, generated_tokens, \
        tokens_per_second (generated tokens over the time after the prompt's forward pass), \
        prompt_seconds and generation_seconds (the prompt's forward pass, and the time after it), \
        weight_bytes_mapped (F32 weights used in place from the mapped file) and \
        weight_bytes_alignment_copied (F32 weights copied because the file left them misaligned for Float).
        """)
    var json = false

    var options: GenerationOptions {
        GenerationOptions(
            maxNewTokens: maxTokens,
            sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed),
            stopSequences: stop)
    }

    func validate() throws {
        do {
            try options.validate()
        } catch {
            throw ValidationError(error.description)
        }
        if system != nil && !chat {
            throw ValidationError("--system is a chat message: give --chat too")
        }
        if temperature == 0 && (topK != nil || topP != 1) {
            throw ValidationError("--top-k and --top-p apply to sampling: give a --temperature above 0")
        }
    }

    func run() throws {
        let generator: TextGenerator
        let lora: LoRAAdapter?
        do {
            generator = try TextGenerator(folder: model)
            lora = try adapter.map { try LoRAAdapter(folder: $0, model: generator.model.config) }
        } catch {
            throw CommandFailure("\(error)")
        }
        let chatPrompt = chat ? try renderChat() : nil
        let promptTokens = chatPrompt.map(generator.tokenizer.bareTokens) ?? generator.promptTokens(prompt)
        let output = FileHandle.standardOutput
        let result: GenerationResult
        do {
            result = try generator.generate(promptTokens: promptTokens, options: options, adapter: lora) { piece in
                if !json && !piece.text.isEmpty { output.write(Data(piece.text.utf8)) }
            }
        } catch {
            throw CommandFailure(error.description)
        }
        guard json else { return }
        let report = Report(
            chat_prompt: chatPrompt, text: result.text, tokens: result.tokens, stop_reason: result.stopReason.rawValue,
            prompt_tokens: result.promptTokenCount, generated_tokens: result.tokens.count,
            tokens_per_second: result.tokensPerSecond,
            prompt_seconds: result.timings.promptSeconds, generation_seconds: result.timings.generationSeconds,
            weight_bytes_mapped: generator.model.weights.mappedBytes,
            weight_bytes_alignment_copied: generator.model.weights.alignmentCopyBytes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }

    /// The conversation (--system, then --prompt as the user's message) rendered with the folder's chat template.
    func renderChat() throws -> String {
        let template: ModelChatTemplate?
        do {
            template = try ModelChatTemplate.load(folder: model)
        } catch {
            throw CommandFailure(error.description)
        }
        guard let template else {
            throw CommandFailure("\(model) has no chat template: no chat_template.jinja, and no chat_template in tokenizer_config.json")
        }
        var messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        messages.append(ChatMessage(role: "user", content: prompt))
        do {
            return try template.render(messages: messages, addGenerationPrompt: true)
        } catch {
            throw CommandFailure("\(template.path): \(error.description)")
        }
    }

    struct Report: Encodable {
        /// With --chat: the text the chat template made of the messages.
        let chat_prompt: String?
        let text: String
        let tokens: [Int]
        let stop_reason: String
        let prompt_tokens: Int
        let generated_tokens: Int
        let tokens_per_second: Double
        let prompt_seconds: Double
        let generation_seconds: Double
        let weight_bytes_mapped: Int
        let weight_bytes_alignment_copied: Int
    }
}
