#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` on the shared tokenizer test corpus, per family, one thread, in MB
per CPU-second of this thread (per core, whatever else the machine runs):
the peer of the Benchmarks package's `TokenizerThroughput`, timed the same way (one `encode` call per string,
the template's tokens added; whole passes over the corpus until the time is up, the best pass counting), and
the corpus joined by newlines as one text (no per-call overhead).
TOKENIZERS_PARALLELISM=false and no `encode_batch`, so the library runs on one core as ours does.

Usage (from the repository root):
  .venv/bin/python Benchmarks/peer/tokenizer_throughput.py [--fixtures Tests/TokenizersTests/Fixtures] [--seconds 2] \
      [--tributary Benchmarks/.build/release/TokenizerThroughput]
With --tributary, that binary (the Benchmarks package's TokenizerThroughput) runs right after, on the same strings.
With --large, two 32,000-token tokenizers in the fixtures' qwen2 and mistral shapes are trained on this Python's
standard library sources (a few MB of code and English) and measured too, with the ids of the corpus written
beside them so that TokenizerThroughput checks parity on them as well.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

FAMILIES = ["gpt2", "llama3", "smollm", "qwen2", "mistral", "mistral-metaspace"]

parser = argparse.ArgumentParser()
parser.add_argument("--fixtures", default="Tests/TokenizersTests/Fixtures")
parser.add_argument("--seconds", type=float, default=2)
parser.add_argument("--tributary", help="the TokenizerThroughput binary, run after the library on the same strings")
parser.add_argument("--large", action="store_true", help="also train and measure 32,000-token qwen2 and mistral shapes")
args = parser.parse_args()
root = pathlib.Path(args.fixtures)
corpus = [json.loads(line) for line in (root / "corpus.txt").read_text().split("\n") if line]  # not splitlines: U+2028


def large_tokenizers(folder):
    """The fixtures' qwen2 and mistral tokenizer.json with 32,000-token vocabularies trained on the stdlib sources."""
    sources = sorted(pathlib.Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    texts = [path.read_text(errors="replace") for path in sources]
    for name, size in [("qwen2", 32000), ("mistral", 32000)]:
        data = json.loads((root / name / "tokenizer.json").read_text())
        if name == "qwen2":
            trainer_tokenizer = Tokenizer.from_str(json.dumps({**data, "added_tokens": [], "model": {
                **data["model"], "vocab": {}, "merges": []}}))
            trainer = trainers.BpeTrainer(vocab_size=size, show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            trainer_tokenizer.train_from_iterator(texts, trainer)
            trained = json.loads(trainer_tokenizer.to_str())["model"]
            vocab = trained["vocab"]
            for index, token in enumerate(sorted(data["added_tokens"], key=lambda token: token["id"])):
                token["id"] = len(vocab) + index
        else:
            trainer_tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
            trainer_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
            trainer_tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
                vocab_size=size, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=1000, show_progress=False))
            trained = json.loads(trainer_tokenizer.to_str())["model"]
            vocab = {token: id for id, token in enumerate(["<unk>", "<s>", "</s>"])}
            for byte in range(256):
                vocab[f"<0x{byte:02X}>"] = len(vocab)
            for token, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
                vocab.setdefault(token, len(vocab))
        data["model"]["vocab"], data["model"]["merges"] = vocab, trained["merges"]
        out = folder / f"{name}-32k"
        out.mkdir()
        (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
        tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
        (out / "corpus.jsonl").write_text("".join(
            json.dumps({"ids": "".join(chr(0x100 + id) for id in tokenizer.encode(text).ids)}) + "\n" for text in corpus))
        yield out.name


families = list(FAMILIES)
if args.large:
    large_folder = pathlib.Path(tempfile.mkdtemp(prefix="tokenizers-large-"))
    (large_folder / "corpus.txt").write_text((root / "corpus.txt").read_text())
    large = list(large_tokenizers(large_folder))
    print(f"trained {', '.join(large)} in {large_folder}", file=sys.stderr)
size = sum(len(text.encode()) for text in corpus)
print(f"tokenizers (Python, one thread): corpus: {len(corpus)} strings, {size} bytes of UTF-8")
joined = "\n".join(corpus)


def best_pass(texts, tokenizer):
    """Whole passes until `--seconds` of this thread's CPU time: the best pass's CPU seconds, and its tokens."""
    best, start = float("inf"), time.thread_time()
    while True:
        pass_start = time.thread_time()
        tokens = sum(len(tokenizer.encode(text).ids) for text in texts)
        best = min(best, time.thread_time() - pass_start)
        if time.thread_time() - start >= args.seconds:
            return best, tokens


runs = [(root, family) for family in FAMILIES] + ([(large_folder, family) for family in large] if args.large else [])
for folder, family in runs:
    tokenizer = Tokenizer.from_file(str(folder / family / "tokenizer.json"))
    each, tokens = best_pass(corpus, tokenizer)
    whole, _ = best_pass([joined], tokenizer)
    print(f"{family}: {size / each / 1e6:.2f} MB/s a string at a time ({tokens} tokens per pass, best pass "
          f"{each * 1000:.1f} ms of CPU); {len(joined.encode()) / whole / 1e6:.2f} MB/s as one text")

if args.tributary:
    print("Tributary BPETokenizer (one thread):", flush=True)
    subprocess.run([args.tributary, str(root), str(args.seconds), ",".join(FAMILIES)], check=True)
    if args.large:
        subprocess.run([args.tributary, str(large_folder), str(args.seconds), ",".join(large)], check=True)
