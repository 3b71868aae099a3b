import test from 'ava';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { data, nn, torch } from '../../lib/index.js';
import { values } from '../helpers/reference.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'data', 'meterml');
const MODALITIES = ['s1', 's2', 'naip'];

/** The samples whose three modalities all read (the fixture holds deliberately broken ones). */
async function readable(dataset: data.Dataset): Promise<number[]> {
  const ok = await Promise.all(
    dataset.samples.map((_, i) =>
      Promise.all(MODALITIES.map((m) => dataset.read(i, m))).then(
        () => true,
        () => false,
      ),
    ),
  );
  return ok.flatMap((good, i) => (good ? [i] : []));
}

/** Drains one epoch: ids per batch, and whatever `keep` extracts from each batch before it is disposed. */
async function drain<T>(
  loader: data.DataLoader,
  epoch: number,
  keep: (b: data.Batch) => T,
): Promise<{ ids: string[][]; kept: T[] }> {
  const ids: string[][] = [],
    kept: T[] = [];
  for await (const batch of loader.epoch(epoch)) {
    using b = batch;
    ids.push(b.ids);
    kept.push(keep(b));
  }
  return { ids, kept };
}

test('every readable sample once per epoch, bad ones skipped and reported; the order depends on seed and epoch only', async (t) => {
  const dataset = await data.openMeterML(root);
  const make = (seed: number) =>
    new data.DataLoader(dataset, {
      modalities: MODALITIES,
      batchSize: 3,
      splits: ['train', 'val', 'test'],
      seed,
      workers: 2,
      onBadSample: 'skip',
    });
  await using a = make(1),
    b = make(1),
    c = make(2);
  const first = await drain(a, 0, () => 0);
  const delivered = first.ids.flat();
  const skippedIds = a.skipped.map((s) => s.id);
  t.is(new Set(delivered).size, delivered.length, 'no sample twice');
  t.deepEqual(
    [...delivered, ...skippedIds].sort(),
    dataset.samples.map((s) => s.id).sort(),
    'every sample delivered or skipped',
  );
  t.true(a.skipped.length >= 1 && a.skipped.every((s) => s.message.includes(s.id)), JSON.stringify(a.skipped));
  t.deepEqual((await drain(b, 0, () => 0)).ids, first.ids, 'same seed, same epoch: same batches');
  t.notDeepEqual(a.batches(1), a.batches(0), 'another epoch, another order');
  t.notDeepEqual(c.batches(0), a.batches(0), 'another seed, another order');
  t.is(a.length, Math.ceil(dataset.samples.length / 3));
});

test('without augmentation a batch holds exactly what the reader returns, standardised, with labels and masks', async (t) => {
  const dataset = await data.openMeterML(root, { splits: ['train', 'test'] });
  const good = await readable(dataset);
  const normalization = {
    s1: { mean: [1000, 2000], std: [10, 20] },
    s2: { mean: [0, 0, 0, 0], std: [1, 1, 1, 1] },
    naip: { mean: [1, 2, 3, 4], std: [2, 2, 2, 2] },
  };
  await using loader = new data.DataLoader(dataset, {
    modalities: MODALITIES,
    batchSize: 8,
    splits: ['train', 'test'],
    shuffle: false,
    workers: 2,
    onBadSample: 'skip',
    normalization,
  });
  const {
    kept: [batch],
  } = await drain(loader, 0, (b) => ({
    locations: values(b.locations),
    labels: values(b.labels),
    negative: values(b.negative),
    targets: b.targets.shape,
    s1: b.views.s1.map((v) => v.shape),
    naip0: values(b.views.naip[0].select(0, 0)),
    s1first: values(b.views.s1[0].select(0, 0)),
  }));
  t.deepEqual(batch.locations, good);
  t.deepEqual(
    batch.labels,
    good.map((i) => dataset.samples[i].label),
  );
  t.deepEqual(
    batch.negative,
    good.map((i) => Number(dataset.samples[i].negative)),
  );
  t.deepEqual(batch.targets, [good.length, 6]);
  t.deepEqual(batch.s1, [[good.length, 2, 72, 72]], 'one untouched view');
  const s1 = await dataset.read(good[0], 's1');
  const plane = 72 * 72;
  t.deepEqual(
    batch.s1first,
    Array.from(s1.data, (v, i) => (i < plane ? (v - 1000) / 10 : (v - 2000) / 20)).map((v) => Math.fround(v)),
  );
  const naip = await dataset.read(good[0], 'naip');
  t.deepEqual(
    batch.naip0,
    Array.from(naip.data, (v, i) => Math.fround((v - (1 + Math.floor(i / 720 / 720))) / 2)),
  );
});

