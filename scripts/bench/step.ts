/**
 * bench:step — one joint pre-training step (AlexNet on Sentinel-1 2x72x72 and Sentinel-2 4x72x72, ResNet18 on NAIP
 * 4x128x128, two views each, projection heads, InfoNCE over the 6 x batch embeddings, SGD with momentum) in
 * locations per second, against the same step in PyTorch (scripts/bench/step.py: torchvision's models, the loss
 * written the obvious way, the loss read with .item() each step; Debian's python3-torch, same LibTorch, same
 * threads), both starting from the same weights (ours, saved and loaded strictly there). The baselines run first,
 * alone: each memory format; PyTorch with glibc's malloc tuned as mmssl tunes it, which is where most of the
 * difference comes from; under torch.autocast bf16; and at batch 256 with the collapse monitor on the device each
 * step, as our step computes it. Our step's host reads are counted (`torch.hostReads()`) against the baseline's
 * .item() calls.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { io, torch } from '../../lib/index.js';
import type { Precision } from '../../lib/torch/amp.js';
import { costRow, DEVICE, medianMs, pytorchVersion, rateRow, report, runPython } from './harness.js';
import { benchModel, benchStep, type Format } from './pretraining.js';

const BATCH = Number(process.env.BENCH_STEP_BATCH ?? 32);
const LARGE_BATCH = Number(process.env.BENCH_STEP_LARGE_BATCH ?? 256);
const REPEATS = Number(process.env.BENCH_STEP_REPEATS ?? 5);
/** What native/runtime.cc sets with mallopt at load, as environment variables. */
const TUNED_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(2 ** 30), MALLOC_TRIM_THRESHOLD_: String(2 ** 31 - 1) };

interface Measured {
  /** Median milliseconds of a step after one warm-up step. */
  ms: number;
  /** Tensor reads to the host per step. */
  reads: number;
}

/** Our step at `batch` locations, with the collapse monitor after each when `monitor`. */
function ours(
  batch: number,
  memoryFormat: Format,
  { precision = '32', monitor = false }: { precision?: Precision; monitor?: boolean } = {},
): Measured {
  using model = benchModel();
  using bench = benchStep(model, batch, { memoryFormat, precision, monitor });
  let steps = 0;
  const step = () => {
    bench.step();
    steps++;
  };
  const before = torch.hostReads();
  step();
  const ms = medianMs(step, REPEATS);
  return { ms, reads: (torch.hostReads() - before) / steps };
}

interface Baseline {
  batch?: number;
  format: 'contiguous' | 'channelsLast';
  precision?: '32' | 'bf16';
  monitor?: boolean;
  tuned?: boolean;
}

/** PyTorch's step (step.py) in a process of its own. */
function theirs(weights: string, threads: number, b: Baseline): Measured {
  const { ms, reads } = runPython<{ ms: Record<string, number>; reads: number }>(
    'step.py',
    [threads, weights, b.batch ?? BATCH, REPEATS, b.format, b.precision ?? '32', b.monitor ? 1 : 0, DEVICE],
    b.tuned ? TUNED_MALLOC : {},
  );
  return { ms: ms[b.format], reads };
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'mmssl-bench-step-'));
  try {
    const weights = join(scratch, 'initial.safetensors');
    {
      using model = benchModel();
      await io.safetensors.saveFile(model.stateDict(), weights);
    }
    const threads = torch.getNumThreads();
    const base = {
      nchw: theirs(weights, threads, { format: 'contiguous' }),
      channelsLast: theirs(weights, threads, { format: 'channelsLast' }),
      tuned: theirs(weights, threads, { format: 'channelsLast', tuned: true }),
      bf16: theirs(weights, threads, { format: 'channelsLast', tuned: true, precision: 'bf16' }),
      large: theirs(weights, threads, {
        format: 'channelsLast',
        tuned: true,
        monitor: true,
        batch: LARGE_BATCH,
      }),
    };
    const mine = {
      nchw: ours(BATCH, 'contiguousFormat'),
      channelsLast: ours(BATCH, 'channelsLast'),
      bf16: ours(BATCH, 'channelsLast', { precision: 'bf16-mixed' }),
      large: ours(LARGE_BATCH, 'channelsLast', { monitor: true }),
    };
    const rate = (batch: number, m: Measured) => batch / (m.ms / 1000);
    const torchName = `PyTorch ${pytorchVersion()}`;
    const name = (format: string) => `${torchName}, ${format}, same weights (step.py)`;
    const tunedName = `${name('channels-last')}, MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ as mmssl sets them`;
    const c = (batch: number) =>
      `3 modalities x 2 views, batch ${batch}, ${DEVICE === 'cpu' ? `${threads} threads` : DEVICE}`;
    const row = (what: string, m: Measured, b: Measured, baselineName: string, batch = BATCH) =>
      rateRow(`${c(batch)}: ${what}`, 'pre-training step', 'locations/s', rate(batch, m), rate(batch, b), baselineName);
    report('step', [
      row(
        'ours (channels-last, the default) vs PyTorch as usually written (NCHW)',
        mine.channelsLast,
        base.nchw,
        name('NCHW'),
      ),
      row('both channels-last', mine.channelsLast, base.channelsLast, name('channels-last')),
      row('both NCHW', mine.nchw, base.nchw, name('NCHW')),
      row("both channels-last, PyTorch with mmssl's malloc settings", mine.channelsLast, base.tuned, tunedName),
      row(
        "bf16-mixed, both channels-last, PyTorch with mmssl's malloc settings",
        mine.bf16,
        base.bf16,
        `${tunedName}, torch.autocast("cpu", dtype=torch.bfloat16)`,
      ),
      row(
        "collapse monitor on the device each step, both channels-last, PyTorch with mmssl's malloc settings",
        mine.large,
        base.large,
        `${tunedName}, the monitor as Wang and Isola's code computes it`,
        LARGE_BATCH,
      ),
      // Counts: one is added to both sides so that zero reads keep the gain finite.
      {
        ...costRow(
          `${c(BATCH)}: tensor reads to the host inside the step (torch.hostReads(); PyTorch's .item() calls)`,
          'host reads per step',
          'reads',
          mine.channelsLast.reads,
          base.channelsLast.reads,
          `${torchName}, the loss read each step as timm's loop does`,
        ),
        gain: (base.channelsLast.reads + 1) / (mine.channelsLast.reads + 1),
      },
    ]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
