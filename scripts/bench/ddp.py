"""Baseline for bench:ddp: one rank of data-parallel pre-training as a PyTorch user writes it.

usage: ddp.py WEIGHTS BATCH REPEATS MODE   (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, BENCH_THREADS from the
environment)
MODE 'distributed': torch.distributed with Gloo, the model wrapped in DistributedDataParallel (BatchNorm per process:
PyTorch's SyncBatchNorm refuses CPU tensors), the embeddings of every rank gathered with torch.distributed.nn's
differentiable all_gather, this rank's anchors against all of them (the loss scaled by the world size, DDP averaging
the gradients). MODE 'local': the same step on this rank's batch with no group (what distribution adds is the gap).
BATCH is this rank's share. Rank 0 prints {"ms": median step ms}.
"""
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures"))
from safetensors_lite import load_file  # noqa: E402

from baselines import MODALITIES, Encoder, infonce, median_ms  # noqa: E402

weights, batch, repeats, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
distributed = mode == "distributed"
if distributed:
    dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
torch.manual_seed(rank)



class Modalities(torch.nn.Module):
    """Every modality's encoder in one forward, so DDP sees one call per step."""

    def __init__(self):
        super().__init__()
        self.encoders = torch.nn.ModuleDict({m: Encoder(kind, c) for m, (kind, c, _) in MODALITIES.items()})
        self.encoders.load_state_dict(load_file(weights), strict=True)
        # the layers torchvision's models keep but the features never reach: DDP would wait for their gradients
        for encoder in self.encoders.values():
            if hasattr(encoder.backbone, "fc"):
                encoder.backbone.fc = torch.nn.Identity()
            else:
                encoder.backbone.classifier[-1] = torch.nn.Identity()

    def forward(self, inputs):
        return torch.cat([self.encoders[m](inputs[m]) for m in MODALITIES])


model = Modalities().train().to(memory_format=torch.channels_last)
if distributed:
    model = torch.nn.parallel.DistributedDataParallel(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
views = {m: torch.randn(2 * batch, c, s, s).contiguous(memory_format=torch.channels_last) for m, (_, c, s) in MODALITIES.items()}
local_groups = torch.arange(batch).repeat(2 * len(MODALITIES))
groups = torch.cat([local_groups + 1000 * r for r in range(world)])
anchors = torch.cat([(local_groups % 10 != 0) & (r == rank) for r in range(world)])


def step():
    optimizer.zero_grad(set_to_none=True)
    z = model(views)
    if distributed:
        z = torch.cat(dist_fn.all_gather(z))
    (infonce(z, groups, anchors, 0.2) * world).backward()   # every rank holds as many anchors
    optimizer.step()


ms = median_ms(step, repeats)
if rank == 0:
    print(json.dumps({"ms": ms}))
if distributed:
    dist.destroy_process_group()
