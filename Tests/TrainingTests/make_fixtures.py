#!/usr/bin/env python3
"""torch.optim.AdamW and transformers' schedules on fixed inputs, for the Swift optimizer tests.
Run from the repository root: .venv/bin/python Tests/TrainingTests/make_fixtures.py"""
import json
import pathlib

import torch
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

torch.manual_seed(0)
param = torch.nn.Parameter(torch.randn(7, 5))
initial = param.detach().clone()
grads = [torch.randn(7, 5) * (0.1 + i) for i in range(6)]
optimizer = torch.optim.AdamW([param], lr=3e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
after = []
for grad in grads:
    param.grad = grad.clone()
    optimizer.step()
    after.append(param.detach().clone().flatten().tolist())

def rates(make):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    scheduler = make(opt)
    out = []
    for _ in range(20):
        out.append(scheduler.get_last_lr()[0])
        opt.step()
        scheduler.step()
    return out

clip_grads = [torch.randn(4, 3) * 3, torch.randn(5) * 2]
clip_parameters = [torch.nn.Parameter(torch.zeros_like(g)) for g in clip_grads]
for parameter, grad in zip(clip_parameters, clip_grads):
    parameter.grad = grad.clone()
norm = torch.nn.utils.clip_grad_norm_(clip_parameters, max_norm=1.5)
clipped = [parameter.grad for parameter in clip_parameters]

fixture = {
    "torch": torch.__version__,
    "adamw": {"lr": 3e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
              "initial": initial.flatten().tolist(), "grads": [g.flatten().tolist() for g in grads], "after": after},
    "cosine": rates(lambda o: get_cosine_schedule_with_warmup(o, num_warmup_steps=5, num_training_steps=20)),
    "linear": rates(lambda o: get_linear_schedule_with_warmup(o, num_warmup_steps=5, num_training_steps=20)),
    "clip": {"grads": [g.flatten().tolist() for g in clip_grads], "shapes": [list(g.shape) for g in clip_grads],
             "max_norm": 1.5, "norm": norm.item(), "clipped": [g.flatten().tolist() for g in clipped]},
}
(pathlib.Path(__file__).parent / "Fixtures" / "optimizer.json").write_text(json.dumps(fixture))
