#!/usr/bin/env python3
"""The 'per-example gradients' workload of shared/reference/WORKLOADS.md, for Tributary and its peer, in one run.

Builds the reference Llama (random weights, fixed seed), a PEFT LoRA adapter on it (r=8, alpha=16,
q,k,v,o, random A and B) and 64 records of 128 tokens (loss on every token), then extracts the exact
LoRA gradient of every record:

- peer: PyTorch + PEFT, one batch-size-1 backward per record, collecting the lora grads (the way the
  DataInf and LESS reference code does), after 2 warm-up records;
- Tributary: `tributary-engine index --projection none` (packed backward passes, per-example
  gradients from LoRA's structure), records/s and tokens/s as the command reports them, index
  writing included; then the same with the factored projection at 128 columns per LoRA matrix.

It prints both rates, the ratio, and the largest relative difference between the two engines' rows.

Usage (from the repository root): .venv/bin/python Benchmarks/peer/per_example_gradients.py [--threads 2]
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
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "reference-llama.json"
RECORDS, LENGTH, WARMUP = 64, 128, 2
FACTORED_DIM = 128


def build_workload(folder):
    config = json.loads(REFERENCE.read_text())
    config.pop("architectures", None)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(folder / "model")
    base = LlamaForCausalLM.from_pretrained(folder / "model", dtype=torch.float32)
    # init_lora_weights=False: B random too, so every gradient is non-zero.
    adapter = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False,
                                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    adapter.save_pretrained(folder / "adapter")
    rng = random.Random(0)
    with open(folder / "records.jsonl", "w") as out:
        for index in range(RECORDS):
            tokens = [rng.randrange(config["vocab_size"]) for _ in range(LENGTH)]
            # The first token is never a target; every other one is scored.
            out.write(json.dumps({"id": str(index), "contributor": "c", "prompt_tokens": tokens[:1],
                                  "completion_tokens": tokens[1:]}) + "\n")


def peer(folder, threads):
    torch.set_num_threads(threads)
    from peft import PeftModel
    base = LlamaForCausalLM.from_pretrained(folder / "model", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(folder / "adapter"), is_trainable=True)
    parameters = [(name.replace(".default", ""), p) for name, p in model.named_parameters() if p.requires_grad]
    records = [json.loads(line) for line in open(folder / "records.jsonl")]
    rows, start = [], None
    for index, record in enumerate(records):
        if index == WARMUP:
            start = time.perf_counter()
        ids = torch.tensor([record["prompt_tokens"] + record["completion_tokens"]])
        labels = ids.clone()
        labels[:, 0] = -100
        model.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        rows.append({name: p.grad.detach().flatten().clone() for name, p in parameters})
    return (RECORDS - WARMUP) / (time.perf_counter() - start), rows


def tributary(folder, threads, projection):
    """The index command's JSON summary, the manifest and the rows of its one shard."""
    engine = ROOT / ".build" / "release" / "tributary-engine"
    subprocess.run(["swift", "build", "-c", "release", "--product", "tributary-engine"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    environment = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = folder / f"index-{projection[1]}"
    output = subprocess.run(
        [str(engine), "index", "--model", str(folder / "model"), "--adapter", str(folder / "adapter"),
         "--data", str(folder / "records.jsonl"), "--out", str(out), "--json"] + projection,
        check=True, capture_output=True, text=True, env=environment).stdout
    summary = json.loads(output.splitlines()[-1])
    manifest = json.loads((out / "index.json").read_text())
    rows = load_file(str(out / manifest["shards"][0]["files"][0]))["gradients"]
    return summary, manifest, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    threads = parser.parse_args().threads
    with tempfile.TemporaryDirectory() as directory:
        folder = pathlib.Path(directory)
        build_workload(folder)
        summary, manifest, ours = tributary(folder, threads, ["--projection", "none"])
        factored, _, _ = tributary(folder, threads, ["--projection", "factored", "--dim", str(FACTORED_DIM)])
        peer_rate, peer_rows = peer(folder, threads)
    names = [block["name"] for block in manifest["blocks"]]
    worst = max(((ours[i] - torch.cat([row[n] for n in names])).norm() / torch.cat([row[n] for n in names]).norm()).item()
                for i, row in enumerate(peer_rows))
    rate = summary["records_per_second"]
    print(f"Per-example LoRA gradients, reference model, {RECORDS} records x {LENGTH} tokens, r=8 q,k,v,o, {threads} threads:")
    print(f"  Tributary (index, exact)    {rate:8.1f} records/s  {summary['tokens_per_second']:8.0f} tokens/s")
    print(f"  PyTorch {torch.__version__} + PEFT, bs 1 {peer_rate:8.1f} records/s  {peer_rate * LENGTH:8.0f} tokens/s")
    print(f"  ratio                       {rate / peer_rate:8.2f}x")
    print(f"  Tributary (index, factored --dim {FACTORED_DIM}, {factored['width']} columns) "
          f"{factored['records_per_second']:8.1f} records/s  {factored['tokens_per_second']:8.0f} tokens/s")
    print(f"  largest relative difference of a row: {worst:.1e}")


if __name__ == "__main__":
    main()
