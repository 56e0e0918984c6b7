"""What the peer benchmarks share: the reference model, building Tributary, and child processes
measured for their own peak RSS."""
import json
import os
import pathlib
import subprocess
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "reference-llama.json"


def reference_config():
    config = json.loads(REFERENCE.read_text())
    config.pop("architectures", None)
    return config


def save_reference_model(folder, seed=0):
    """The reference Llama with random weights from `seed`, as a folder both engines load. It has no
    bos/eos ids, so that generation runs to its token limit in both engines."""
    torch.manual_seed(seed)
    config = LlamaConfig(**reference_config())
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


def run_measured(command, threads):
    """Runs `command` with `threads` BLAS / torch threads; returns its standard output and its peak RSS
    in MiB. GNU time measures it: a child forked from this Python process would report this
    process's RSS (torch loaded) as its own peak."""
    environment = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    with tempfile.NamedTemporaryFile("r") as report:
        output = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name] + [str(part) for part in command],
                                stdout=subprocess.PIPE, env=environment, text=True, check=True).stdout
        return output, int(report.read().split()[-1]) / 1024
