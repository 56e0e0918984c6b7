#!/usr/bin/env python3
"""Writes Fixtures/real-width: the Float64 reference per-example LoRA gradients of a Llama with SmolLM2-135M's
widths (hidden 576, intermediate 1536, 9 query heads, 3 key/value heads, head_dim 64, tied embeddings) but 2 layers
and a vocabulary of 8,192, for PrecisionTests (issue 19: per-example gradients must be within 1e-5 of Float64).

The weights are not stored: every tensor is filled from a counter-based generator (splitmix64 of seed + name's
position) that PrecisionTests.swift reproduces bit for bit, so the fixture is only the tensors' names, shapes and seeds (tensors.json), the records and the
reference gradients (float32 roundings of the Float64 values). The reference is PyTorch float64 through transformers and
PEFT: one batch-size-1 backward of each record's mean cross-entropy over its scored tokens.

Run from this folder: /work/venv/bin/python make_real_width_reference.py
"""
import json
import pathlib
import tempfile

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = pathlib.Path(__file__).resolve().parent / "Fixtures" / "real-width"
CONFIG = dict(vocab_size=8192, hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9,
              num_key_value_heads=3, head_dim=64, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=100000.0,
              tie_word_embeddings=True)
RANK, ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MASK = (1 << 64) - 1


def splitmix_uniform(seed, count):
    """(2u - 1) in float32 for u = the top 24 bits of splitmix64(seed + (i + 1) * golden), i < count: exact values."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return np.float32(2) * u - np.float32(1)


def filled(seed, shape, bound, offset=None):
    """bound * (2u - 1) (+ offset), each step rounded to float32, as PrecisionTests.swift computes it."""
    values = splitmix_uniform(seed, int(np.prod(shape))) * np.float32(bound)
    if offset is not None:
        values = values + np.float32(offset)
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


def bound_of(name):
    """The generator's bound for a tensor, by its role; 1D tensors (norms) are 1 + 0.5 (2u - 1)."""
    if "embed_tokens" in name:
        return 0.25
    if "lora_A" in name:
        return 0.04
    if "lora_B" in name:
        return 0.05
    return 0.08


def main():
    HERE.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG))
    peft = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS))
    # Every tensor by its PEFT/transformers name, in sorted order: tensor i gets seed 1000 + i.
    names = sorted(n.replace(".default", "") for n, _ in peft.named_parameters())
    with torch.no_grad():
        for n, p in peft.named_parameters():
            name = n.replace(".default", "")
            seed = 1000 + names.index(name)
            if p.dim() == 1:
                p.copy_(filled(seed, tuple(p.shape), 0.5, offset=1.0))
            else:
                p.copy_(filled(seed, tuple(p.shape), bound_of(name)))
    peft = peft.to(torch.float64)
    records = []
    tokens = (splitmix_uniform(77, 256) * np.float32(0.5) + np.float32(0.5)) * np.float32(CONFIG["vocab_size"])
    tokens = [min(int(t), CONFIG["vocab_size"] - 1) for t in tokens]
    # A text record (every token after the first scored) and a prompt/completion record (prompt unscored).
    records.append({"id": "text", "contributor": "c", "prompt_tokens": tokens[:1], "completion_tokens": tokens[1:128]})
    records.append({"id": "chat", "contributor": "c", "prompt_tokens": tokens[128:160], "completion_tokens": tokens[160:250]})
    parameters = {n.replace(".default", ""): p for n, p in peft.named_parameters() if p.requires_grad}
    reference = {}
    for record in records:
        ids = torch.tensor([record["prompt_tokens"] + record["completion_tokens"]])
        labels = ids.clone()
        labels[:, :len(record["prompt_tokens"])] = -100
        peft.zero_grad()
        peft(input_ids=ids, labels=labels).loss.backward()
        for name, p in parameters.items():
            reference[f"{record['id']}/{name}"] = p.grad.detach().float().contiguous()
    save_file(reference, str(HERE / "reference-gradients.safetensors"), metadata={"dtype": "float64 rounded to float32"})
    with open(HERE / "records.jsonl", "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    shapes = {n.replace(".default", ""): list(p.shape) for n, p in peft.named_parameters()}
    (HERE / "tensors.json").write_text(json.dumps({
        "config": CONFIG, "rank": RANK, "alpha": ALPHA, "targets": TARGETS,
        "tensors": [{"name": name, "shape": shapes[name], "seed": 1000 + i} for i, name in enumerate(names)]}, indent=1) + "\n")
    print(f"{len(reference)} reference tensors, {sum(t.numel() for t in reference.values())} floats")


if __name__ == "__main__":
    main()
