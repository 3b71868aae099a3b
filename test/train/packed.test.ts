// Runs on a pack (mmssl pack): pre-training, fine-tuning, evaluation and embedding take it where they take a dataset
// folder; resuming a run on a pack whose statistics changed is refused; shuffling by shards reads shard runs.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { resolveFinetuneConfig, resolvePretrainConfig } from '../../lib/config/index.js';
import { DataLoader } from '../../lib/data/loader.js';
import { PackedDataset } from '../../lib/data/packed/dataset.js';
import { pack } from '../../lib/data/packed/write.js';
import { openPath } from '../../lib/data/open.js';
import { synthesize } from '../../lib/data/synth/index.js';
import { embed } from '../../lib/eval/embed.js';
import { saveWeights } from '../../lib/io/checkpoint.js';
import { nn } from '../../lib/index.js';
import { evaluateRun } from '../../lib/eval/evaluate.js';
import { finetune } from '../../lib/train/finetune.js';
import { pretrain } from '../../lib/train/pretrain.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-packed-runs-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const source = join(scratch, 'source');
const packed = join(scratch, 'packed');
const small = { alexnetHidden: 32, sizes: { naip: [64, 64] }, threads: 1, workers: 1, seed: 2, batchSize: 4 };
const ready = synthesize({ out: source, perClass: 6, seed: 4, format: 'geotiff', defects: false }).then(() =>
  pack({ source, out: packed, sizes: { naip: [64, 64] }, recordsPerShard: 5, workers: 2 }),
);
const pretrainConfig = (data: string) =>
  resolvePretrainConfig(small, { data, modalities: ['s1', 's2', 'naip'], epochs: 2, hiddenDim: 32, embeddingDim: 16 });

test.serial('pre-training, fine-tuning, evaluation and embedding run on a pack', async (t) => {
  await ready;
  const run = join(scratch, 'run');
  const result = await pretrain({ config: pretrainConfig(packed), out: run });
  t.is(result.epochs, 2);
  const tuned = join(scratch, 'tuned');
  const report = await finetune({
    config: resolveFinetuneConfig(small, { data: packed, modalities: ['s2', 'naip'], init: run, epochs: 1 }),
    out: tuned,
  });
  t.true(report.test.accuracy >= 0 && report.test.accuracy <= 1);
  const evaluation = await evaluateRun({ init: run, data: packed, workers: 1 });
  t.true(evaluation.locations > 0 && evaluation.retrieval !== undefined);
  const index = await embed({ init: run, data: packed, out: join(scratch, 'embeddings'), workers: 1 });
  t.is(index.ids.length, new PackedDataset(packed).samples.length);
  t.true(existsSync(join(scratch, 'embeddings.npy')));
});

test.serial("resuming on a pack whose statistics changed is refused, naming the run's file", async (t) => {
  await ready;
  const run = join(scratch, 'interrupted');
  const stop = new AbortController();
  const first = await pretrain({
    config: pretrainConfig(packed),
    out: run,
    signal: stop.signal,
    onStep: () => stop.abort(),
  });
  t.true(first.interrupted);
  const other = join(scratch, 'other');
  await pack({ source, out: other, sizes: { naip: [64, 64] }, dtypes: { s1: 'float32', s2: 'float16' }, workers: 2 });
  const kept = join(scratch, 'kept');
  renameSync(packed, kept);
  renameSync(other, packed);
  try {
    await t.throwsAsync(pretrain({ config: pretrainConfig(packed), out: run, resume: true }), {
      code: 'ERR_MMSSL_IO',
      message: /band-stats\.json: the run standardised s2 with other statistics than the pack's/,
    });
  } finally {
    renameSync(packed, other);
    renameSync(kept, packed);
  }
});

