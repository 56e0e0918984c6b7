#!/usr/bin/env python3
"""Writes the BPETokenizer test fixtures with Hugging Face `tokenizers`: tiny byte-level BPE tokenizers
trained on a few KB of mixed text, in the shapes real models use, and the library's own ids and decoded
text for tricky and seeded random strings, so the Swift tests check parity without Python.
Run from the repository root: .venv/bin/python Tests/TokenizersTests/make_fixtures.py

Fixtures/<name>/tokenizer.json and Fixtures/<name>/expected.json:
  gpt2              ByteLevel(use_regex) pre-tokenizer, ByteLevel post-processor; added tokens with
                    lstrip / rstrip / single_word and a non-special one
  gpt2-prefix-space the same model with ByteLevel(add_prefix_space=True)
  llama3            Split(Llama 3 regex, Isolated) + ByteLevel(use_regex=False), ignore_merges,
                    TemplateProcessing adding <|begin_of_text|>
  smollm            Digits(individual_digits) + ByteLevel(use_regex), merges as legacy "a b" strings
  qwen2             Qwen2.5 / Qwen3's shape: NFC normalizer, Split(Qwen2 regex, single digits) + ByteLevel,
                    ByteLevel post-processor and decoder, its added tokens (<tool_call>, <think> not special)
  mistral           Mistral-7B-v0.1 / Llama 2's shape: sentencepiece-style BPE with byte_fallback (<0x00>..<0xFF>
                    at ids 3..258), unk_token <unk> with fuse_unk, normalizer Prepend("▁") + Replace(" ", "▁"),
                    no pre-tokenizer, TemplateProcessing adding <s>, decoder Replace + ByteFallback + Fuse + Strip
  mistral-metaspace the same model as transformers converts it today (legacy=False, Mistral v0.3): no normalizer,
                    Metaspace(prepend_scheme "first", split false) pre-tokenizer, the same decoder
  sentencepiece-unk   mistral-metaspace without byte fallback: unknown characters become <unk> (fuse_unk)
  sentencepiece-split Metaspace(prepend_scheme "always", split true) and decoder ByteFallback + Metaspace

Fixtures/corpus.txt: the shared corpus, >= 5,000 seeded strings across scripts, code, digits, whitespace runs and every
added token of every family, one JSON string a line; Fixtures/<name>/corpus.jsonl: per line of the corpus, the ids
(with the template's tokens) as a string of one character per id, U+0100 + id (two UTF-8 bytes each), and the decoded text only where it differs from the
text (`decoded`) or from the decoding without specials (`decoded_with_special`).
"""
import json
import pathlib
import random

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).parent / "Fixtures"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? They'll say we've won.",
    "I'm sure you'd agree: THE DOG'S BOWL WASN'T EMPTY. We're here, they're there, you've been warned.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 1234 56789 3.14159 2,718 1e-9 0x1F 2024-06-30 12:45:00.",
    "Prices rose 12% to $1,299.99 (approx. €1.200) on 03/04/2025; ratio 3:2, score 98.6/100.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "for (int i = 0; i < 10; ++i) {\n\tprintf(\"%d\\n\", i * i);\n}\n\n// done\r\n",
    "    indented    text   with\tmixed \t whitespace  \n\n\n  and trailing spaces   \n",
    "Café naïve résumé façade Ångström Übermensch señor coöperate jalapeño crème brûlée.",
    "Русский текст: Москва — столица России. Україна, Київ. Ελληνικά: Αθήνα, καλημέρα κόσμε.",
    "日本語のテキスト、東京は日本の首都です。中文：你好，世界！这是一个测试。한국어: 안녕하세요 세계.",
    "العربية: مرحبا بالعالم ١٢٣ ٤٥٦. עברית: שלום עולם. हिन्दी: नमस्ते दुनिया १२३.",
    "Emoji: 😀 👍🏽 🇺🇸 ❤️ 👨‍👩‍👧 🎉🎉🎉 and symbols ™ © ® ° ± × ÷ → ← ≤ ≥ ∞ ∑ √ π.",
    "Superscripts x² y³ and fractions ½ ¼, roman Ⅻ Ⅳ, circled ① ②, fullwidth ＡＢＣ１２３.",
    "Mixed CamelCase snake_case kebab-case SCREAMING_CASE dotted.name path/to/file.txt https://example.com/a?b=c",
    "Quotes \"double\" 'single' `back` «guillemets» „German“ ‘curly’ “curly”... ellipsis… dash – — ‐.",
    "Repeated letters aaaaaaa bbbbbb ccccc, repeated punctuation !!!??? ... --- ___ === ***.",
    "<|endoftext|> markers and <mask> tokens appear in text; hello world, hello again, say hello.",
] * 3


BYTE_CHARS = {byte: char for byte, char in zip(
    list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100)),
    map(chr, list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))))}
