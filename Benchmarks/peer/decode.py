#!/usr/bin/env python3
"""The 'decode' workload of shared/reference/WORKLOADS.md, for Tributary and its peer, in one run.

Saves the reference Llama (random weights, seed 0) as a folder, then greedy-decodes 128 new tokens
after a 32-token prompt, one stream, with a KV cache: transformers' `generate` and Tributary's
`LlamaModel.generate` (the Benchmarks package's `Decode`), each in its own process on the same
threads, timed the same way: the folder loaded, one untimed warm-up generation, then `--runs` timed
generate calls (the prompt's forward pass included), the best counting. Prints tokens/s, their
ratio, each process's peak RSS, and whether the greedy tokens agree. One stream is bound by reading the
weights, so it also measures the machine's memory bandwidth (Benchmarks' MemoryBandwidth, STREAM-style)
and rates each engine's decode as bytes of weights read per second against it.

Usage (from the repository root):
  .venv/bin/python Benchmarks/peer/decode.py [--threads 2] [--runs 3] [--workload reference|real]
"""
import argparse
import json
import pathlib
import random
import sys
import tempfile
import time

import torch
import transformers
from transformers import LlamaForCausalLM

from workload import add_workload_option, memory_bandwidth, run_measured, save_reference_model, tributary_benchmark, weight_bytes

PROMPT_TOKENS, NEW_TOKENS = 32, 128


def prompt_text():
    """32 printable bytes: byte ids for Tributary's byte tokenizer, the same ids for the peer."""
    rng = random.Random(0)
    return "".join(chr(rng.randrange(33, 127)) for _ in range(PROMPT_TOKENS))


def peer(folder, threads, runs):
    """Child process: transformers' generate, best of `runs` after a warm-up."""
    torch.set_num_threads(threads)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([list(prompt_text().encode())])
    arguments = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True)
    rates, tokens = [], []
    with torch.inference_mode():
        model.generate(ids, **arguments)
        for _ in range(runs):
            start = time.perf_counter()
            output = model.generate(ids, **arguments)
            rates.append(NEW_TOKENS / (time.perf_counter() - start))
            tokens = output[0, PROMPT_TOKENS:].tolist()
    print(json.dumps({"tokens_per_second": max(rates), "tokens": tokens}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="timed generations per engine; the best counts")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    add_workload_option(parser)
    options = parser.parse_args()
    if options.peer:
        return peer(options.peer, options.threads, options.runs)

    decode = tributary_benchmark("Decode")
    with tempfile.TemporaryDirectory() as directory:
        folder = pathlib.Path(directory) / "model"
        save_reference_model(folder, workload=options.workload)
        read_per_token = weight_bytes(folder)
        output, ours_rss = run_measured(
            [decode, "--model", folder, "--prompt", prompt_text(), "--max-tokens", NEW_TOKENS, "--runs", options.runs,
             "--json"], options.threads)
        ours = json.loads(output)
        output, peer_rss = run_measured(
            [sys.executable, __file__, "--peer", folder, "--threads", options.threads, "--runs", options.runs], options.threads)
        theirs = json.loads(output)
    bandwidth = memory_bandwidth(options.threads)

    rate = ours["tokens_per_second"]
    assert len(ours["tokens"]) == NEW_TOKENS and ours["prompt_tokens"] == PROMPT_TOKENS
    agree = next((i for i, (a, b) in enumerate(zip(ours["tokens"], theirs["tokens"])) if a != b), NEW_TOKENS)
    print(f"greedy decode, {options.workload} model, prompt {PROMPT_TOKENS}, {NEW_TOKENS} new tokens, one stream, "
          f"{options.threads} threads, best of {options.runs}:")
    print(f"  Tributary                    {rate:8.0f} tokens/s   peak RSS {ours_rss:6.0f} MiB")
    print(f"  transformers {transformers.__version__} generate {theirs['tokens_per_second']:8.0f} tokens/s   "
          f"peak RSS {peer_rss:6.0f} MiB")
    print(f"  ratio                        {rate / theirs['tokens_per_second']:8.2f}x")
    print(f"  greedy tokens agree for the first {agree} of {NEW_TOKENS}")
    read = bandwidth["read_gb_per_second"]
    print(f"  memory bandwidth, {options.threads} threads: read {read:.1f} GB/s, STREAM copy "
          f"{bandwidth['copy_gb_per_second']:.1f} GB/s; weights read per token {read_per_token / 1e6:.0f} MB")
    for name, tokens_per_second in [("Tributary", rate), ("transformers", theirs["tokens_per_second"])]:
        gigabytes = tokens_per_second * read_per_token / 1e9
        print(f"  {name:28} {gigabytes:8.2f} GB/s of weights = {100 * gigabytes / read:5.1f}% of read bandwidth")


if __name__ == "__main__":
    main()