test('a modality delivered at another size is resized in the workers (antialiased), then standardised', async (t) => {
  const dataset = await data.openMeterML(root, { splits: ['test'] });
  const [index] = await readable(dataset);
  const normalization = { naip: { mean: [10, 20, 30, 40], std: [2, 4, 8, 16] } };
  await using loader = new data.DataLoader(dataset, {
    modalities: [{ name: 'naip', size: [96, 80] }],
    batchSize: 8,
    splits: ['test'],
    shuffle: false,
    workers: 1,
    onBadSample: 'skip',
    normalization,
  });
  const {
    kept: [first],
  } = await drain(loader, 0, (b) => ({ shape: b.views.naip[0].shape, values: values(b.views.naip[0].select(0, 0)) }));
  const raw = await dataset.read(index, 'naip');
  const expected = torch.tidy(() =>
    values(
      nn.functional
        .interpolate(torch.tensor(raw.data).reshape([1, ...raw.shape]), {
          size: [96, 80],
          mode: 'bilinear',
          antialias: true,
        })
        .sub(torch.tensor([10, 20, 30, 40]).reshape([4, 1, 1]))
        .div(torch.tensor([2, 4, 8, 16]).reshape([4, 1, 1])),
    ),
  );
  t.deepEqual(first.shape, [loader.batches(0)[0].length - loader.skipped.length, 4, 96, 80]);
  t.true(first.values.every((v, i) => Math.abs(v - expected[i]) <= 1e-5 * (1 + Math.abs(expected[i]))));
});

test('augmented views: two per modality, resized, reproducible for a seed, different between views', async (t) => {
  const dataset = await data.openMeterML(root, { splits: ['test'] });
  const options = {
    modalities: ['s2', { name: 'naip', size: [128, 128] as [number, number] }],
    batchSize: 3,
    splits: ['test' as const],
    augmentation: true,
    seed: 5,
    workers: 1,
    onBadSample: 'skip' as const,
  };
  const n = (await readable(dataset)).length;
  await using a = new data.DataLoader(dataset, options),
    b = new data.DataLoader(dataset, options);
  const grab = (x: data.Batch) => ({
    shapes: x.views.naip.map((v) => v.shape),
    naip: x.views.naip.map(values),
    s2: x.views.s2.map(values),
  });
  const [ra, rb] = [(await drain(a, 3, grab)).kept[0], (await drain(b, 3, grab)).kept[0]];
  t.deepEqual(ra.shapes, [
    [n, 4, 128, 128],
    [n, 4, 128, 128],
  ]);
  t.deepEqual(ra, rb);
  t.notDeepEqual(ra.s2[0], ra.s2[1]);
});

test('a bad sample raises a FileError naming its folder and file; bad options are refused by name', async (t) => {
  const dataset = await data.openMeterML(root, { splits: ['train'] });
  await using loader = new data.DataLoader(dataset, {
    modalities: MODALITIES,
    batchSize: 8,
    shuffle: false,
    workers: 1,
  });
  await t.throwsAsync(
    drain(loader, 0, () => 0),
    { code: 'ERR_MMSSL_IO', message: /38\.8205231_-75\.7927729.*sentinel-1\.npy|sentinel-1\.npy.*38\.8205231/ },
  );
  t.throws(() => new data.DataLoader(dataset, { modalities: ['sar'], batchSize: 2 }), {
    code: 'ERR_MMSSL_ARG',
    message: /modalities must be names among s1, s2, naip/,
  });
  t.throws(() => new data.DataLoader(dataset, { modalities: ['s1'], batchSize: 0 }), {
    code: 'ERR_MMSSL_ARG',
    message: /batchSize must be a positive integer/,
  });
  t.throws(() => new data.DataLoader(dataset, { modalities: ['s1'], batchSize: 2, splits: ['val'] }), {
    code: 'ERR_MMSSL_ARG',
    message: /splits/,
  });
  t.throws(
    () =>
      new data.DataLoader(dataset, {
        modalities: ['s1'],
        batchSize: 2,
        normalization: { s1: { mean: [0], std: [1] } },
      }),
    { code: 'ERR_MMSSL_ARG', message: /normalization.s1 must be mean and std of 2 bands/ },
  );
});

