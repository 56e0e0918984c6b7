#!/usr/bin/env python3
"""The 'train' workload of shared/reference/WORKLOADS.md, for Tributary and its peer, in one run.

Builds the reference Llama (random weights, fixed seed) and 64 records of 256 tokens, then times
LoRA training (r=8, alpha=16, q,k,v,o; AdamW lr 1e-3; batch 8 x 256; clip 1.0) in PyTorch + PEFT
and in `tributary-engine train`, each over steps 3-10 after 2 warm-up steps, on the same threads.

Usage (from the repository root): .venv/bin/python Benchmarks/peer/train_lora.py [--threads 2]
"""
import argparse
import json
import os
import pathlib
import random
import subprocess
import tempfile
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "reference-llama.json"
STEPS, WARMUP, BATCH, LENGTH = 10, 2, 8, 256


def build_workload(folder):
    config = json.loads(REFERENCE.read_text())
    config.pop("architectures", None)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(folder / "model")
    rng = random.Random(0)
    with open(folder / "records.jsonl", "w") as out:
        for index in range(BATCH * STEPS):
            tokens = [rng.randrange(config["vocab_size"]) for _ in range(LENGTH)]
            out.write(json.dumps({"id": str(index), "contributor": "c", "prompt_tokens": tokens[:1],
                                  "completion_tokens": tokens[1:]}) + "\n")


def peer_tokens_per_second(folder, threads):
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
        rows = records[step * BATCH:(step + 1) * BATCH]
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
    return BATCH * LENGTH * len(steady) / sum(steady)


def tributary_tokens_per_second(folder, threads):
    engine = ROOT / ".build" / "release" / "tributary-engine"
    subprocess.run(["swift", "build", "-c", "release", "--product", "tributary-engine"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    environment = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    output = subprocess.run(
        [str(engine), "train", "--model", str(folder / "model"), "--data", str(folder / "records.jsonl"),
         "--out", str(folder / "adapter"), "--steps", str(STEPS), "--batch-size", str(BATCH), "--rank", "8",
         "--alpha", "16", "--targets", "q,k,v,o", "--lr", "1e-3", "--seq-len", str(LENGTH), "--json"],
        check=True, capture_output=True, text=True, env=environment).stdout
    steps = [json.loads(line) for line in output.splitlines() if line.startswith('{"step"')]
    # Input tokens per second over steps 3-10, counted as for the peer.
    elapsed = [s["elapsed_seconds"] for s in steps]
    return BATCH * LENGTH * (STEPS - WARMUP) / (elapsed[-1] - elapsed[WARMUP - 1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    threads = parser.parse_args().threads
    with tempfile.TemporaryDirectory() as directory:
        folder = pathlib.Path(directory)
        build_workload(folder)
        ours = tributary_tokens_per_second(folder, threads)
        peer = peer_tokens_per_second(folder, threads)
    print(f"LoRA train, reference model, batch {BATCH}x{LENGTH}, {threads} threads, steps {WARMUP + 1}-{STEPS}:")
    print(f"  Tributary          {ours:8.0f} tokens/s")
    print(f"  PyTorch {torch.__version__} + PEFT {peer:8.0f} tokens/s")
    print(f"  ratio              {ours / peer:8.2f}x")


if __name__ == "__main__":
    main()
