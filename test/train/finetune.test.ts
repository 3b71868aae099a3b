// Fine-tuning on a small synthetic dataset (GeoTIFF layout): random and pre-trained initialisation, the linear probe
// leaving the backbones untouched, the label fraction, Negatives in or out, the saved model reproducing the report,
// and the errors for a run that does not fit (modalities, channels).
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLASSES } from '../../lib/data/dataset.js';
import { openPath } from '../../lib/data/open.js';
import { synthesize } from '../../lib/data/synth/index.js';
import { FusionClassifier } from '../../lib/nn/models/multimodal.js';
import { loadCheckpoint, loadWeights } from '../../lib/io/checkpoint.js';
import { resolveFinetuneConfig, resolvePretrainConfig } from '../../lib/config/index.js';
import { DataLoader } from '../../lib/data/loader.js';
import { manualSeed } from '../../lib/torch/runtime.js';
import { evaluateClassifier, trainingSubset } from '../../lib/eval/downstream.js';
import { pretrainModel } from '../../lib/runs/models.js';
import { finetune } from '../../lib/train/finetune.js';
import { pretrain } from '../../lib/train/pretrain.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-finetune-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const small = {
  alexnetHidden: 32,
  sizes: { naip: [64, 64] },
  threads: 1,
  workers: 1,
  seed: 2,
  batchSize: 4,
  onBadSample: 'skip',
};
const run = join(scratch, 'run');
const ready = synthesize({
  out: data,
  perClass: 6,
  seed: 4,
  format: 'geotiff',
  holdout: { val: 0.34, test: 0.17 },
}).then(() =>
  pretrain({
    config: resolvePretrainConfig(small, {
      data,
      modalities: ['s1', 's2'],
      epochs: 1,
      hiddenDim: 32,
      embeddingDim: 16,
      optimizer: { name: 'adam', lr: 1e-3 },
    }),
    out: run,
  }),
);
const config = (overrides: Record<string, unknown>) =>
  resolveFinetuneConfig(
    small,
    { data, modalities: ['s2'], epochs: 2, optimizer: { name: 'adam', lr: 1e-3 } },
    overrides,
  );

test('the label fraction keeps round(f x n) labelled training samples of each class (at least one), seeded', async (t) => {
  await ready;
  const dataset = await openPath(data);
  const perClass = (subset: Set<number>) =>
    CLASSES.map((_, c) => [...subset].filter((i) => dataset.samples[i].label === c).length);
  const all = trainingSubset(dataset, 1, 0, false);
  t.true([...all].every((i) => dataset.samples[i].split === 'train' && dataset.samples[i].label >= 0));
  t.is(all.size, dataset.samples.filter((s) => s.split === 'train' && s.label >= 0).length);
  const available = perClass(all);
  t.deepEqual(
    perClass(trainingSubset(dataset, 0.5, 0, false)),
    available.map((n) => Math.max(1, Math.round(0.5 * n))),
  );
  t.deepEqual(
    perClass(trainingSubset(dataset, 0.01, 0, false)),
    available.map(() => 1),
  );
  t.deepEqual(trainingSubset(dataset, 0.5, 9, false), trainingSubset(dataset, 0.5, 9, false));
  t.notDeepEqual(trainingSubset(dataset, 0.5, 9, false), trainingSubset(dataset, 0.5, 10, false));
  const withNegatives = trainingSubset(dataset, 1, 0, true);
  t.true([...withNegatives].some((i) => dataset.samples[i].negative));
});

test('random and pre-trained initialisation; the saved model gives the same report again', async (t) => {
  await ready;
  for (const init of [null, run]) {
    const out = join(scratch, `ft-${init ? 'run' : 'none'}`);
    const result = await finetune({ config: config({ init, modalities: ['s1', 's2'] }), out });
    const dataset = await openPath(data);
    const labelled = (split: string) => dataset.samples.filter((s) => s.split === split && s.label >= 0);
    t.is(result.val.total, labelled('val').length);
    t.deepEqual(
      result.val.support,
      CLASSES.map((_, c) => labelled('val').filter((s) => s.label === c).length),
    );
    t.is(result.test.total, labelled('test').length);
    t.deepEqual(
      JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).val.confusionMatrix,
      result.val.confusionMatrix,
    );
    t.is(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2);
    // the saved weights, loaded into a new model, predict the same
    using model = new FusionClassifier({ modalities: { s1: 2, s2: 4 }, numClasses: 6, alexnetHidden: 32 });
    const stats = JSON.parse(
      (await loadWeights(model, join(out, 'model.safetensors'))).metadata.normalizationPerModality as string,
    );
    await using val = new DataLoader(dataset, {
      modalities: ['s1', 's2'],
      batchSize: 4,
      splits: ['val'],
      shuffle: false,
      normalization: stats,
      workers: 1,
      filter: (s) => s.label >= 0,
    });
    const again = await evaluateClassifier(model, val, config({ init, modalities: ['s1', 's2'] }), [...CLASSES]);
    t.deepEqual(again.confusionMatrix, result.val.confusionMatrix);
  }
});