BYTE_CHARS.update({byte: chr(256 + n) for n, byte in enumerate(b for b in range(256) if b not in BYTE_CHARS)})


def train(pre_tokenizer, special, vocab_size=700, **bpe):
    tokenizer = Tokenizer(models.BPE(**bpe))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=1, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


TRICKY = [
    "", " ", "  ", "a", "Hello world", "Hello, world!", " leading", "trailing ", "  two  spaces  ",
    "it's", "they'RE", "I'M", "We'Ve", "she'd", "you'll", "don'T", "x'ſa", "'s", "''s", "'''", "o'clock",
    "12345", "1234567", "3.14159", "1,000,000", "a1b22c333d4444", "٣٤٥ and ١٢", "x² ½ Ⅻ ①", "１２３",
    "\t", "\t\tindented", "a\tb", "line\nbreak", "\n\n\nnewlines", "crlf\r\nline", "trailing\n", "  \n  x",
    "a \nb", "a\n b", "tab\t\n", "x \t y", "end   ", "a  b", "a   !", "\u00a0nbsp\u00a0", "ideographic\u3000space",
    "line\u2028separator", "vertical\x0btab", "next\x85line", "unit\x1fsep", "zero\u200bwidth", "bom\ufeff",
    "control\x00\x01\x7f", "héllo wörld", "e\u0301 combining", "日本語テキスト", "안녕하세요", "مرحبا",
    "नमस्ते", "👋", "👋🏽 family 👨‍👩‍👧", "🇺🇸🇬🇧", "❤️", "café", "CAFÉ", "naïve", "Ｆｕｌｌｗｉｄｔｈ",
    "<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>", "<|endof", "<|endoftext|",
    "x <mask> y", "x    <mask>y", "<mask>", "[ws]   after", "[ws]", "hello", "hello world", "shello",
    "hellos", "_hello", "hello_", " hello ", "say hello!", "\u0301hello", "\u00b2hello", "\u2160hello", "hello\u00b2",
    "\u200bhello", "\u200dhello", "\u0903hello", "٣hello", "hello٣", "<|begin_of_text|>hi", "<|eot_id|>",
    "<|im_start|>user\nhi<|im_end|>", "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }", "https://example.com/path?q=1&r=2#frag",
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...", "$1,299.99", "plugh xyzzy", " xyzzy!", "xyzzy", "it'ſ", "quick brown", "2024-06-30T12:45:00Z", " " * 40, "x" + " " * 17 + "y", "\n" * 5 + "z",
]

FRAGMENTS = [
    "the", " the", "dog", " fox", "Hello", " world", "'s", "'S", "'ll", "'RE", "'ve", "'d", "'m", "'t", "'ſ",
    "'", "''", "0", "7", "42", "123", "4567", "3.14", "٣", "²", "Ⅻ", "①", "１", " ", "  ", "   ", "\t",
    "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u3000", "\u2028", "\x0b", "\x85", "\x1c", "\u200b",
    ".", ",", "!", "?", "...", "-", "_", "(", ")", "{", "}", "[", "]", "<", ">", "|", "/", "\\", "\"", "#",
    "$", "%", "&", "*", "+", "=", "~", "`", "@", "^", ":", ";", "é", "ß", "Ö", "ñ", "ç", "Ω", "π", "д",
    "Я", "ж", "日", "本", "語", "テ", "한", "글", "ع", "ب", "ש", "न", "्", "e\u0301", "😀", "👋🏽",
    "👨‍👩‍👧", "🇺🇸", "❤️", "™", "→", "∞", "½", "ﬁ", "Ａ", "<|endoftext|>", "<mask>", "[ws]", "hello",
    "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<|endof", "caf", "naïve", "CamelCase",
    " xyzzy", "xyzzy",
]


