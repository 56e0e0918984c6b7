#!/usr/bin/env python3
"""Writes the model-family fixtures with transformers: tiny random Qwen2 (tied and untied), Qwen3 (q/k norm,
head_dim != hidden / heads), Mistral (sliding window shorter than the token sequence) and Llama with
rope_scaling llama3 and linear, each in Hugging Face layout with transformers' fp32 logits for a token
sequence, plus a PEFT LoRA adapter per family (q, k, v, o, gate, up, down) with its adapted logits.
Run from the repository root: /work/venv/bin/python Tests/LlamaModelTests/make_family_fixtures.py
"""
import json
import pathlib
import shutil

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ROOT = pathlib.Path(__file__).parent / "Fixtures" / "families"
# Longer than the Mistral fixture's window (5), so the window masks keys.
TOKENS = [1, 95, 17, 42, 3, 88, 64, 5, 31, 77, 12, 0, 50, 50, 9, 63, 21, 94, 2, 40]
COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=44, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=2, attn_implementation="eager")


def randomize(model):
    """Weights big enough that attention is sharp (so masks and rotations show in the logits), norms near 1."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                parameter.normal_(0.0, 0.5)
            else:
                parameter.normal_(0.0, 0.3)


def logits_of(model):
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0]


def build(name, model_class, config, seed):
    torch.manual_seed(seed)
    model = model_class(config).eval()
    randomize(model)
    folder = ROOT / name
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "generation_config.json").unlink(missing_ok=True)
    expected = {"transformers": transformers.__version__, "torch": torch.__version__,
                "tokens": TOKENS, "logits": logits_of(model).tolist(),
                # The rotary inverse frequencies (scaled by rope_scaling), float32 values as doubles.
                "inv_freq": model.model.rotary_emb.inv_freq.tolist()}
    (folder / "expected_logits.json").write_text(json.dumps(expected))

    # A PEFT adapter on every projection, random (non-zero) A and B.
    torch.manual_seed(seed + 1)
    base = model_class.from_pretrained(folder, attn_implementation="eager").eval()
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"], lora_dropout=0.0,
                      task_type="CAUSAL_LM")
    adapted = get_peft_model(base, lora).eval()
    with torch.no_grad():
        for parameter_name, parameter in adapted.named_parameters():
            if "lora_" in parameter_name:
                parameter.normal_(0.0, 0.2)
    adapter_folder = ROOT / (name + "-lora")
    shutil.rmtree(adapter_folder, ignore_errors=True)
    adapted.save_pretrained(adapter_folder)
    saved = json.loads((adapter_folder / "adapter_config.json").read_text())
    saved["base_model_name_or_path"] = name  # not this machine's absolute path
    saved["target_modules"] = sorted(saved["target_modules"])  # PEFT writes a set, in hash order
    (adapter_folder / "adapter_config.json").write_text(json.dumps(saved, indent=2, sort_keys=True))
    (adapter_folder / "README.md").unlink(missing_ok=True)
    (adapter_folder / "expected_logits.json").write_text(json.dumps(
        {"peft": peft.__version__, "tokens": TOKENS, "logits": logits_of(adapted).tolist()}))


build("qwen2-tied", Qwen2ForCausalLM, Qwen2Config(**COMMON, tie_word_embeddings=True, rope_theta=10000.0), 11)
build("qwen2-untied", Qwen2ForCausalLM, Qwen2Config(**COMMON, tie_word_embeddings=False, rope_theta=1000000.0), 12)
build("qwen3", Qwen3ForCausalLM, Qwen3Config(**COMMON, head_dim=12, tie_word_embeddings=False, rope_theta=10000.0), 13)
build("mistral-window", MistralForCausalLM,
      MistralConfig(**COMMON, sliding_window=5, tie_word_embeddings=False, rope_theta=10000.0), 14)
# head_dim 16 with original_max_position_embeddings 64: wavelengths 6.3 (kept), 20 and 63 (smoothed),
# 199 and up (divided by the factor), so every branch of transformers' llama3 rule is exercised.
llama3 = dict(COMMON, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
build("llama-rope-llama3", LlamaForCausalLM, LlamaConfig(
    **llama3, tie_word_embeddings=False,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64, "rope_theta": 10000.0}), 15)
build("llama-rope-linear", LlamaForCausalLM, LlamaConfig(
    **COMMON, tie_word_embeddings=True, rope_scaling={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}), 16)


def rope_frequencies(rope_scaling, theta, head_dim=128, max_positions=131072):
    """transformers' inverse frequencies for a full-size config (no weights): Llama 3.1's rope_scaling."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    config = LlamaConfig(hidden_size=head_dim * 32, num_attention_heads=32, max_position_embeddings=max_positions,
                         rope_scaling=dict(rope_scaling, rope_theta=theta))
    inverse, scaling = ROPE_INIT_FUNCTIONS[rope_scaling["rope_type"]](config, "cpu")
    assert scaling == 1.0
    return {"rope_scaling": rope_scaling, "rope_theta": theta, "head_dim": head_dim, "inv_freq": inverse.tolist()}


(ROOT / "rope_frequencies.json").write_text(json.dumps([
    rope_frequencies({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}, 500000.0),
    rope_frequencies({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}, 500000.0, head_dim=64),
    # Not head_dim 96 at theta 1e4, nor 128 at 1e6: there one plain frequency of torch's float32 pow differs by
    # an ulp from RotaryTable's (correctly rounded) one, before any scaling.
    rope_frequencies({"rope_type": "linear", "factor": 3.0}, 10000.0, head_dim=128),
], indent=1))
