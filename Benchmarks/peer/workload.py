"""What the peer benchmarks share: the workloads' models, building Tributary, and child processes
measured for their own peak RSS."""
import json
import os
import pathlib
import subprocess
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The workloads of shared/reference/WORKLOADS.md: the 3M-parameter reference model, and "Real scale"
# (shaped like SmolLM2-135M).
MODELS = {
    "reference": ROOT.parent / "shared" / "reference" / "reference-llama.json",
    "real": ROOT.parent / "shared" / "reference" / "reference-real.json",
}


def add_workload_option(parser):
    parser.add_argument("--workload", choices=sorted(MODELS), default="reference",
                        help="the model: the 3M-parameter reference, or the real-scale one (135M)")


def reference_config(workload="reference"):
    config = json.loads(MODELS[workload].read_text())
    config.pop("architectures", None)
    return config


def save_reference_model(folder, seed=0, workload="reference"):
    """The workload's Llama with random weights from `seed`, as a folder both engines load. It has no
    bos/eos ids, so that generation runs to its token limit in both engines."""
    torch.manual_seed(seed)
    config = LlamaConfig(**reference_config(workload))
    config.bos_token_id = config.eos_token_id = config.pad_token_id = None
    model = LlamaForCausalLM(config)
    model.generation_config.bos_token_id = model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    model.save_pretrained(folder)


def tributary_engine():
    """Builds and returns the release `tributary-engine`."""
    subprocess.run(["swift", "build", "-c", "release", "--product", "tributary-engine"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return ROOT / ".build" / "release" / "tributary-engine"


def tributary_benchmark(product):
    """Builds and returns the release executable `product` of the Benchmarks package."""
    subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT / "Benchmarks", check=True,
                   stdout=subprocess.DEVNULL)
    return ROOT / "Benchmarks" / ".build" / "release" / product


def run_measured(command, threads, environment_overrides=None):
    """Runs `command` with `threads` BLAS / torch threads; returns its standard output and its peak RSS
    in MiB. GNU time measures it: a child forked from this Python process would report this
    process's RSS (torch loaded) as its own peak."""
    environment = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                       **(environment_overrides or {}))
    with tempfile.NamedTemporaryFile("r") as report:
        output = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name] + [str(part) for part in command],
                                stdout=subprocess.PIPE, env=environment, text=True, check=True).stdout
        return output, int(report.read().split()[-1]) / 1024


def weight_bytes(folder):
    """Bytes of the weights a decode step reads: every tensor of the folder once (a tied head is the embedding)."""
    from safetensors import safe_open
    total = 0
    with safe_open(str(pathlib.Path(folder) / "model.safetensors"), "pt") as tensors:
        for name in tensors.keys():
            if name == "model.embed_tokens.weight":
                continue  # rows gathered per token, not read whole; a tied head counts it below
            total += _numel(tensors.get_slice(name).get_shape()) * 4
    config = json.loads((pathlib.Path(folder) / "config.json").read_text())
    if config.get("tie_word_embeddings"):
        total += config["vocab_size"] * config["hidden_size"] * 4
    return total


def _numel(shape):
    count = 1
    for size in shape:
        count *= size
    return count


def memory_bandwidth(threads):
    """The machine's STREAM copy rate in GB/s (bytes read plus bytes written), from Benchmarks' MemoryBandwidth."""
    output = subprocess.run([str(tributary_benchmark("MemoryBandwidth")), "--threads", str(threads), "--json"],
                            stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(output)