def random_strings(count, seed):
    rng = random.Random(seed)
    strings = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.15:  # a random code point from a few scripts and symbol blocks
                block = rng.choice([(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x52F), (0x600, 0x6FF), (0x900, 0x97F),
                                    (0x2000, 0x206F), (0x2100, 0x22FF), (0x3000, 0x30FF), (0x4E00, 0x4FFF),
                                    (0xAC00, 0xAD00), (0x1F300, 0x1F64F)])
                parts.append(chr(rng.randint(*block)))
            else:
                parts.append(rng.choice(FRAGMENTS))
        strings.append("".join(parts))
    return strings


def record(name, tokenizer, seed, legacy_merges=False, extra_vocab=()):
    folder = ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    data = json.loads(tokenizer.to_str())
    if legacy_merges:
        data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    # Whole-piece tokens that no merge builds: only ignore_merges finds them.
    vocab = data["model"]["vocab"]
    for text in extra_vocab:
        vocab["".join(BYTE_CHARS[b] for b in text.encode())] = max(vocab.values()) + 1
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    reloaded = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cases = []
    for text in TRICKY + random_strings(250, seed):
        ids = reloaded.encode(text).ids
        cases.append({
            "text": text,
            "ids": ids,
            "plain_ids": reloaded.encode(text, add_special_tokens=False).ids,
            "pieces": ([piece for piece, _ in reloaded.pre_tokenizer.pre_tokenize_str(text)]
                       if reloaded.pre_tokenizer else None),
            "decoded": reloaded.decode(ids, skip_special_tokens=True),
            "decoded_with_special": reloaded.decode(ids, skip_special_tokens=False),
        })
    expected = {"tokenizers": tokenizers.__version__, "vocab_size": reloaded.get_vocab_size(), "cases": cases}
    (folder / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=0) + "\n")


# GPT-2 style.
gpt2 = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), ["<|endoftext|>"])
gpt2.post_processor = processors.ByteLevel(trim_offsets=False)
gpt2.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
gpt2.add_tokens([AddedToken("[ws]", rstrip=True, normalized=False), AddedToken("hello", single_word=True, normalized=True)])
record("gpt2", gpt2, seed=1)

gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
record("gpt2-prefix-space", gpt2, seed=2)

# Llama 3 style.
specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
llama3 = train(pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
    specials, vocab_size=900, ignore_merges=True)
llama3.post_processor = processors.Sequence([
    processors.ByteLevel(trim_offsets=False),
    processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                  special_tokens=[("<|begin_of_text|>", llama3.token_to_id("<|begin_of_text|>"))])])
record("llama3", llama3, seed=3, extra_vocab=[" xyzzy", "'ſ", "quick brown"])

# SmolLM style, with merges written the legacy way ("a b").
smollm = train(pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]),
    ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], vocab_size=600)
record("smollm", smollm, seed=4, legacy_merges=True)

# Qwen2.5 / Qwen3 style: its regex (single digits), NFC, byte-level throughout; added tokens at the vocabulary's end.
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN2_PLAIN = ["<tool_call>", "</tool_call>"]
QWEN2_SPECIAL_2 = ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
QWEN3_PLAIN = ["<tool_response>", "</tool_response>", "<think>", "</think>"]
qwen2 = train(pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
    [], vocab_size=1000)
qwen2.normalizer = normalizers.NFC()
qwen2.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
qwen2.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
for content in QWEN2_SPECIAL + QWEN2_PLAIN + QWEN2_SPECIAL_2 + QWEN3_PLAIN:
    token = AddedToken(content, special=content not in QWEN2_PLAIN + QWEN3_PLAIN, normalized=False)
    if token.special:
        qwen2.add_special_tokens([token])
    else:
        qwen2.add_tokens([token])
record("qwen2", qwen2, seed=5)

