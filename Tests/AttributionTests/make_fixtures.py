#!/usr/bin/env python3
"""Writes Fixtures/tiny-llama: a tiny random Llama (awkward sizes, grouped-query attention, untied head)
saved by transformers, for the attribution tests. Run from this folder:
/work/main/.venv/bin/python make_fixtures.py
"""
import pathlib

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = pathlib.Path(__file__).resolve().parent
torch.manual_seed(11)
config = LlamaConfig(vocab_size=300, hidden_size=24, intermediate_size=37, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                     rms_norm_eps=1e-5, tie_word_embeddings=False)
model = LlamaForCausalLM(config)
with torch.no_grad():
    for parameter in model.parameters():
        if parameter.dim() == 2:
            parameter.normal_(0, 0.3)
model.save_pretrained(HERE / "Fixtures" / "tiny-llama")
