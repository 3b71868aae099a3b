"""Baseline for bench:step: one joint multi-modal pre-training step as a PyTorch user writes it.

usage: step.py THREADS WEIGHTS BATCH REPEATS FORMATS PRECISION MONITOR DEVICE
WEIGHTS: a safetensors file of mmssl's initial weights (keys <modality>.backbone.* and <modality>.head.*), loaded
strictly, so both sides start from the same model. The model: torchvision's AlexNet for s1 (2 bands, 72x72) and s2
(4 bands, 72x72), ResNet18 for naip (4 bands, 128x128), each with a projection head Linear-BatchNorm1d-ReLU-Linear;
two views per modality through their backbone in one call; the multi-positive InfoNCE written the obvious way
(full similarity matrix, masked log-softmax; every tenth location Negative, never an anchor); SGD with momentum,
gradients set to None. FORMATS: contiguous and/or channelsLast, comma-separated. PRECISION: 32, or bf16 for
torch.autocast("cpu", dtype=torch.bfloat16) around the forward passes (the loss in float32). MONITOR: 1 adds the
collapse monitor on the device each step (per-modality spread, alignment, uniformity on 1024 views, as Wang and
Isola's code computes them). Each step reads its loss with .item(), as timm's and most training loops do. DEVICE:
cpu or cuda (autocast on that device; each timed step ends with torch.cuda.synchronize()).
Prints {"ms": {FORMAT: median ms of REPEATS steps after one warm-up}, "reads": .item() calls per step}.
"""
import contextlib
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
from safetensors_lite import load_file  # noqa: E402

from baselines import MODALITIES, Encoder, infonce, median_ms  # noqa: E402

threads, weights, batch, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
formats, precision, monitor, device = sys.argv[5].split(","), sys.argv[6], sys.argv[7] == "1", sys.argv[8]
torch.set_num_threads(threads)
torch.manual_seed(0)
FORMATS = {"contiguous": torch.contiguous_format, "channelsLast": torch.channels_last}
reads = 0


def item(x):
    global reads
    reads += 1
    return x.item()


def health(z, views):
    """Per-modality spread, alignment and uniformity of the step's embeddings, on the device."""
    u = F.normalize(z.detach(), dim=1)
    per_view = u.view(views, batch, -1)
    std = [block.std(0, unbiased=False).mean() for block in u.split(2 * batch)]
    alignment = (per_view[:, None] - per_view[None]).pow(2).sum(-1).sum() / (batch * views * (views - 1))
    sample = u[torch.linspace(0, len(u) - 1, min(len(u), 1024)).long()]
    uniformity = torch.pdist(sample).pow(2).mul(-2).exp().mean().log()
    return torch.stack([*std, alignment, uniformity])


def step_ms(memory_format):
    model = torch.nn.ModuleDict({m: Encoder(kind, c) for m, (kind, c, _) in MODALITIES.items()})
    model.load_state_dict(load_file(weights), strict=True)
    model = model.train().to(device=device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    views = {m: torch.randn(2 * batch, c, s, s, device=device).contiguous(memory_format=memory_format) for m, (_, c, s) in MODALITIES.items()}
    groups = torch.arange(batch, device=device).repeat(2 * len(MODALITIES))
    anchors = groups % 10 != 0
    autocast = torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            z = torch.cat([model[m](views[m]) for m in MODALITIES])
        loss = infonce(z.float(), groups, anchors, 0.2)
        loss.backward()
        optimizer.step()
        if monitor:
            health(z.float(), 2 * len(MODALITIES))
        item(loss)
        if device == "cuda":
            torch.cuda.synchronize()

    return median_ms(step, repeats)


ms = {f: step_ms(FORMATS[f]) for f in formats}
print(json.dumps({"ms": ms, "reads": reads / (len(formats) * (repeats + 1))}))
