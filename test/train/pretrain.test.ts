// Pre-training end to end on a small synthetic dataset: the loss falls, a run stopped mid-epoch and resumed gives
// the uninterrupted run's losses exactly, the run folder holds what it should, and wrong set-ups are refused before
// anything is written.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { synthesize } from '../../lib/data/synth/index.js';
import { resolvePretrainConfig } from '../../lib/config/index.js';
import type { StepMetrics } from '../../lib/runs/records.js';
import { version } from '../../lib/torch/runtime.js';
import { getSyncDebugMode, hostReads } from '../../lib/torch/sync.js';
import { pretrain } from '../../lib/train/pretrain.js';

const [major, minor] = version().runtime.split('.').map(Number);
const cpuHalf = major > 2 || (major === 2 && minor >= 3);

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-pretrain-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const ready = synthesize({ out: data, perClass: 4, seed: 3 });

/** A model small enough for a test: narrow AlexNets, NAIP at 64x64, small heads. */
const config = (overrides: Record<string, unknown> = {}) =>
  resolvePretrainConfig(
    {
      data,
      modalities: ['s1', 's2', 'naip'],
      epochs: 3,
      batchSize: 4,
      alexnetHidden: 32,
      hiddenDim: 32,
      embeddingDim: 16,
      sizes: { naip: [64, 64] },
      optimizer: { name: 'adam', lr: 1e-3 },
      threads: 1,
      workers: 1,
      seed: 5,
      onBadSample: 'skip',
      knn: { every: 1 }, // 'auto' follows measured times, which a resumed run does not repeat
      logEvery: 1, // a metrics line per step, to compare runs step by step
    },
    overrides,
  );

async function run(
  out: string,
  options: { resume?: boolean; stopAfter?: number; overrides?: Record<string, unknown> } = {},
) {
  await ready;
  const steps: StepMetrics[] = [];
  const controller = new AbortController();
  const result = await pretrain({
    config: config(options.overrides),
    out,
    resume: options.resume,
    signal: controller.signal,
    onStep: (m) => {
      steps.push(m);
      if (m.step === options.stopAfter) controller.abort();
    },
  });
  return { result, steps };
}

