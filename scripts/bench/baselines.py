"""What the PyTorch baselines of the benchmarks share: the pre-training model and the InfoNCE loss as a PyTorch user
writes them, and timing."""
import time

import torch
import torch.nn.functional as F
import torchvision



def infonce(z, groups, anchors, tau):
    """The full similarity matrix and a masked log-softmax, in place where autograd allows."""
    u = F.normalize(z, dim=1)
    s = (u @ u.T).div_(tau)
    s.fill_diagonal_(float("-inf"))
    log_prob = s.log_softmax(dim=1)
    positive = groups[:, None] == groups[None, :]
    positive.fill_diagonal_(False)
    per_anchor = -log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1)
    return per_anchor[anchors].mean()


def median_ms(step, repeats):
    """The median milliseconds of `repeats` calls of step() after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        step()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return sorted(times)[len(times) // 2]


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


def loader_rate(loader, batch, batches):
    """Locations per second a DataLoader delivers over `batches` batches after its first (worker start-up excluded),
    epochs chained."""
    delivered, start = 0, None
    while delivered < batches:
        for _ in loader:
            if start is None:
                start = time.perf_counter()
                continue
            delivered += 1
            if delivered == batches:
                break
    return delivered * batch / (time.perf_counter() - start)
