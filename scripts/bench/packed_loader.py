"""Baseline for bench:loader's packed rows: the same pack (mmssl pack's shards of fixed-size records) read the way a
good PyTorch engineer reads pre-processed records: a NumPy memmap per shard, torch.utils.data.DataLoader with worker
processes (pinned memory where CUDA is there), per-band standardisation with the pack's statistics and, with
augmentation, torchvision's flips and resized crop (90-100% of the area) per view, two views per modality.

usage: packed_loader.py PACK BATCH WORKERS BATCHES AUGMENT(0|1)
Prints {"locationsPerSecond": ...} over BATCHES batches after the first (worker start-up excluded).
"""
import json
import os
import sys

import numpy as np
import torch
from torchvision import transforms

from baselines import loader_rate

root, batch, workers, batches, augment = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
torch.set_num_threads(1)
with open(os.path.join(root, "pack.json")) as f:
    index = json.load(f)
DTYPES = {"uint8": np.uint8, "int16": np.int16, "float16": np.float16, "float32": np.float32}
RECORD = index["recordBytes"]


class Packed(torch.utils.data.Dataset):
    def __init__(self):
        self.records = [(r["shard"], r["slot"]) for r in index["records"] if r["split"] == "train"]
        self.shards = None  # opened in each worker
        self.stats = {m: (torch.tensor(s["mean"]).view(-1, 1, 1), torch.tensor(s["std"]).view(-1, 1, 1))
                      for m, s in index["stats"].items()}
        self.augment = {m["name"]: transforms.Compose([
            transforms.RandomResizedCrop(m["size"], scale=(0.9, 1.0), antialias=True),
            transforms.RandomHorizontalFlip(),
            transforms.RandomVerticalFlip(),
        ]) for m in index["modalities"]}

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        if self.shards is None:
            self.shards = [np.memmap(os.path.join(root, s["file"]), dtype=np.uint8, mode="r").reshape(-1, RECORD)
                           for s in index["shards"]]
        shard, slot = self.records[i]
        record = self.shards[shard][slot]
        out = {"location": i}
        for m in index["modalities"]:
            segment = record[m["offset"]:m["offset"] + m["bytes"]].view(DTYPES[m["dtype"]])
            x = torch.from_numpy(segment.astype(np.float32)).view(len(m["bands"]), *m["size"])
            mean, std = self.stats[m["name"]]
            x = (x - mean) / std
            out[m["name"]] = torch.stack([self.augment[m["name"]](x) for _ in range(2)]) if augment else x
        return out


loader = torch.utils.data.DataLoader(Packed(), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     persistent_workers=True, prefetch_factor=2, pin_memory=torch.cuda.is_available())
print(json.dumps({"locationsPerSecond": loader_rate(loader, batch, batches)}))
