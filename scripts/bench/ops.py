"""Baseline for bench:ops: the same small op chain in PyTorch, timed the same way (median of 5 runs).

usage: ops.py THREADS ITERATIONS
Prints {"case": microseconds per op, ...} as JSON.
"""
import json
import sys
import time

import torch

threads, iterations = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


def chain(x, y):
    # 7 ops: add, mul, relu, sub, exp, mul, sum
    return x.add(1).mul(2).relu().sub(y).exp().mul(y).sum()


def median_us_per_op(fn, ops):
    times = []
    for _ in range(5):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e3)
    return sorted(times)[2] / (iterations * ops)


def forward(shape):
    x, y = torch.randn(shape), torch.randn(shape)

    def run():
        for _ in range(iterations):
            chain(x, y)
    run()
    return median_us_per_op(run, 7)


def backward(shape):
    x, y = torch.randn(shape, requires_grad=True), torch.randn(shape)

    def run():
        for _ in range(iterations):
            chain(x, y).backward()
            x.grad = None
    run()
    return median_us_per_op(run, 7)


print(json.dumps({
    "forward [8, 8]": forward((8, 8)),
    "forward+backward [8, 8]": backward((8, 8)),
    "forward [256, 256]": forward((256, 256)),
}))
