"""Baseline for bench:loader: METER-ML's release layout read the way a PyTorch user would, torch.utils.data.DataLoader
with worker processes, numpy/Pillow decoding and torchvision's transforms per sample.

usage: loader.py ROOT STATS_JSON BATCH WORKERS BATCHES
Prints {"locationsPerSecond": ...}: locations delivered per second over BATCHES batches after the first one (worker
start-up excluded). Each location yields, per modality (s1, s2 at 72x72, NAIP resized to 128x128 with antialiasing),
two views, each with its own random flips and a resized crop keeping 90-100% of the area, after per-band
standardisation with the statistics in STATS_JSON ({"s1": {"mean": [...], "std": [...]}, ...}).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from baselines import loader_rate

root, stats_path, batch, workers, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
FILES = {"s1": "sentinel-1.npy", "s2": "sentinel-2-10m.npy", "naip": "naip.png"}
SIZES = {"s1": 72, "s2": 72, "naip": 128}


def train_folders():
    with open(os.path.join(root, "train_dataset.geojson")) as f:
        features = json.load(f)["features"]
    nested = {}
    for part in ("train_images_1", "train_images_2", "train_images_3"):
        base = os.path.join(root, "train_images", part)
        for name in os.listdir(base) if os.path.isdir(base) else []:
            nested[name] = os.path.join(base, name)
    return [nested[os.path.basename(f["properties"]["Image_Folder"])] for f in features]


class MeterML(torch.utils.data.Dataset):
    def __init__(self, folders, stats):
        self.folders = folders
        self.stats = {m: (torch.tensor(s["mean"]).view(-1, 1, 1), torch.tensor(s["std"]).view(-1, 1, 1)) for m, s in stats.items()}
        self.augment = {m: transforms.Compose([
            transforms.RandomResizedCrop(size, scale=(0.9, 1.0), antialias=True),
            transforms.RandomHorizontalFlip(),
            transforms.RandomVerticalFlip(),
        ]) for m, size in SIZES.items()}

    def __len__(self):
        return len(self.folders)

    def read(self, folder, modality):
        path = os.path.join(folder, FILES[modality])
        if modality == "naip":
            array = np.asarray(Image.open(path), dtype=np.float32)  # RGBA, the alpha channel is NIR
        else:
            array = np.load(path).astype(np.float32)
        x = torch.from_numpy(array).permute(2, 0, 1)
        mean, std = self.stats[modality]
        x = (x - mean) / std
        if x.shape[-1] != SIZES[modality]:
            x = F.interpolate(x[None], size=(SIZES[modality],) * 2, mode="bilinear", antialias=True)[0]
        return x

    def __getitem__(self, i):
        out = {"location": i}
        for m in FILES:
            x = self.read(self.folders[i], m)
            out[m] = torch.stack([self.augment[m](x) for _ in range(2)])
        return out


with open(stats_path) as f:
    stats = json.load(f)
loader = torch.utils.data.DataLoader(MeterML(train_folders(), stats), batch_size=batch, shuffle=True,
                                     num_workers=workers, drop_last=True, persistent_workers=True, prefetch_factor=2)
print(json.dumps({"locationsPerSecond": loader_rate(loader, batch, batches)}))
