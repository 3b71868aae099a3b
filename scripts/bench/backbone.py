"""Baseline for bench:backbone: forward+backward of torchvision's AlexNet and ResNet18 in PyTorch.

usage: backbone.py THREADS BATCH REPEATS
Prints {"case": milliseconds, ...} as JSON: the median of REPEATS timed steps after one warm-up step, for each model,
input shape and memory format (torchvision's models, with the input channels changed as mmssl's backbones are).
"""
import json
import sys

import torch
import torchvision

from baselines import median_ms

threads, batch, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)


def alexnet(channels):
    model = torchvision.models.alexnet()
    model.features[0] = torch.nn.Conv2d(channels, 64, kernel_size=11, stride=4, padding=2)
    return model


def resnet18(channels):
    model = torchvision.models.resnet18()
    model.conv1 = torch.nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def step_ms(model, x):
    def step():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    return median_ms(step, repeats)


CASES = {
    "alexnet 4x72x72": (alexnet, 4, 72),
    "resnet18 4x128x128": (resnet18, 4, 128),
}

out = {}
for name, (build, channels, size) in CASES.items():
    for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channelsLast", torch.channels_last)):
        model = build(channels).train().to(memory_format=fmt)
        x = torch.randn(batch, channels, size, size).contiguous(memory_format=fmt)
        out[f"{name} {fmt_name}"] = step_ms(model, x)
print(json.dumps(out))
