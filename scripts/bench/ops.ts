/**
 * bench:ops — per-op call overhead. A chain of 7 small ops (add, mul, relu, sub, exp, mul, sum) on tiny tensors,
 * where the op's own arithmetic is negligible and the cost is the call path: ours (TypeScript → N-API → ATen, freed
 * by tidy()) against PyTorch's Python (Debian's python3-torch, the same LibTorch 1.13), same thread count, same run.
 * A [256, 256] case shows that with real work both are the same ATen kernels.
 */
import { torch } from '../../lib/index.js';
import { costRow, medianMs, pytorchVersion, report, runPython, type Row } from './harness.js';

const iterations = Number(process.env.BENCH_OPS_ITERATIONS ?? 20000);
const threads = torch.getNumThreads();
const OPS = 7;

function chain(x: torch.Tensor, y: torch.Tensor): torch.Tensor {
  return x.add(1).mul(2).relu().sub(y).exp().mul(y).sum();
}

function usPerOp(run: () => void, iters: number): number {
  run();
  return (medianMs(run) * 1000) / (iters * OPS);
}

function forward(shape: number[], iters: number): number {
  const x = torch.randn(shape),
    y = torch.randn(shape);
  return usPerOp(() => {
    for (let i = 0; i < iters; i++) torch.tidy(() => chain(x, y));
  }, iters);
}

function backward(shape: number[], iters: number): number {
  const x = torch.randn(shape, { requiresGrad: true }),
    y = torch.randn(shape);
  return usPerOp(() => {
    for (let i = 0; i < iters; i++) {
      torch.tidy(() => chain(x, y).backward());
      x.grad = null;
    }
  }, iters);
}

const baseline = runPython<Record<string, number>>('ops.py', [threads, iterations]);
const name = `PyTorch ${pytorchVersion()} (python3-torch, ${threads} threads)`;
const ours: Record<string, number> = {
  'forward [8, 8]': forward([8, 8], iterations),
  'forward+backward [8, 8]': backward([8, 8], iterations),
  'forward [256, 256]': forward([256, 256], iterations),
};
const rows: Row[] = Object.entries(ours).map(([c, v]) => costRow(c, 'time per op', 'µs', v, baseline[c], name));
report('ops', rows);
