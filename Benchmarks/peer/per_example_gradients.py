#!/usr/bin/env python3
"""The 'per-example gradients' workload of shared/reference/WORKLOADS.md, for Tributary and its peer, in one run.

Builds the workload's Llama (random weights, fixed seed), a PEFT LoRA adapter on it (r=8, alpha=16,
q,k,v,o, random A and B) and records of 128 tokens (64 on the reference model, 32 at real scale; loss
on every token), then extracts the exact LoRA gradient of every record, each engine in its own process
measured for its peak RSS:

- peer: PyTorch + PEFT, one batch-size-1 backward per record, collecting the lora grads (the way the
  DataInf and LESS reference code does), after 2 warm-up records;
- Tributary: `tributary-engine index --projection none` (packed backward passes, per-example
  gradients from LoRA's structure), records/s and tokens/s as the command reports them, index
  writing included; then the same with the factored projection at 128 columns per LoRA matrix.

It prints both rates, the ratio, and the largest relative difference between the two engines' rows.

Usage (from the repository root):
  .venv/bin/python Benchmarks/peer/per_example_gradients.py [--threads 2] [--workload reference|real]
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
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

from workload import add_workload_option, reference_config, run_measured, save_reference_model, tributary_engine

LENGTH, WARMUP = 128, 2
RECORD_COUNTS = {"reference": 64, "real": 32}
FACTORED_DIM = 128


def build_workload(folder, workload):
    config = reference_config(workload)
    save_reference_model(folder / "model", workload=workload)
    base = LlamaForCausalLM.from_pretrained(folder / "model", dtype=torch.float32)
    # init_lora_weights=False: B random too, so every gradient is non-zero.
    adapter = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=False,
                                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    adapter.save_pretrained(folder / "adapter")
    rng = random.Random(0)
    with open(folder / "records.jsonl", "w") as out:
        for index in range(RECORD_COUNTS[workload]):
            tokens = [rng.randrange(config["vocab_size"]) for _ in range(LENGTH)]
            # The first token is never a target; every other one is scored.
            out.write(json.dumps({"id": str(index), "contributor": "c", "prompt_tokens": tokens[:1],
                                  "completion_tokens": tokens[1:]}) + "\n")


def peer(folder, threads):
    """Child process: one batch-size-1 backward per record; saves the rows beside the workload and prints the rate."""
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
    rate = (len(records) - WARMUP) / (time.perf_counter() - start)
    torch.save(rows, folder / "peer-rows.pt")
    print(json.dumps({"records_per_second": rate}))


def tributary(folder, threads, projection):
    """The index command's JSON summary, its peak RSS, the manifest and the rows of its one shard."""
    out = folder / f"index-{projection[1]}"
    output, rss = run_measured(
        [tributary_engine(), "index", "--model", folder / "model", "--adapter", folder / "adapter",
         "--data", folder / "records.jsonl", "--out", out, "--json"] + projection, threads)
    summary = json.loads(output.splitlines()[-1])
    manifest = json.loads((out / "index.json").read_text())
    rows = load_file(str(out / manifest["shards"][0]["files"][0]))["gradients"]
    return summary, rss, manifest, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    add_workload_option(parser)
    options = parser.parse_args()
    threads = options.threads
    if options.peer:
        return peer(pathlib.Path(options.peer), threads)
    with tempfile.TemporaryDirectory() as directory:
        folder = pathlib.Path(directory)
        build_workload(folder, options.workload)
        summary, ours_rss, manifest, ours = tributary(folder, threads, ["--projection", "none"])
        factored, factored_rss, _, _ = tributary(folder, threads, ["--projection", "factored", "--dim", str(FACTORED_DIM)])
        output, peer_rss = run_measured([sys.executable, __file__, "--peer", folder, "--threads", threads], threads)
        peer_rate = json.loads(output)["records_per_second"]
        peer_rows = torch.load(folder / "peer-rows.pt")
    names = [block["name"] for block in manifest["blocks"]]
    worst = max(((ours[i] - torch.cat([row[n] for n in names])).norm() / torch.cat([row[n] for n in names]).norm()).item()
                for i, row in enumerate(peer_rows))
    rate = summary["records_per_second"]
    print(f"Per-example LoRA gradients, {options.workload} model, {len(peer_rows)} records x {LENGTH} tokens, "
          f"r=8 q,k,v,o, {threads} threads:")
    print(f"  Tributary (index, exact)    {rate:8.1f} records/s  {summary['tokens_per_second']:8.0f} tokens/s"
          f"   peak RSS {ours_rss:6.0f} MiB")
    print(f"  PyTorch {torch.__version__} + PEFT, bs 1 {peer_rate:8.1f} records/s  {peer_rate * LENGTH:8.0f} tokens/s"
          f"   peak RSS {peer_rss:6.0f} MiB")
    print(f"  ratio                       {rate / peer_rate:8.2f}x")
    print(f"  Tributary (index, factored --dim {FACTORED_DIM}, {factored['width']} columns) "
          f"{factored['records_per_second']:8.1f} records/s  {factored['tokens_per_second']:8.0f} tokens/s"
          f"   peak RSS {factored_rss:6.0f} MiB")
    print(f"  largest relative difference of a row: {worst:.1e}")


if __name__ == "__main__":
    main()
