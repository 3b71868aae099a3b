// The online k-NN monitor of pre-training: when it runs, what it logs, and that its accuracy is what embedding the
// run's checkpoint (mmssl embed's path) and classifying the validation split by k-NN gives.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { evaluation, torch } from '../../lib/index.js';
import { synthesize } from '../../lib/data/synth/index.js';
import { resolvePretrainConfig } from '../../lib/config/index.js';
import { embed } from '../../lib/eval/embed.js';
import type { KnnMetrics } from '../../lib/runs/records.js';
import { knnInterval } from '../../lib/train/knn_monitor.js';
import { pretrain } from '../../lib/train/pretrain.js';
import { decodeNpy } from '../../lib/data/formats/npy.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-knn-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const ready = synthesize({ out: data, perClass: 6, seed: 4, holdout: { val: 0.34, test: 0.17 }, defects: false });

const config = (knn: Record<string, unknown>, epochs = 2) =>
  resolvePretrainConfig({
    data,
    modalities: ['s1', 's2'],
    epochs,
    batchSize: 8,
    alexnetHidden: 32,
    hiddenDim: 32,
    embeddingDim: 16,
    optimizer: { name: 'adam', lr: 1e-3 },
    threads: 1,
    workers: 1,
    seed: 2,
    knn,
  });

async function knnLines(name: string, knn: Record<string, unknown>, epochs = 2): Promise<KnnMetrics[]> {
  await ready;
  const out = join(scratch, name);
  const seen: KnnMetrics[] = [];
  await pretrain({ config: config(knn, epochs), out, onEpoch: (m) => seen.push(m) });
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as KnnMetrics);
  const logged = lines.filter((l) => 'knn' in l);
  if (JSON.stringify(logged) !== JSON.stringify(seen)) throw new Error('metrics.jsonl and onEpoch disagree');
  return logged;
}

test('auto schedule: the next evaluation waits as many epochs as keep it within 10% of training time', (t) => {
  t.is(knnInterval(0.5, 10), 1);
  t.is(knnInterval(1, 10), 1);
  t.is(knnInterval(1.01, 10), 2);
  t.is(knnInterval(2.2, 4.5), 5);
});

test.serial("every epoch: its accuracy is k-NN over the checkpoint's embeddings, val against train", async (t) => {
  const logged = await knnLines('every', { every: 1, gallerySize: 100000 });
  t.deepEqual(
    logged.map((m) => m.epoch),
    [1, 2],
  );
  const last = logged[1];
  // The checkpoint holds the weights the last evaluation saw: embed them the way `mmssl embed` does.
  const index = await embed({
    init: join(scratch, 'every'),
    data,
    out: join(scratch, 'emb'),
    batchSize: 8,
    workers: 1,
  });
  const fused = decodeNpy(readFileSync(join(scratch, 'emb.npy')), 'emb.npy');
  const width = fused.shape[1];
  const pick = (split: string) =>
    index.ids.flatMap((_, i) => (index.splits[i] === split && index.labels[i] >= 0 ? [i] : []));
  const rowsOf = (indices: number[]) =>
    torch
      .tensor(
        Float32Array.from(
          indices.flatMap((i) => [...(fused.data as Float32Array).subarray(i * width, (i + 1) * width)]),
        ),
      )
      .reshape([indices.length, width]);
  const train = pick('train'),
    val = pick('val');
  t.is(last.knn.gallery, train.length);
  t.is(last.knn.queries, val.length);
  t.is(last.knn.k, 20);
  const accuracy = torch.tidy(() =>
    evaluation.knnAccuracy(
      rowsOf(train),
      train.map((i) => index.labels[i]),
      rowsOf(val),
      val.map((i) => index.labels[i]),
      { numClasses: 6 },
    ),
  );
  t.is(last.knn.accuracy, accuracy);
  t.true(last.knn.seconds > 0);
});

test.serial('every n epochs, a gallery of at most gallerySize, or off', async (t) => {
  const sparse = await knnLines('sparse', { every: 2, gallerySize: 5 }, 3);
  t.deepEqual(
    sparse.map((m) => [m.epoch, m.knn.gallery]),
    [[2, 5]],
  );
  t.deepEqual(await knnLines('off', { every: 0 }, 1), []);
});

test('bad monitor settings are named', (t) => {
  t.throws(() => config({ every: 'often' }), {
    code: 'ERR_MMSSL_ARG',
    message: /knn\.every must be 'auto' \(within 10% of training time\) or an integer >= 0, got string 'often'/,
  });
  t.throws(() => config({ k: 0 }), { code: 'ERR_MMSSL_ARG', message: /knn\.k must be an integer >= 1, got number 0/ });
  t.throws(() => config({ neighbours: 5 }), {
    code: 'ERR_MMSSL_ARG',
    message: /knn key must be one of 'every', 'k', 'temperature', 'gallerySize', got string 'neighbours'/,
  });
});
