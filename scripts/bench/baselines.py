"""What the PyTorch baselines of the benchmarks share: the InfoNCE loss as a PyTorch user writes it, and timing."""
import time

import torch.nn.functional as F


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