test.serial(
  'the loss falls; a run stopped mid-epoch and resumed repeats the uninterrupted losses exactly',
  async (t) => {
    const whole = await run(join(scratch, 'whole'));
    t.is(whole.result.epochs, 3);
    t.false(whole.result.interrupted);
    const batches = whole.steps[0].batches;
    t.is(whole.steps.length, 3 * batches);
    const last = whole.steps.slice(-batches).reduce((s, m) => s + m.loss, 0) / batches;
    t.true(last < whole.steps[0].loss, `last epoch's mean loss ${last} vs first step's ${whole.steps[0].loss}`);
    for (const m of whole.steps)
      t.true(
        Number.isFinite(m.loss) &&
          m.dataWait >= 0 &&
          m.dataWait <= 1 &&
          m.locationsPerSecond > 0 &&
          Object.keys(m.std).length === 3,
      );

    const stopAt = batches + 1; // mid-epoch 2
    const first = await run(join(scratch, 'resumed'), { stopAfter: stopAt });
    t.true(first.result.interrupted);
    t.is(first.steps.length, stopAt);
    const second = await run(join(scratch, 'resumed'), { resume: true });
    t.deepEqual(
      [...first.steps, ...second.steps].map((m) => m.loss),
      whole.steps.map((m) => m.loss),
      'the same losses, bit for bit',
    );
    t.deepEqual(
      [...first.steps, ...second.steps].map((m) => [m.epoch, m.batch]),
      whole.steps.map((m) => [m.epoch, m.batch]),
    );
    const lines = readFileSync(join(scratch, 'resumed', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as StepMetrics);
    t.deepEqual(
      lines.filter((m) => 'loss' in m).map((m) => m.step),
      whole.steps.map((m) => m.step),
      'metrics.jsonl: one line per step, none twice',
    );
    const knnSteps = (run: string) =>
      readFileSync(join(scratch, run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .filter((l) => l.includes('"knn"'))
        .map((l) => (JSON.parse(l) as StepMetrics).step);
    t.deepEqual(knnSteps('resumed'), knnSteps('whole'), 'the k-NN evaluations of the resumed run, once each');
    t.deepEqual(JSON.parse(readFileSync(join(scratch, 'resumed', 'config.json'), 'utf8')), config());
  },
);

test.serial(
  'one modality with augmentations trains on its two views; one without is refused before the folder is made',
  async (t) => {
    const single = await run(join(scratch, 'single'), { overrides: { modalities: ['s2'], epochs: 1 } });
    t.deepEqual(Object.keys(single.steps[0].std), ['s2']);
    const out = join(scratch, 'refused');
    await t.throwsAsync(run(out, { overrides: { modalities: ['s2'], augment: false } }), {
      code: 'ERR_MMSSL_ARG',
      message: /s2 alone needs augmentations/,
    });
    await t.throwsAsync(run(out, { overrides: { modalities: ['s1', 'sar'] } }), {
      code: 'ERR_MMSSL_ARG',
      message: /modalities must be names among the dataset's \(s1, s2, naip/,
    });
    t.false(existsSync(out));
  },
);

test.serial(
  'with logEvery 3 a step reads nothing from the device (syncDebug error): a line per 3 steps and per epoch end, its loss the mean of the steps',
  async (t) => {
    const overrides = { modalities: ['s1', 's2'], epochs: 2 };
    const each = await run(join(scratch, 'every-step'), { overrides });
    const reads = hostReads();
    const logged = await run(join(scratch, 'every-3'), {
      overrides: { ...overrides, logEvery: 3, syncDebug: 'error' },
    });
    const batches = each.steps[0].batches;
    // Log points: every third step, and each epoch's last step.
    const points = each.steps.filter((m) => m.step % 3 === 0 || m.batch === batches - 1);
    t.true(points.length < each.steps.length && points.length >= 2, `${points.length} of ${each.steps.length}`);
    t.deepEqual(
      logged.steps.map((m) => m.step),
      points.map((m) => m.step),
    );
    let from = 0;
    logged.steps.forEach((m, i) => {
      const covered = each.steps.filter((e) => e.step > from && e.step <= m.step);
      const mean = covered.reduce((sum, e) => sum + e.loss, 0) / covered.length;
      t.true(Math.abs(m.loss - mean) <= 1e-6 * Math.abs(mean), `line ${i}: ${m.loss} vs the steps' mean ${mean}`);
      t.deepEqual(m.std, points[i].std, "the monitor of the line's step");
      from = m.step;
    });
    t.true(hostReads() > reads, 'the log points and the k-NN monitor read, outside the steps');
    t.is(getSyncDebugMode(), 'default', "the run's mode ends with it");
  },
);

test.serial(
  "bf16-mixed: the first step's loss within bfloat16's tolerance of float32's (same weights, same batches), with no host read in a step",
  async (t) => {
    const overrides = { modalities: ['s1', 's2'], epochs: 1, knn: { every: 0 } };
    const fp32 = await run(join(scratch, 'fp32'), { overrides });
    const bf16 = await run(join(scratch, 'bf16'), {
      overrides: { ...overrides, precision: 'bf16-mixed', syncDebug: 'error' },
    });
    t.is(bf16.steps.length, fp32.steps.length);
    const [a, b] = [fp32.steps[0].loss, bf16.steps[0].loss];
    // bfloat16 keeps 8 bits of mantissa (a relative 2^-8 per rounding): the loss of the same embeddings to about 1%.
    t.true(Math.abs(a - b) <= 0.02 * Math.abs(a), `bf16 ${b} vs fp32 ${a}`);
    t.not(a, b, 'the products really ran in bfloat16');
    for (const m of bf16.steps) t.true(Number.isFinite(m.loss));
    await t.throwsAsync(run(join(scratch, 'bf16-f64'), { overrides: { precision: 'bf16-mixed', dtype: 'float64' } }), {
      code: 'ERR_MMSSL_ARG',
      message: /precision must be '32' with dtype float64/,
    });
  },
);

test.serial(
  `16-mixed: ${cpuHalf ? 'a run stopped mid-epoch and resumed repeats its losses exactly, the gradient scaler in the checkpoint' : 'refused on CPU before the folder is made (LibTorch before 2.3)'}`,
  async (t) => {
    const overrides = { modalities: ['s1', 's2'], epochs: 2, precision: '16-mixed', knn: { every: 0 } };
    if (!cpuHalf) {
      const out = join(scratch, 'fp16-refused');
      await t.throwsAsync(run(out, { overrides }), {
        code: 'ERR_MMSSL_ARG',
        message: /pretrain: precision '16-mixed': .*float16 on CPU needs LibTorch 2\.3/,
      });
      t.false(existsSync(out));
      return;
    }
    const whole = await run(join(scratch, 'fp16-whole'), { overrides });
    const stopAt = whole.steps[0].batches + 1;
    const first = await run(join(scratch, 'fp16-resumed'), { overrides, stopAfter: stopAt });
    const second = await run(join(scratch, 'fp16-resumed'), { overrides, resume: true });
    t.deepEqual(
      [...first.steps, ...second.steps].map((m) => m.loss),
      whole.steps.map((m) => m.loss),
    );
    const { peekWeights } = await import('../../lib/io/checkpoint.js');
    const { scaler } = (await peekWeights(join(scratch, 'fp16-resumed', 'checkpoint.safetensors'))).checkpoint!
      .extra as { scaler: { scale: number; _growth_tracker: number } };
    t.true(scaler.scale > 0 && scaler.scale <= 2 ** 16, `scale ${scaler.scale}`);
    t.true(scaler._growth_tracker <= whole.steps.length, 'good steps since the last back-off');
  },
);

test.serial('a finished run is not overwritten; resuming needs a run, and the same configuration', async (t) => {
  const out = join(scratch, 'once');
  await run(out, { overrides: { epochs: 1, modalities: ['s1', 's2'] } });
  await t.throwsAsync(run(out, { overrides: { epochs: 1, modalities: ['s1', 's2'] } }), {
    code: 'ERR_MMSSL_IO',
    message: /holds a run already: resume it/,
  });
  await t.throwsAsync(run(out, { resume: true, overrides: { epochs: 2, modalities: ['s1', 's2'] } }), {
    code: 'ERR_MMSSL_IO',
    message: /configured differently \(epochs\)/,
  });
  await t.throwsAsync(run(join(scratch, 'nothing'), { resume: true }), {
    code: 'ERR_MMSSL_IO',
    message: /missing: there is no run to resume here/,
  });
  t.throws(() => config({ optimizer: { name: 'rmsprop' } }), { code: 'ERR_MMSSL_ARG', message: /optimizer\.name/ });
  t.throws(() => config({ epoch: 3 }), { code: 'ERR_MMSSL_ARG', message: /key must be one of .*got string 'epoch'/ });
});

/** A manifest over the two real BigEarthNet-MM locations, both in train, with the labels given. */
function bigEarthNet(name: string, labels: [string, string], brokenSecond = false): string {
  const real = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'real');
  const manifest = JSON.parse(readFileSync(join(real, 'MANIFEST.json'), 'utf8')) as {
    locations: Record<string, { modalities: Record<string, { files: Record<string, string> }> }>;
  };
  const features = Object.entries(manifest.locations).map(([id, loc], i) => ({
    type: 'Feature',
    geometry: null,
    properties: {
      id,
      split: 'train',
      label: labels[i],
      s1: Object.fromEntries(
        Object.entries(loc.modalities['sentinel-1'].files).map(([b, f]) => [
          b,
          brokenSecond && i === 1 ? 'missing.tif' : join(real, f),
        ]),
      ),
      s2: Object.fromEntries(Object.entries(loc.modalities['sentinel-2'].files).map(([b, f]) => [b, join(real, f)])),
    },
  }));
  const path = join(scratch, `${name}.geojson`);
  writeFileSync(path, JSON.stringify({ type: 'FeatureCollection', features }));
  return path;
}

const realConfig = (path: string) =>
  config({ data: path, modalities: ['s1', 's2'], batchSize: 2, epochs: 1, knn: { every: 0 }, sizes: {} });

test.serial(
  'a training split without an anchor (only Negatives) is refused before the run folder exists',
  async (t) => {
    const out = join(scratch, 'no-anchor');
    await t.throwsAsync(pretrain({ config: realConfig(bigEarthNet('negatives', ['Negative', 'Negative'])), out }), {
      code: 'ERR_MMSSL_IO',
      message: /negatives\.geojson: the training split holds no anchor: all 2 of its locations are Negatives/,
    });
    t.false(existsSync(out));
  },
);

test.serial(
  'an epoch that takes no step (its only anchor unreadable, skipped) stops without a checkpoint',
  async (t) => {
    const out = join(scratch, 'no-step');
    await t.throwsAsync(pretrain({ config: realConfig(bigEarthNet('unreadable', ['Negative', 'Mines'], true)), out }), {
      code: 'ERR_MMSSL_IO',
      message: /epoch 1 took no optimizer step: 1 samples could not be read .*no checkpoint/,
    });
    t.false(existsSync(join(out, 'checkpoint.safetensors')));
  },
);
