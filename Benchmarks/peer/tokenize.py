#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` on the shared tokenizer test corpus, per family, one thread, in MB
per CPU-second of this thread (per core, whatever else the machine runs):
the peer of the Benchmarks package's `TokenizerThroughput`, timed the same way (one `encode` call per string,
the template's tokens added; whole passes over the corpus until the time is up, the best pass counting), and
the corpus joined by newlines as one text (no per-call overhead).
TOKENIZERS_PARALLELISM=false and no `encode_batch`, so the library runs on one core as ours does.

Usage (from the repository root):
  .venv/bin/python Benchmarks/peer/tokenize.py [--fixtures Tests/TokenizersTests/Fixtures] [--seconds 2] \
      [--tributary Benchmarks/.build/release/TokenizerThroughput]
With --tributary, that binary (the Benchmarks package's TokenizerThroughput) runs right after, on the same strings.
"""
import argparse
import json
import os
import pathlib
import subprocess
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

FAMILIES = ["gpt2", "llama3", "smollm", "qwen2", "mistral", "mistral-metaspace"]

parser = argparse.ArgumentParser()
parser.add_argument("--fixtures", default="Tests/TokenizersTests/Fixtures")
parser.add_argument("--seconds", type=float, default=2)
parser.add_argument("--tributary", help="the TokenizerThroughput binary, run after the library on the same strings")
args = parser.parse_args()
root = pathlib.Path(args.fixtures)
corpus = [json.loads(line) for line in (root / "corpus.txt").read_text().split("\n") if line]  # not splitlines: U+2028
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


for family in FAMILIES:
    tokenizer = Tokenizer.from_file(str(root / family / "tokenizer.json"))
    each, tokens = best_pass(corpus, tokenizer)
    whole, _ = best_pass([joined], tokenizer)
    print(f"{family}: {size / each / 1e6:.2f} MB/s a string at a time ({tokens} tokens per pass, best pass "
          f"{each * 1000:.1f} ms of CPU); {len(joined.encode()) / whole / 1e6:.2f} MB/s as one text")

if args.tributary:
    print("Tributary BPETokenizer (one thread):", flush=True)
    subprocess.run([args.tributary, str(root), str(args.seconds), ",".join(FAMILIES)], check=True)
