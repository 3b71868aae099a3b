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
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
from safetensors_lite import load_file  # noqa: E402

from baselines import infonce, median_ms  # noqa: E402

threads, weights, batch, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
MODALITIES = {"s1": ("alexnet", 2, 72), "s2": ("alexnet", 4, 72), "naip": ("resnet18", 4, 128)}


class AlexNetFeatures(torch.nn.Module):
    """torchvision's AlexNet up to fc7 (its last ReLU), the input bands changed."""

    def __init__(self, channels):
        super().__init__()
        model = torchvision.models.alexnet(num_classes=1)
        model.features[0] = torch.nn.Conv2d(channels, 64, kernel_size=11, stride=4, padding=2)
        self.features, self.avgpool, self.classifier = model.features, model.avgpool, model.classifier

    def forward(self, x):
        return self.classifier[:-1](torch.flatten(self.avgpool(self.features(x)), 1))


class ResNetFeatures(torchvision.models.ResNet):
    """torchvision's ResNet18 up to its average pool, the input bands changed."""

    def __init__(self, channels):
        super().__init__(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=1)
        self.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class Encoder(torch.nn.Module):
    def __init__(self, kind, channels):
        super().__init__()
        self.backbone = AlexNetFeatures(channels) if kind == "alexnet" else ResNetFeatures(channels)
        width = 4096 if kind == "alexnet" else 512
        self.head = torch.nn.Sequential(torch.nn.Linear(width, 512), torch.nn.BatchNorm1d(512), torch.nn.ReLU(), torch.nn.Linear(512, 128))

    def forward(self, x):
        return self.head(self.backbone(x))


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
