#!/usr/bin/env python3
"""Writes the LlamaModel test fixtures with transformers: tiny random Llama checkpoints in Hugging Face
layout, and transformers' own fp32 logits for a token sequence, so the Swift tests check parity without
needing PyTorch. Run from the repository root: .venv/bin/python Tests/LlamaModelTests/make_fixtures.py
"""
import json
import pathlib

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).parent / "Fixtures"
TOKENS = [1, 257, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 299, 0, 128, 64, 7]


def build(name, *, tied, shard, theta):
    torch.manual_seed(1234 + len(name))
    config = LlamaConfig(
        vocab_size=300, hidden_size=32, intermediate_size=44, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=theta,
        tie_word_embeddings=tied, bos_token_id=256, eos_token_id=257, torch_dtype="float32")
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
        for layer in model.model.layers:  # norms near 1, as trained models have them
            layer.input_layernorm.weight.uniform_(0.5, 1.5)
            layer.post_attention_layernorm.weight.uniform_(0.5, 1.5)
        model.model.norm.weight.uniform_(0.5, 1.5)
    folder = ROOT / name
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="40KB" if shard else "100MB")
    with torch.no_grad():
        logits = model(torch.tensor([TOKENS])).logits[0]
    expected = {"transformers": transformers.__version__, "torch": torch.__version__,
                "tokens": TOKENS, "logits": logits.tolist()}
    (folder / "expected_logits.json").write_text(json.dumps(expected))


build("tiny-llama-sharded", tied=False, shard=True, theta=10000.0)
build("tiny-llama-tied", tied=True, shard=False, theta=500000.0)


def build_adapter(name, base, *, targets, rank, alpha, rslora):
    """A PEFT LoRA adapter on `base` with random (non-zero) A and B, and PEFT's logits through it."""
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(99 + rank)
    model = LlamaForCausalLM.from_pretrained(ROOT / base).eval()
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, use_rslora=rslora, lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config).eval()
    with torch.no_grad():
        for parameter_name, parameter in peft_model.named_parameters():
            if "lora_" in parameter_name:
                parameter.normal_(0.0, 0.2)
        logits = peft_model(torch.tensor([TOKENS])).logits[0]
    folder = ROOT / name
    peft_model.save_pretrained(folder)
    saved = json.loads((folder / "adapter_config.json").read_text())
    saved["base_model_name_or_path"] = base  # not this machine's absolute path
    (folder / "adapter_config.json").write_text(json.dumps(saved, indent=2, sort_keys=True))
    (folder / "README.md").unlink(missing_ok=True)
    import peft
    (folder / "expected_logits.json").write_text(json.dumps(
        {"peft": peft.__version__, "tokens": TOKENS, "logits": logits.tolist()}))


build_adapter("lora-all-linear", "tiny-llama-sharded", targets="all-linear", rank=4, alpha=8, rslora=False)
build_adapter("lora-qv-rslora", "tiny-llama-tied", targets=["q_proj", "v_proj"], rank=3, alpha=5, rslora=True)
