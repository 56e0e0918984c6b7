#!/usr/bin/env python3
"""The 'train' workload of shared/reference/WORKLOADS.md, for Tributary and its peer, in one run.

Builds the workload's Llama (random weights, fixed seed) and its records of 256 tokens, then times
LoRA training (r=8, alpha=16, q,k,v,o; AdamW lr 1e-3; batch 8 x 256 on the reference model, 4 x 256
at real scale; clip 1.0) in PyTorch + PEFT and in `tributary-engine train`, each in its own process
over steps 3-10 after 2 warm-up steps, on the same threads, and reports each process's peak RSS. The
peer runs twice: with OpenMP's default (active) waiting and with OMP_WAIT_POLICY=PASSIVE.

Usage (from the repository root):
  .venv/bin/python Benchmarks/peer/train_lora.py [--threads 2] [--workload reference|real]
"""
import argparse
import json
import pathlib
import random
import sys
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from workload import add_workload_option, reference_config, run_measured, save_reference_model, tributary_engine

STEPS, WARMUP, LENGTH = 10, 2, 256
BATCH_SIZES = {"reference": 8, "real": 4}


def build_workload(folder, workload):
    config = reference_config(workload)
    save_reference_model(folder / "model", workload=workload)
    rng = random.Random(0)
    with open(folder / "records.jsonl", "w") as out:
        for index in range(BATCH_SIZES[workload] * STEPS):
            tokens = [rng.randrange(config["vocab_size"]) for _ in range(LENGTH)]
            out.write(json.dumps({"id": str(index), "contributor": "c", "prompt_tokens": tokens[:1],
                                  "completion_tokens": tokens[1:]}) + "\n")


def peer_tokens_per_second(folder, threads, batch):
    torch.set_num_threads(threads)
    model = LlamaForCausalLM.from_pretrained(folder / "model", dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    records = [json.loads(line) for line in open(folder / "records.jsonl")]
    times = []
    for step in range(STEPS):
        rows = records[step * batch:(step + 1) * batch]
        ids = torch.tensor([r["prompt_tokens"] + r["completion_tokens"] for r in rows])
        labels = ids.clone()
        labels[:, 0] = -100
        start = time.perf_counter()
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    steady = times[WARMUP:]
    print(json.dumps({"tokens_per_second": batch * LENGTH * len(steady) / sum(steady)}))


def tributary_tokens_per_second(folder, threads, batch):
    output, rss = run_measured(
        [tributary_engine(), "train", "--model", folder / "model", "--data", folder / "records.jsonl",
         "--out", folder / "adapter", "--steps", STEPS, "--batch-size", batch, "--rank", "8",
         "--alpha", "16", "--targets", "q,k,v,o", "--lr", "1e-3", "--seq-len", LENGTH, "--json"], threads)
    steps = [json.loads(line) for line in output.splitlines() if line.startswith('{"step"')]
    # Input tokens per second over steps 3-10, counted as for the peer.
    elapsed = [s["elapsed_seconds"] for s in steps]
    return batch * LENGTH * (STEPS - WARMUP) / (elapsed[-1] - elapsed[WARMUP - 1]), rss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    add_workload_option(parser)
    options = parser.parse_args()
    threads, batch = options.threads, BATCH_SIZES[options.workload]
    if options.peer:
        return peer_tokens_per_second(pathlib.Path(options.peer), threads, batch)
    with tempfile.TemporaryDirectory() as directory:
        folder = pathlib.Path(directory)
        build_workload(folder, options.workload)
        ours, ours_rss = tributary_tokens_per_second(folder, threads, batch)
        peers = {}
        for policy in ["ACTIVE", "PASSIVE"]:
            output, rss = run_measured([sys.executable, __file__, "--peer", folder, "--threads", threads,
                                        "--workload", options.workload], threads, {"OMP_WAIT_POLICY": policy})
            peers[policy] = (json.loads(output)["tokens_per_second"], rss)
    print(f"LoRA train, {options.workload} model, batch {batch}x{LENGTH}, {threads} threads, steps {WARMUP + 1}-{STEPS}:")
    print(f"  Tributary          {ours:8.0f} tokens/s   peak RSS {ours_rss:6.0f} MiB")
    for policy, (peer, rss) in peers.items():
        print(f"  PyTorch {torch.__version__} + PEFT, OMP_WAIT_POLICY={policy:7} {peer:8.0f} tokens/s   peak RSS {rss:6.0f} MiB"
              f"   ratio {ours / peer:5.2f}x")


if __name__ == "__main__":
    main()