test("band statistics equal numpy's over the same files, and are cached in the user cache, never in the dataset", async (t) => {
  const dataset = await data.openMeterML(root, { splits: ['test'] });
  const stats = await data.computeBandStats(dataset, {
    modalities: ['s1', 'naip'],
    splits: ['test'],
    workers: 2,
    onBadSample: 'skip',
  });
  await t.throwsAsync(data.computeBandStats(dataset, { modalities: ['s1'], splits: ['test'] }), {
    code: 'ERR_MMSSL_IO',
    message: /sentinel-1\.npy/,
  });
  const good = new Set((await readable(dataset)).map((i) => dataset.samples[i].id));
  const script = `
import json, os, sys, numpy as np
from PIL import Image
root = sys.argv[1]
folders = json.loads(sys.argv[2])
s1 = np.stack([np.load(os.path.join(root, f, "sentinel-1.npy")).astype(np.float64) for f in folders])
naip = np.stack([np.asarray(Image.open(os.path.join(root, f, "naip.png")), dtype=np.float64) for f in folders])
print(json.dumps({m: {"mean": a.mean(axis=(0, 1, 2)).tolist(), "std": a.std(axis=(0, 1, 2)).tolist()} for m, a in (("s1", s1), ("naip", naip))}))`;
  const expected = JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', script, root, JSON.stringify([...good])], { encoding: 'utf8' }),
  ) as data.NormalizationStats;
  for (const m of ['s1', 'naip']) {
    stats[m].mean.forEach((v, i) =>
      t.true(
        Math.abs(v - expected[m].mean[i]) <= 1e-9 * Math.abs(expected[m].mean[i]),
        `${m} mean ${i}: ${v} vs ${expected[m].mean[i]}`,
      ),
    );
    stats[m].std.forEach((v, i) =>
      t.true(
        Math.abs(v - expected[m].std[i]) <= 1e-9 * expected[m].std[i],
        `${m} std ${i}: ${v} vs ${expected[m].std[i]}`,
      ),
    );
  }
  const copy = mkdtempSync(join(tmpdir(), 'mmssl-stats-'));
  t.teardown(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(root, copy, { recursive: true });
  const cache = mkdtempSync(join(tmpdir(), 'mmssl-cache-'));
  const savedCache = process.env.MMSSL_CACHE_DIR;
  process.env.MMSSL_CACHE_DIR = cache;
  t.teardown(() => {
    if (savedCache === undefined) delete process.env.MMSSL_CACHE_DIR;
    else process.env.MMSSL_CACHE_DIR = savedCache;
    rmSync(cache, { recursive: true, force: true });
  });
  const copied = await data.openMeterML(copy, { splits: ['test'] });
  const skipped: data.SkippedSample[] = [];
  const options = {
    modalities: ['s1', 'naip'],
    splits: ['test' as const],
    workers: 2,
    onBadSample: 'skip' as const,
    onSkip: (s: data.SkippedSample) => skipped.push(s),
  };
  const before = readdirSync(copy, { recursive: true }).sort();
  t.deepEqual(await data.loadOrComputeBandStats(copied, options), stats);
  t.deepEqual(
    readdirSync(copy, { recursive: true }).sort(),
    before,
    'the dataset folder is not written (it may be read-only)',
  );
  t.false(existsSync(data.bandStatsCachePath(copied)));
  t.is(readdirSync(cache).filter((f) => /^band-stats-[0-9a-f]{16}\.json$/.test(f)).length, 1, 'kept in the user cache');
  const skippedWhenComputed = skipped.splice(0);
  t.true(
    skippedWhenComputed.length > 0 && skippedWhenComputed.every((s) => /sentinel-1\.npy/.test(s.message)),
    `the skipped samples are told, with their reasons: ${JSON.stringify(skippedWhenComputed)}`,
  );
  rmSync(join(copy, 'test_images'), { recursive: true }); // the cache answers without reading a file
  t.deepEqual(await data.loadOrComputeBandStats(copied, options), stats);
  t.deepEqual(skipped, skippedWhenComputed, 'a cached result tells the samples its computation skipped');
  await t.throwsAsync(
    data.loadOrComputeBandStats(copied, { ...options, onBadSample: 'raise' }),
    { code: 'ERR_MMSSL_IO' },
    'other options: recomputed',
  );
  // a statistics file beside the dataset (written by hand, or by an older mmssl) is read when its key matches
  const own = join(tmpdir(), `mmssl-stats-own-${process.pid}.json`);
  t.teardown(() => rmSync(own, { force: true }));
  await data.writeBandStats(
    own,
    copied,
    options,
    { s1: { mean: [1, 2], std: [3, 4] }, naip: { mean: [0, 0, 0, 0], std: [1, 1, 1, 1] } },
    [],
  );
  cpSync(own, data.bandStatsCachePath(copied));
  t.deepEqual(
    (await data.loadOrComputeBandStats(copied, options)).s1,
    { mean: [1, 2], std: [3, 4] },
    "the dataset's own file comes before the user cache",
  );
});

test('close() settles in a plain Node process, mid-epoch with reads in flight, and the process exits by itself', (t) => {
  // Under ava the test runner keeps the event loop alive; a script alone is what users run.
  const script = `
    import { data } from ${JSON.stringify(new URL('../../lib/index.js', import.meta.url).href)};
    const dataset = await data.openMeterML(${JSON.stringify(root)});
    const loader = new data.DataLoader(dataset, { modalities: ['s1', 'naip'], batchSize: 2, workers: 2, prefetch: 2, onBadSample: 'skip' });
    for await (const batch of loader.epoch(0)) { batch[Symbol.dispose](); break; }
    await loader.close();
    console.log('closed');`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.is(out.trim(), 'closed');
});
