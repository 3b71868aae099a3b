/**
 * bench:loss — the multi-positive InfoNCE loss, forward+backward, at V = 1024 to 16384 views of d = 128: the native
 * loss (loss.infoNCE) against the same loss written the obvious way in PyTorch's Python (Debian's python3-torch, the
 * same LibTorch, the same thread count) and against our own naive composition (loss.infoNCENaive), in the same run.
 * Time is the median of a few steps after a warm-up; memory is the peak extra resident memory of one step, measured in
 * separate processes (see MEASURING_ENV). The native loss's memory is also measured at 32768 and 65536 views, and the
 * largest V each fits in 1 GiB of extra memory is read off the measured peaks (linear in V for the native loss,
 * quadratic for PyTorch's).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { loss, torch } from '../../lib/index.js';
import {
  costRow,
  DEVICE,
  MEASURING_ENV,
  medianMs,
  peakExtraBytes,
  pytorchVersion,
  rateRow,
  report,
  runPython,
  synchronize,
  type Row,
} from './harness.js';

type Measured = Record<string, number>;
type Implementation = 'native' | 'naive';
type Mode = 'time' | 'memory';

const DIM = 128;
const SIZES = [1024, 4096, 8192, 16384];
const NATIVE_ONLY = [32768, 65536];
const GIB = 2 ** 30;
const repeats = Number(process.env.BENCH_LOSS_REPEATS ?? 3);

/** bench:loss's batch (the same as loss.py's): 4 views per location, every tenth location Negative. */
function batch(v: number) {
  const ids = Array.from({ length: v }, (_, i) => i >> 2);
  return {
    z: torch.randn([v, DIM]).requiresGrad_(),
    groups: torch.tensor(ids, { dtype: 'int64' }),
    anchorMask: torch.tensor(ids.map((g) => g % 10 !== 0)),
  };
}

/**
 * In a child process, for each size: the median milliseconds of a few steps after a warm-up ('time'), or the peak
 * extra resident bytes of one step after a small warm-up, so one-time allocations (BLAS buffers) are left out ('memory').
 */
function measure(implementation: Implementation, mode: Mode, sizes: number[]): Measured {
  const lossFn = implementation === 'native' ? loss.infoNCE : loss.infoNCENaive;
  const stepOf =
    ({ z, groups, anchorMask }: ReturnType<typeof batch>) =>
    () =>
      torch.tidy(() => {
        z.grad = null;
        lossFn(z, groups, { anchorMask }).backward();
      });
  const measureOne = (step: () => void) => (mode === 'time' ? (step(), medianMs(step, repeats)) : peakExtraBytes(step));
  if (mode === 'memory') torch.tidy(() => stepOf(batch(256))());
  const out: Measured = {};
  for (const v of sizes) out[v] = torch.tidy(() => measureOne(stepOf(batch(v))));
  return out;
}

/** Memory is measured with glibc returning freed blocks at once; time with its defaults, as users run. */
function runChild(implementation: Implementation, mode: Mode, sizes: number[]): Measured {
  const args = [fileURLToPath(import.meta.url), '--child', implementation, mode, ...sizes.map(String)];
  const env = { ...process.env, ...(mode === 'memory' ? MEASURING_ENV : {}) };
  return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8', env })) as Measured;
}

function runPytorch(mode: Mode, threads: number): Measured {
  return runPython<Measured>(
    'loss.py',
    [threads, DIM, repeats, mode, ...SIZES],
    mode === 'memory' ? MEASURING_ENV : {},
  );
}

/** The largest V with fit(V) <= 1 GiB, for peak = a + b V (degree 1) or b V² (degree 2), least squares on V >= 4096. */
function largestWithin(peaks: Measured, degree: 1 | 2): number {
  const points = Object.entries(peaks)
    .map(([v, p]) => [Number(v), p])
    .filter(([v]) => v >= 4096);
  if (degree === 2) {
    const b = points.reduce((s, [v, p]) => s + p * v * v, 0) / points.reduce((s, [v]) => s + v ** 4, 0);
    return Math.floor(Math.sqrt(GIB / b));
  }
  const n = points.length,
    sv = points.reduce((s, [v]) => s + v, 0),
    sp = points.reduce((s, [, p]) => s + p, 0);
  const b =
    (n * points.reduce((s, [v, p]) => s + v * p, 0) - sv * sp) /
    (n * points.reduce((s, [v]) => s + v * v, 0) - sv * sv);
  return Math.floor((GIB - (sp - b * sv) / n) / b);
}

