#!/usr/bin/env python3
"""Writes the decoding test fixtures with transformers, from the committed tiny models (run after
make_fixtures.py): for each model folder, transformers' greedy `generate` output for two prompts, run
free (no end-of-sequence id, so it stops only at max_new_tokens) and with an end-of-sequence id that the
free run reaches; and, in Fixtures/sampling_distributions.json, the probabilities that transformers'
sampling warpers (temperature, then top-k, then top-p, as `generate` orders them) leave on fixed logits.
Run from the repository root: .venv/bin/python Tests/LlamaModelTests/make_generation_fixtures.py
"""
import json
import pathlib

import torch
import transformers
from transformers import GenerationConfig, LlamaForCausalLM
from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

ROOT = pathlib.Path(__file__).parent / "Fixtures"
PROMPTS = [[256] + list(b"Hello"), [256] + list(b"The quick brown fox, 12 times!")]
NEW_TOKENS = 12


def greedy(model, prompt, eos):
    ids = torch.tensor([prompt])
    config = GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS, eos_token_id=eos, pad_token_id=0,
                              bos_token_id=256)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return out[0, len(prompt):].tolist()


def generation_fixture(name):
    folder = ROOT / name
    model = LlamaForCausalLM.from_pretrained(folder).eval()
    # transformers 5 reads eos_token_id=None in a GenerationConfig as "unset" and falls back to the
    # model's own (257), so the free runs clear that one.
    model.generation_config.eos_token_id = None
    runs = []
    for prompt in PROMPTS:
        free = greedy(model, prompt, eos=None)
        assert len(free) == NEW_TOKENS, free
        # The first token, from the fourth on, not seen before it: the run with it as eos stops there.
        stop_at = next(i for i in range(3, NEW_TOKENS) if free[i] not in free[:i])
        stopped = greedy(model, prompt, eos=free[stop_at])
        assert stopped == free[:stop_at + 1], (stopped, free)
        runs.append({"prompt": prompt, "free": free, "eos": free[stop_at], "with_eos": stopped})
    expected = {"transformers": transformers.__version__, "torch": torch.__version__,
                "max_new_tokens": NEW_TOKENS, "runs": runs}
    (folder / "expected_generation.json").write_text(json.dumps(expected, indent=1) + "\n")


def sampling_fixture():
    generator = torch.Generator().manual_seed(7)
    logits = [
        [2.0, 1.0, 0.5, 0.5, -1.0, 3.0, 0.0, 0.5, -2.0, 1.5],  # ties at the top-k boundary
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.1],                           # all equal
        torch.randn(40, generator=generator).mul(2).tolist(),
    ]
    settings = [(1.0, None, 1.0), (0.7, None, 1.0), (1.0, 3, 1.0), (1.0, 4, 1.0), (1.0, 5, 1.0), (1.0, None, 0.5), (1.0, None, 0.8),
                (0.7, 5, 0.9), (1.5, 2, 0.5), (1.0, None, 1e-6), (0.3, 8, 0.95), (2.0, 1, 1.0)]
    cases = []
    for row in logits:
        for temperature, top_k, top_p in settings:
            warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
            if top_k is not None:
                warpers.append(TopKLogitsWarper(top_k))
            if top_p < 1:
                warpers.append(TopPLogitsWarper(top_p))
            scores = warpers(torch.zeros(1, 1, dtype=torch.long), torch.tensor([row], dtype=torch.float32))
            probabilities = scores.softmax(-1)[0].tolist()
            cases.append({"logits": row, "temperature": temperature, "top_k": top_k, "top_p": top_p,
                          "probabilities": probabilities})
    (ROOT / "sampling_distributions.json").write_text(json.dumps(
        {"transformers": transformers.__version__, "cases": cases}, indent=1) + "\n")


for name in ["tiny-llama-sharded", "tiny-llama-tied"]:
    generation_fixture(name)
sampling_fixture()
