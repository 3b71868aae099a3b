"""Baseline for bench:loss: the multi-positive InfoNCE loss written the obvious way in PyTorch, forward+backward.

usage: loss.py THREADS DIM REPEATS time|memory|cuda V [V ...]
Prints {"V": number, ...} as JSON: in time mode the median milliseconds of REPEATS steps after a warm-up step; in
memory mode the peak extra resident bytes of one step (after a small warm-up, so one-time allocations such as BLAS
buffers are not counted; bench:loss runs this mode with MALLOC_MMAP_THRESHOLD_ fixed, see MEASURING_ENV in
harness.ts). The batch is bench:loss's: z ~ N(0, 1) [V, DIM], 4 views per location, every tenth location Negative
(never an anchor), tau = 0.1, positives averaged. In cuda mode, on the GPU: {"V": {"ms", "peak"}}, the median
milliseconds (each step synchronised) and the peak bytes the caching allocator held above what was allocated before
the step.
"""
import json
import sys

import torch

from baselines import infonce, median_ms

threads, dim, repeats, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sizes = [int(v) for v in sys.argv[5:]]
torch.set_num_threads(threads)
torch.manual_seed(0)


def step(z, groups, anchors):
    z.grad = None
    infonce(z, groups, anchors, 0.1).backward()


def resident_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def peak_extra_bytes(fn):
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident set
    base = resident_kib("VmRSS")
    fn()
    return (resident_kib("VmHWM") - base) * 1024


def batch(v, device="cpu"):
    z = torch.randn(v, dim, device=device, requires_grad=True)
    groups = torch.arange(v, device=device) // 4
    return z, groups, groups % 10 != 0


def on_cuda(v):
    b = batch(v, "cuda")
    ms = median_ms(lambda: (step(*b), torch.cuda.synchronize()), repeats)
    b[0].grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(*b)
    torch.cuda.synchronize()
    return {"ms": ms, "peak": torch.cuda.max_memory_allocated() - base}


if mode == "cuda":
    print(json.dumps({str(v): on_cuda(v) for v in sizes}))
    sys.exit()
if mode == "memory":
    step(*batch(256))
measure = (lambda *b: median_ms(lambda: step(*b), repeats)) if mode == "time" else lambda *b: peak_extra_bytes(lambda: step(*b))
print(json.dumps({str(v): measure(*batch(v)) for v in sizes}))