function main(): void {
  const threads = torch.getNumThreads();
  // One process at a time, so no two measurements share the cores.
  const time = {
    pytorch: runPytorch('time', threads),
    naive: runChild('naive', 'time', SIZES),
    native: runChild('native', 'time', SIZES),
  };
  const memory = {
    pytorch: runPytorch('memory', threads),
    naive: runChild('naive', 'memory', SIZES),
    native: runChild('native', 'memory', [...SIZES, ...NATIVE_ONLY]),
  };
  const pytorchName = `PyTorch ${pytorchVersion()} naive (python3-torch, ${threads} threads)`;
  const naiveName = 'mmssl naive composition (loss.infoNCENaive)';
  const mib = (bytes: number) => bytes / 2 ** 20;
  const rows: Row[] = [];
  for (const v of SIZES) {
    const c = `V ${v}, d ${DIM}`;
    rows.push(costRow(c, 'forward+backward', 'ms', time.native[v], time.pytorch[v], pytorchName));
    rows.push(costRow(c, 'forward+backward', 'ms', time.native[v], time.naive[v], naiveName));
    rows.push(costRow(c, 'peak extra memory', 'MiB', mib(memory.native[v]), mib(memory.pytorch[v]), pytorchName));
    rows.push(costRow(c, 'peak extra memory', 'MiB', mib(memory.native[v]), mib(memory.naive[v]), naiveName));
  }
  rows.push(
    rateRow(
      `largest V within 1 GiB, d ${DIM}`,
      'views (fit of measured peaks)',
      'V',
      largestWithin(memory.native, 1),
      largestWithin(memory.pytorch, 2),
      pytorchName,
    ),
  );
  report('loss', rows);
  if (!process.argv.includes('--json')) {
    for (const v of NATIVE_ONLY)
      console.log(
        `native loss at V ${v}, d ${DIM}: ${mib(memory.native[v]).toFixed(1)} MiB peak extra memory (measured)`,
      );
  }
}

/** On a GPU (BENCH_DEVICE=cuda): time and the caching allocator's peak above what was allocated before a step. */
function mainOnDevice(): void {
  const sizes = [16384, 65536];
  const ours: Record<number, { ms: number; peak: number }> = {};
  for (const v of sizes) {
    const { z, groups, anchorMask } = batch(v);
    const x = z.detach().to({ device: DEVICE }).requiresGrad_();
    const [g, mask] = [groups.to({ device: DEVICE }), anchorMask.to({ device: DEVICE })];
    const step = () =>
      torch.tidy(() => {
        x.grad = null;
        loss.infoNCE(x, g, { anchorMask: mask }).backward();
        synchronize();
      });
    step();
    const ms = medianMs(step, repeats);
    x.grad = null;
    const base = torch.cuda.memoryStats().allocatedBytes;
    torch.cuda.resetPeakMemoryStats();
    step();
    ours[v] = { ms, peak: torch.cuda.memoryStats().peakAllocatedBytes - base };
    [z, groups, anchorMask, x, g, mask].forEach((t) => t.dispose());
  }
  const theirs = runPython<Record<number, { ms: number; peak: number }>>('loss.py', [
    1,
    DIM,
    repeats,
    'cuda',
    ...sizes,
  ]);
  const name = `PyTorch ${pytorchVersion()} naive, same GPU`;
  report(
    'loss',
    sizes.flatMap((v) => [
      costRow(`V ${v}, d ${DIM}, ${DEVICE}`, 'forward+backward', 'ms', ours[v].ms, theirs[v].ms, name),
      costRow(
        `V ${v}, d ${DIM}, ${DEVICE}`,
        'peak memory',
        'MiB',
        ours[v].peak / 2 ** 20,
        theirs[v].peak / 2 ** 20,
        name,
      ),
    ]),
  );
}

const child = process.argv.indexOf('--child');
if (DEVICE !== 'cpu') {
  mainOnDevice();
} else if (child >= 0) {
  const [implementation, mode, ...sizes] = process.argv.slice(child + 1);
  process.stdout.write(JSON.stringify(measure(implementation as Implementation, mode as Mode, sizes.map(Number))));
} else {
  main();
}
