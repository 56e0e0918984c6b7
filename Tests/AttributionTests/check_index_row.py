#!/usr/bin/env python3
"""Checks rows of a `--projection none` gradient index against PyTorch autograd (transformers + PEFT).

For each checkpoint of the index and each record (or the first --records), runs one batch-size-1
backward of the record's training loss (mean cross-entropy over its scored tokens) through the PEFT
adapter of that checkpoint, in float64 by default (--dtype float32 to compare with PyTorch's own float32),
and prints, per record, the relative error |row - torch| / |torch| of the whole row, the worst LoRA block's
|g - ref| / |ref| (and which block) and the worst block's max |g - ref| / max |ref|.

Usage: python check_index_row.py --model MODEL --adapter ADAPTER --data FILE.jsonl --index INDEX [--records N]
Exit status 1 when any block's relative error exceeds --tolerance (default 1e-5).
"""
import argparse
import json
import pathlib

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def sequences(path):
    """(tokens, labels) per record, as Tributary reads them (text as UTF-8 bytes, prompt unscored)."""
    for line in open(path):
        if not line.strip():
            continue
        record = json.loads(line)
        if "prompt_tokens" in record:
            prompt, completion = record["prompt_tokens"], record["completion_tokens"]
        elif "prompt" in record:
            prompt, completion = list(record["prompt"].encode()), list(record["completion"].encode())
        else:
            prompt, completion = [], list(record["text"].encode())
        yield record["id"], prompt + completion, [-100] * len(prompt) + completion


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = parser.parse_args()
    index = pathlib.Path(args.index)
    manifest = json.loads((index / "index.json").read_text())
    assert manifest["projection"]["kind"] == "none", "only exact (--projection none) rows can be checked"
    names = [block["name"] for block in manifest["blocks"]]
    ids = [record["id"] for record in manifest["records"]]
    data = {id_: (tokens, labels) for id_, tokens, labels in sequences(args.data)}
    worst = 0.0
    for position, checkpoint in enumerate(manifest["checkpoints"]):
        folder = pathlib.Path(args.adapter) / checkpoint["name"]
        base = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(folder), is_trainable=True).to(getattr(torch, args.dtype))
        parameters = {name.replace(".default", ""): p for name, p in model.named_parameters() if p.requires_grad}
        assert sorted(parameters) == sorted(names), "index blocks and PEFT tensors differ"
        rows = []
        for shard in manifest["shards"]:
            rows.append(load_file(str(index / shard["files"][position]))["gradients"])
        rows = torch.cat(rows)
        for row, id_ in enumerate(ids[: args.records]):
            if id_ not in data:
                continue
            tokens, labels = data[id_]
            model.zero_grad()
            model(input_ids=torch.tensor([tokens]), labels=torch.tensor([labels])).loss.backward()
            expected = torch.cat([parameters[name].grad.flatten() for name in names]).double()
            got = rows[row].double()
            error = ((got - expected).norm() / expected.norm()).item()
            blocks = []
            for block in manifest["blocks"]:
                begin, end = block["columns"]
                g, r = got[begin:end], expected[begin:end]
                blocks.append((((g - r).norm() / r.norm()).item(), ((g - r).abs().max() / r.abs().max()).item(), block["name"]))
            block_error, block_max, block_name = max(blocks)
            worst = max(worst, block_error)
            print(f"{checkpoint['name']} record {id_}: row {error:.2e}, worst block {block_error:.2e} (max {block_max:.2e}, {block_name})")
    print(f"worst relative error {worst:.2e} (tolerance {args.tolerance:g})")
    raise SystemExit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
