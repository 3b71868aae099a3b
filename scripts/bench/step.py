"""Baseline for bench:step: one joint multi-modal pre-training step as a PyTorch user writes it.

usage: step.py THREADS WEIGHTS BATCH REPEATS
WEIGHTS: a safetensors file of mmssl's initial weights (keys <modality>.backbone.* and <modality>.head.*), loaded
strictly, so both sides start from the same model. The model: torchvision's AlexNet for s1 (2 bands, 72x72) and s2
(4 bands, 72x72), ResNet18 for naip (4 bands, 128x128), each with a projection head Linear-BatchNorm1d-ReLU-Linear;
two views per modality through their backbone in one call; the multi-positive InfoNCE written the obvious way
(full similarity matrix, masked log-softmax; every tenth location Negative, never an anchor); SGD with momentum.
Prints {"contiguous": ms, "channelsLast": ms}: the median of REPEATS steps after one warm-up, in each memory format.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
from safetensors_lite import load_file  # noqa: E402

from baselines import MODALITIES, Encoder, infonce, median_ms  # noqa: E402

threads, weights, batch, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)


def step_ms(memory_format):
    model = torch.nn.ModuleDict({m: Encoder(kind, c) for m, (kind, c, _) in MODALITIES.items()})
    model.load_state_dict(load_file(weights), strict=True)
    model = model.train().to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    views = {m: torch.randn(2 * batch, c, s, s).contiguous(memory_format=memory_format) for m, (_, c, s) in MODALITIES.items()}
    groups = torch.arange(batch).repeat(2 * len(MODALITIES))
    anchors = groups % 10 != 0

    def step():
        optimizer.zero_grad(set_to_none=True)
        z = torch.cat([model[m](views[m]) for m in MODALITIES])
        infonce(z, groups, anchors, 0.2).backward()
        optimizer.step()

    return median_ms(step, repeats)


print(json.dumps({"contiguous": step_ms(torch.contiguous_format), "channelsLast": step_ms(torch.channels_last)}))
