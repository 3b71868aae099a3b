/**
 * bench:step — one joint pre-training step (AlexNet on Sentinel-1 2x72x72 and Sentinel-2 4x72x72, ResNet18 on NAIP
 * 4x128x128, two views each, projection heads, InfoNCE over the 6 x batch embeddings, SGD with momentum) in
 * locations per second, against the same step in PyTorch (scripts/bench/step.py: torchvision's models, the loss
 * written the obvious way; Debian's python3-torch, same LibTorch, same threads), both starting from the same weights
 * (ours, saved and loaded strictly there). The baseline runs first, alone; each side in both memory formats, and
 * PyTorch once more with glibc's malloc tuned as mmssl tunes it, which is where most of the difference comes from.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { nn, io, torch } from '../../lib/index.js';
import type { Batch } from '../../lib/data/loader.js';
import { disposeStep, pretrainStep } from '../../lib/train/pretrain.js';
import { buildOptimizer } from '../../lib/train/optimizers.js';
import { viewLayout } from '../../lib/train/views.js';
import { medianMs, pytorchVersion, rateRow, report, runPython } from './harness.js';

const BATCH = Number(process.env.BENCH_STEP_BATCH ?? 32);
const REPEATS = Number(process.env.BENCH_STEP_REPEATS ?? 5);
/** What native/runtime.cc sets with mallopt at load, as environment variables. */
const TUNED_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(2 ** 30), MALLOC_TRIM_THRESHOLD_: String(2 ** 31 - 1) };
const MODALITIES: Record<string, [number, number]> = { s1: [2, 72], s2: [4, 72], naip: [4, 128] };

function build(): nn.models.MultiModalModel {
  torch.manualSeed(0);
  return new nn.models.MultiModalModel({
    modalities: Object.fromEntries(Object.entries(MODALITIES).map(([m, [c]]) => [m, c])),
  });
}

/** Median milliseconds of our step in `memoryFormat`, after one warm-up step. */
function oursMs(memoryFormat: 'contiguousFormat' | 'channelsLast'): number {
  using model = build().train().to({ memoryFormat });
  using optimizer = buildOptimizer(model.parameters(), { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const views = Object.fromEntries(
    Object.entries(MODALITIES).map(([m, [c, s]]) => [
      m,
      [0, 1].map(() => torch.randn([BATCH, c, s, s]).contiguous({ memoryFormat })),
    ]),
  );
  const negative = Array.from({ length: BATCH }, (_, i) => i % 10 === 0);
  const batch = { views, host: { negative } } as unknown as Batch;
  const layout = viewLayout(Object.keys(MODALITIES), true);
  const step = () => disposeStep(pretrainStep(model, batch, layout, optimizer, { temperature: 0.2, memoryFormat }));
  step();
  const ms = medianMs(step, REPEATS);
  Object.values(views)
    .flat()
    .forEach((x) => x.dispose());
  return ms;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'mmssl-bench-step-'));
  try {
    const weights = join(scratch, 'initial.safetensors');
    {
      using model = build();
      await io.safetensors.saveFile(model.stateDict(), weights);
    }
    const threads = torch.getNumThreads();
    const baseline = runPython<{ contiguous: number; channelsLast: number }>('step.py', [
      threads,
      weights,
      BATCH,
      REPEATS,
    ]);
    // PyTorch again with glibc tuned as mmssl tunes it at load (native/runtime.cc), to show what that part is worth.
    const tuned = runPython<{ contiguous: number; channelsLast: number }>(
      'step.py',
      [threads, weights, BATCH, REPEATS],
      TUNED_MALLOC,
    );
    const ours = { contiguous: oursMs('contiguousFormat'), channelsLast: oursMs('channelsLast') };
    const rate = (ms: number) => BATCH / (ms / 1000);
    const name = (format: string) => `PyTorch ${pytorchVersion()}, ${format}, same weights (step.py)`;
    const c = `3 modalities x 2 views, batch ${BATCH}, ${threads} threads`;
    report('step', [
      rateRow(
        `${c}: ours (channels-last, the default) vs PyTorch as usually written (NCHW)`,
        'pre-training step',
        'locations/s',
        rate(ours.channelsLast),
        rate(baseline.contiguous),
        name('NCHW'),
      ),
      rateRow(
        `${c}: both channels-last`,
        'pre-training step',
        'locations/s',
        rate(ours.channelsLast),
        rate(baseline.channelsLast),
        name('channels-last'),
      ),
      rateRow(
        `${c}: both NCHW`,
        'pre-training step',
        'locations/s',
        rate(ours.contiguous),
        rate(baseline.contiguous),
        name('NCHW'),
      ),
      rateRow(
        `${c}: both channels-last, PyTorch with mmssl's malloc settings`,
        'pre-training step',
        'locations/s',
        rate(ours.channelsLast),
        rate(tuned.channelsLast),
        `${name('channels-last')}, MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ as mmssl sets them`,
      ),
    ]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