test.serial(
  "bf16-mixed fine-tuning: no host read in a step; the first step's loss within bfloat16's tolerance of float32's",
  async (t) => {
    await ready;
    // One epoch of one batch (the whole training split): the same weights see the same batch, so the losses differ by
    // bfloat16's rounding only, not by where two diverging trajectories have got to. Serial: dropout draws from the
    // process's generator, which the file's other tests would draw from between the two runs.
    const losses = async (precision: string) => {
      const seen: number[] = [];
      await finetune({
        config: config({ init: run, epochs: 1, batchSize: 64, precision, syncDebug: 'error' }),
        out: join(scratch, `ft-${precision}`),
        onEpoch: (m) => seen.push(m.loss),
      });
      return seen;
    };
    const [a] = await losses('32');
    const [b] = await losses('bf16-mixed');
    t.true(Math.abs(a - b) <= 0.02 * Math.abs(a) && a !== b, `bf16 ${b} vs fp32 ${a}`);
  },
);

test('a linear probe trains the classifier only; Negatives can be a seventh class', async (t) => {
  await ready;
  const out = join(scratch, 'probe');
  const result = await finetune({ config: config({ init: run, linearProbe: true, includeNegative: true }), out });
  t.deepEqual(result.classNames, [...CLASSES, 'Negative']);
  t.true(result.val.support[6] > 0, 'Negatives are evaluated');
  using tuned = new FusionClassifier({ modalities: { s2: 4 }, numClasses: 7, alexnetHidden: 32 });
  await loadWeights(tuned, join(out, 'model.safetensors'));
  using pretrained = pretrainModel(
    resolvePretrainConfig(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'))),
    await openPath(data),
  );
  await loadCheckpoint(join(run, 'checkpoint.safetensors'), { model: pretrained });
  const backbone = pretrained.encoder('s2').backbone.stateDict();
  for (const [key, value] of tuned.stateDict()) {
    if (key.startsWith('s2.'))
      t.is(
        value
          .sub(backbone.get(key.slice(3))!)
          .abs()
          .max()
          .item(),
        0,
        `${key}: frozen`,
      );
  }
  manualSeed(small.seed); // as finetune seeds before building: the classifier as it started
  using initial = new FusionClassifier({ modalities: { s2: 4 }, numClasses: 7, alexnetHidden: 32 });
  t.true(
    (tuned.classifier.fc.weight.sub(initial.classifier.fc.weight).abs().max().item() as number) > 0,
    'the classifier trained',
  );
});

test('a run that does not fit is refused: a modality it did not pre-train, other channels, not a run at all', async (t) => {
  await ready;
  await t.throwsAsync(
    finetune({ config: config({ init: run, modalities: ['s2', 'naip'] }), out: join(scratch, 'bad1') }),
    { code: 'ERR_MMSSL_IO', message: /the run pre-trained s1, s2, not naip/ },
  );
  const manifest = JSON.parse(readFileSync(join(data, 'manifest.geojson'), 'utf8'));
  manifest.modalities.s2.bands = ['B04', 'B03', 'B02'];
  writeFileSync(join(data, 'three-bands.geojson'), JSON.stringify(manifest));
  await t.throwsAsync(
    finetune({ config: config({ init: run, data: join(data, 'three-bands.geojson') }), out: join(scratch, 'bad2') }),
    { message: /s2\.backbone\.features\.0\.weight/ },
  );
  await t.throwsAsync(finetune({ config: config({ init: scratch }), out: join(scratch, 'bad3') }), {
    code: 'ERR_MMSSL_IO',
    message: /--init must be a pre-training run folder/,
  });
  t.throws(() => config({ labelFraction: 0 }), { code: 'ERR_MMSSL_ARG', message: /labelFraction/ });
});