# Mistral-7B-v0.1 / Llama 2 style: trained on ▁-words (Metaspace), then given the released JSON's shape.
MISTRAL_SPECIAL = ["<unk>", "<s>", "</s>"]
sentencepiece = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
sentencepiece.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
sentencepiece.train_from_iterator(CORPUS, trainers.BpeTrainer(
    vocab_size=900, min_frequency=1, special_tokens=MISTRAL_SPECIAL, show_progress=False))


def sentencepiece_shape(metaspace, byte_fallback=True, metaspace_decoder=False):
    """The trained model as Mistral's tokenizer.json writes it: <unk> <s> </s>, <0x00>..<0xFF>, then the pieces."""
    data = json.loads(sentencepiece.to_str())
    trained = sorted(data["model"]["vocab"].items(), key=lambda item: item[1])
    vocab = {token: id for id, token in enumerate(MISTRAL_SPECIAL)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for token, _ in trained:
        vocab.setdefault(token, len(vocab))
    data["model"]["vocab"] = vocab
    data["added_tokens"] = [{"id": id, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for id, token in enumerate(MISTRAL_SPECIAL)]
    if metaspace:
        data["normalizer"] = None
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    else:
        data["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        data["pre_tokenizer"] = None
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    data["model"]["byte_fallback"] = byte_fallback
    if metaspace_decoder:
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        data["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}]}
    return Tokenizer.from_str(json.dumps(data))


record("mistral", sentencepiece_shape(metaspace=False), seed=6)
record("mistral-metaspace", sentencepiece_shape(metaspace=True), seed=7)
# Without byte fallback (characters outside the vocabulary become <unk>, fused), and with a splitting Metaspace
# pre-tokenizer and the Metaspace decoder: the other paths of the sentencepiece-style model.
record("sentencepiece-unk", sentencepiece_shape(metaspace=True, byte_fallback=False), seed=8)
record("sentencepiece-split", sentencepiece_shape(metaspace=True, metaspace_decoder=True), seed=9)


# The shared corpus: every family's ids and decoded text for the same >= 5,000 strings.
ALL_ADDED = sorted({"<|endoftext|>", "<mask>", "[ws]", "hello", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                    "<|im_start|>", "<|im_end|>", "<unk>", "<s>", "</s>"} | set(QWEN2_SPECIAL + QWEN2_PLAIN
                                                                                 + QWEN2_SPECIAL_2 + QWEN3_PLAIN))
WORDS = {
    "latin": "café naïve résumé façade Ångström Übermensch señor coöperate jalapeño crème brûlée Øresund łódź "
             "żółć Dvořák İstanbul ıi straße ÆØÅ œuvre ça où già perché São Paulo".split(),
    "english": "the quick brown fox jumps over lazy dog it's they're we've I'm you'd she'll DON'T hello world "
               "model token adapter training gradient attribution".split(),
    "cyrillic": "Москва столица России Україна Київ привет мир съешь ещё этих мягких французских булок Ёлка".split(),
    "greek": "Αθήνα καλημέρα κόσμε ελληνικά ΑΒΓΔ αβγδ Ωμέγα ΐΰ".split(),
    "cjk": "日本語 東京 首都 中文 你好 世界 这是一个测试 한국어 안녕하세요 カタカナ ひらがな 漢字 𠀋 𪚲".split(),
    "rtl": "العربية مرحبا بالعالم ١٢٣ ٤٥٦ עברית שלום עולם".split(),
    "indic": "हिन्दी नमस्ते दुनिया १२३ ক্ষ தமிழ் ไทย ภาษา".split(),
    "emoji": ["😀", "👍🏽", "👍🏿", "🇺🇸", "🇯🇵", "❤️", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🎉", "🧑‍🤝‍🧑", "✌🏻", "#️⃣", "🫠"],
    "code": ["def f(x):", "    return x ** 2", "for (int i = 0; i < n; ++i) {", "}", "\tprintf(\"%d\\n\", i);",
             "const a = [1, 2, 3];", "if x != None and y >= 0:", "SELECT * FROM t WHERE id = 42;", "#include <stdio.h>",
             "fn main() { println!(\"hi\"); }", "x <<= 2; y >>= 3;", "{\"key\": [true, null, 1.5e-3]}", "$ ls -la | grep '.py'",
             "<div class=\"a\">&amp;</div>", "lambda: None", "a->b", "i++", "// comment", "/* block */", "@decorator"],
    "digits": ["0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "0x1F", "1e-9",
               "2024-06-30", "12:45:00", "٣٤٥", "１２３", "²³", "½", "Ⅻ", "①", "99999999999999999999"],
    "spaces": [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", "\u00a0", "\u2002", "\u2003",
               "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\u1680", "\u2028", "\u2029", "\x0b", "\x0c", "\x85",
               " " * 8, "\t \t", "\r\n\r\n"],
    "odd": ["\ufeff", "\u200b", "\u200c", "\u200d", "\u2060", "\ufffd", "\uffff", "\ue000", "\U0010fffd", "\x00",
            "\x01", "\x1b[0m", "\x7f", "e\u0301", "A\u030a", "\u212b", "\u1100\u1161\u11a8", "\u0301", "ﬁ", "Ａ",
            "▁", "▁▁", "Ġ", "Ċ", "<0x41>", "<0xFF>", "<0x", "\\xff", "Ã©", "â€™", "<|", "|>", "<s", "s>", "</"],
}
KINDS = list(WORDS)


def corpus_strings(count, seed):
    rng = random.Random(seed)
    strings = ["", " ", "\ufeff", "\ufeffhello", " leading", "trailing ", "  both  ", "\n", "\r\n", "\t"]
    for token in ALL_ADDED:  # every added token alone, at the ends, between words and spaces, doubled
        strings += [token, f"a{token}b", f" {token} ", f"x  {token}\ny", token * 2, f"{token}hello world",
                    f"hello world{token}", f"\n{token}\t", f"1{token}2", f"é{token}日"]
    strings += TRICKY
    while len(strings) < count:
        mode = rng.random()
        parts = []
        if mode < 0.55:  # mostly one kind, as real text is
            kind = rng.choice(KINDS)
            for _ in range(rng.randint(1, 12)):
                parts.append(rng.choice(WORDS[kind]))
                parts.append(rng.choice([" ", " ", " ", "", "\n", ", ", ". ", "  ", "\t"]))
        else:  # a mix of kinds, added tokens and random code points
            for _ in range(rng.randint(1, 12)):
                roll = rng.random()
                if roll < 0.1:
                    parts.append(rng.choice(ALL_ADDED))
                elif roll < 0.2:
                    block = rng.choice([(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x52F), (0x590, 0x6FF),
                                        (0x900, 0x97F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2100, 0x22FF),
                                        (0x3000, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFF00, 0xFFEF),
                                        (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF)])
                    parts.append(chr(rng.randint(*block)))
                elif roll < 0.4:
                    parts.append(rng.choice(FRAGMENTS))
                else:
                    parts.append(rng.choice(WORDS[rng.choice(KINDS)]))
        if rng.random() < 0.05:
            parts.append(" " * rng.randint(1, 30))
        if rng.random() < 0.05:
            parts.insert(0, rng.choice(WORDS["spaces"]) * rng.randint(1, 5))
        strings.append("".join(parts))
    return strings


def record_corpus(name, strings):
    tokenizer = Tokenizer.from_file(str(ROOT / name / "tokenizer.json"))
    lines = []
    for text in strings:
        ids = tokenizer.encode(text).ids
        assert all(id < 0x700 for id in ids)
        line = {"ids": "".join(chr(0x100 + id) for id in ids)}
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        with_special = tokenizer.decode(ids, skip_special_tokens=False)
        if decoded != text:
            line["decoded"] = decoded
        if with_special != decoded:
            line["decoded_with_special"] = with_special
        lines.append(json.dumps(line, ensure_ascii=False))
    (ROOT / name / "corpus.jsonl").write_text("\n".join(lines) + "\n")


CORPUS_STRINGS = corpus_strings(5000, seed=19)
(ROOT / "corpus.txt").write_text("\n".join(json.dumps(text, ensure_ascii=False) for text in CORPUS_STRINGS) + "\n")
for name in ["gpt2", "llama3", "smollm", "qwen2", "mistral", "mistral-metaspace"]:
    record_corpus(name, CORPUS_STRINGS)