test('shuffling by shards: every epoch a permutation, read k shards at a time, in another order each epoch', async (t) => {
  await ready;
  const dataset = new PackedDataset(packed);
  const shardOf = (i: number) => dataset.samples[i].shard;
  const loader = new DataLoader(dataset, {
    modalities: ['s1'],
    batchSize: 3,
    splits: ['train', 'val', 'test'],
    shuffle: { shards: 2 },
  });
  const orders = [0, 1].map((epoch) => loader.batches(epoch).flat());
  const all = dataset.samples.map((_, i) => i);
  t.true(dataset.index.shards.length >= 6);
  for (const order of orders) {
    t.deepEqual(
      [...order].sort((a, b) => a - b),
      all,
    );
    // the shards met, in order of first appearance: each run of two shards' records is contiguous
    const runs: number[][] = [];
    const seen: number[] = [];
    for (const i of order) if (!seen.includes(shardOf(i))) seen.push(shardOf(i));
    for (let g = 0; g < seen.length; g += 2) runs.push(seen.slice(g, g + 2));
    let position = 0;
    for (const group of runs) {
      const size = group.reduce((n, s) => n + dataset.index.shards[s].records, 0);
      t.true(
        order.slice(position, position + size).every((i) => group.includes(shardOf(i))),
        `shards ${group}`,
      );
      position += size;
    }
  }
  t.notDeepEqual(orders[0], orders[1]);
  await t.throwsAsync(
    async () => new DataLoader(await openPath(source), { modalities: ['s1'], batchSize: 2, shuffle: { shards: 2 } }),
    {
      code: 'ERR_MMSSL_ARG',
      message: /shuffling by shards needs a packed dataset/,
    },
  );
});

test.serial(
  'fine-tuning from weights trained elsewhere (--backbone-init): loaded, reported, and refused beside --init',
  async (t) => {
    await ready;
    const file = join(scratch, 'rgb-resnet18.pt');
    using rgb = nn.models.resnet18();
    await saveWeights(rgb, file, { format: 'pytorch' });
    const out = join(scratch, 'from-weights');
    const reports: string[] = [];
    await finetune({
      config: resolveFinetuneConfig(small, {
        data: packed,
        modalities: ['s2', 'naip'],
        epochs: 1,
        backboneInit: { naip: file },
        backboneInitBands: { naip: ['R', 'G', 'B'] },
      }),
      out,
      onBackboneInit: (m, r) => reports.push(`${m}: ${r.bands.map((b) => b.from).join(' ')}`),
    });
    t.deepEqual(reports, ["naip: R G B mean of the file's 3 bands"]);
    const saved = JSON.parse(readFileSync(join(out, 'backbone-init.json'), 'utf8')) as Record<
      string,
      { missingKeys: string[] }
    >;
    t.deepEqual(saved.naip.missingKeys, ['fc.weight', 'fc.bias']);
    await t.throwsAsync(
      finetune({
        config: resolveFinetuneConfig(small, {
          data: packed,
          modalities: ['naip'],
          epochs: 1,
          init: join(scratch, 'run'),
          backboneInit: { naip: file },
        }),
        out: join(scratch, 'both'),
      }),
      { code: 'ERR_MMSSL_ARG', message: /backboneInit.*none with init/ },
    );
  },
);

test.serial(
  "declared statistics (--normalization s2=0/10000, as SSL4EO's weights expect) replace computed ones, travel with the run, and must fit the bands",
  async (t) => {
    await ready;
    const run = join(scratch, 'declared');
    const config = resolvePretrainConfig(pretrainConfig(packed), {
      epochs: 1,
      normalization: { s2: { mean: [0], std: [10000] } },
    });
    await pretrain({ config, out: run });
    const { peekWeights } = await import('../../lib/io/checkpoint.js');
    const extra = (await peekWeights(join(run, 'checkpoint.safetensors'))).checkpoint as {
      extra: { normalization: Record<string, { mean: number[]; std: number[] }> };
    };
    t.deepEqual(extra.extra.normalization.s2, { mean: [0, 0, 0, 0], std: [10000, 10000, 10000, 10000] });
    t.deepEqual(extra.extra.normalization.s1, new PackedDataset(packed).stats.s1);
    await t.throwsAsync(
      pretrain({
        config: resolvePretrainConfig(pretrainConfig(packed), { normalization: { s2: { mean: [0, 1], std: [1] } } }),
        out: join(scratch, 'declared-wrong'),
      }),
      { code: 'ERR_MMSSL_ARG', message: /s2\.mean must be one value or 4/ },
    );
  },
);
