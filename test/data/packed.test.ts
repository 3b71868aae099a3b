// Packed datasets: what `pack` writes against the source it read (the loader's batches bit for bit in float32, the
// compact dtypes within their rounding), its checksums against Python's zlib, its statistics against the workers'
// computation over the stored values, resuming a killed pack, and every damaged or mismatched pack refused by name.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { data, nn, torch } from '../../lib/index.js';
import { gc } from '../helpers/gc.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-packed-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const MODALITIES = ['s1', 's2', 'naip'];
const SIZES = { naip: [64, 64] as [number, number] };
let source: Promise<string> | undefined;
/** A synthetic dataset without broken samples (so the pack holds the same samples, in the same order). */
function sourceSet(): Promise<string> {
  source ??= data.synthesize({ out: join(scratch, 'source'), perClass: 3, seed: 5, defects: false }).then((r) => r.out);
  return source;
}

const packed = new Map<string, Promise<data.PackReport>>();
function packOf(name: string, options: Partial<data.PackOptions> = {}): Promise<data.PackReport> {
  if (!packed.has(name))
    packed.set(
      name,
      sourceSet().then((s) =>
        data.pack({ source: s, out: join(scratch, name), sizes: SIZES, recordsPerShard: 4, workers: 2, ...options }),
      ),
    );
  return packed.get(name)!;
}
const FLOAT32 = { s1: 'float32', s2: 'float32', naip: 'float32' } as const;

/** The views of each batch of epoch `epoch`, as plain numbers per modality. */
async function batches(dataset: data.Dataset, options: Partial<data.DataLoaderOptions> = {}) {
  await using loader = new data.DataLoader(dataset, {
    modalities: MODALITIES.map((name) => ({ name, size: name === 'naip' ? SIZES.naip : undefined })),
    batchSize: 5,
    splits: ['train', 'val', 'test'],
    seed: 3,
    workers: 2,
    ...options,
  });
  const out: { ids: string[]; views: Record<string, Float32Array[]>; labels: number[] }[] = [];
  for await (const batch of loader.epoch(1)) {
    using b = batch;
    out.push({
      ids: b.ids,
      labels: b.host.labels,
      views: Object.fromEntries(
        Object.entries(b.views).map(([m, vs]) => [m, vs.map((v) => v.contiguous().toTypedArray() as Float32Array)]),
      ),
    });
  }
  return out;
}

test('a float32 pack gives the batches of its source bit for bit, order, labels and augmentations included', async (t) => {
  const report = await packOf('exact', { dtypes: FLOAT32 });
  const pack = new data.PackedDataset(report.out);
  // the same standardisation on both sides (a run on a pack uses the pack's own statistics)
  const options = { augmentation: true, normalization: pack.stats };
  const [fromSource, fromPack] = [
    await batches(await data.openPath(await sourceSet()), options),
    await batches(await data.openPath(report.out), options),
  ];
  t.true(fromSource.length > 1);
  t.is(fromPack.length, fromSource.length);
  fromSource.forEach((b, i) => {
    t.deepEqual(fromPack[i].ids, b.ids);
    t.deepEqual(fromPack[i].labels, b.labels);
    for (const m of MODALITIES) {
      t.is(b.views[m].length, 2);
      t.deepEqual(fromPack[i].views[m], b.views[m], `batch ${i}, ${m}`);
    }
  });
});

test("compact dtypes: 'auto' stores integer sources as integers, exact at their grid and within rounding when resized", async (t) => {
  const report = await packOf('compact');
  const pack = new data.PackedDataset(report.out);
  t.deepEqual(
    pack.modalities.map((m) => [m.name, m.dtype]),
    [
      ['s1', 'int16'],
      ['s2', 'int16'],
      ['naip', 'uint8'],
    ],
  );
  const [fromSource, fromPack] = [await batches(await data.openPath(await sourceSet())), await batches(pack)];
  fromSource.forEach((b, i) => {
    t.deepEqual(fromPack[i].views.s1, b.views.s1);
    t.deepEqual(fromPack[i].views.s2, b.views.s2);
    const worst = b.views.naip[0].reduce((w, v, j) => Math.max(w, Math.abs(v - fromPack[i].views.naip[0][j])), 0);
    t.true(worst <= 0.5, `batch ${i}: naip off by ${worst}`);
  });
});

test("shard and record checksums are zlib's CRC-32 (Python's), and the statistics those of the stored values", async (t) => {
  const report = await packOf('compact');
  const pack = new data.PackedDataset(report.out);
  const script = `
import json, sys, zlib
index = json.load(open(sys.argv[1] + '/pack.json'))
out = []
for s in index['shards']:
    blob = open(sys.argv[1] + '/' + s['file'], 'rb').read()
    out.append(zlib.crc32(blob))
r, n = index['recordBytes'], index['recordsPerShard']
for rec in index['records']:
    blob = open(sys.argv[1] + '/shard-%05d.bin' % rec['shard'], 'rb').read()
    out.append(zlib.crc32(blob[rec['slot'] * r:(rec['slot'] + 1) * r]))
print(json.dumps(out))`;
  const crcs = JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', script, report.out], { encoding: 'utf8' }),
  ) as number[];
  t.deepEqual(crcs, [...pack.index.shards.map((s) => s.crc32), ...pack.samples.map((r) => r.crc32)]);
  t.true(pack.samples.length > 0);
  // The workers' statistics over the pack (each raster read through PackedDataset.read) against the merged shards'.
  const direct = await data.computeBandStats(pack, { modalities: MODALITIES, workers: 2 });
  for (const m of MODALITIES)
    ['mean', 'std'].forEach((k) =>
      direct[m][k as 'mean'].forEach((v, b) =>
        t.true(Math.abs(v - pack.stats[m][k as 'mean'][b]) <= 1e-9 * Math.max(1, Math.abs(v)), `${m} ${k}[${b}]`),
      ),
    );
});

test('a killed pack continues from its complete shards and ends byte for byte as an uninterrupted one', async (t) => {
  const whole = await packOf('compact');
  const out = join(scratch, 'resumed');
  const options = { source: await sourceSet(), out, sizes: SIZES, recordsPerShard: 4, workers: 2 };
  const stop = new Error('killed');
  await t.throwsAsync(
    data.pack({
      ...options,
      onProgress: (done) => {
        if (done === 9) throw stop;
      },
    }),
    { is: stop },
  );
  await t.throwsAsync(data.pack({ ...options, sizes: { naip: [32, 32] } }), {
    code: 'ERR_MMSSL_IO',
    message: /unfinished pack made with other options/,
  });
  const report = await data.pack(options);
  t.true(report.resumedShards >= 2);
  t.is(report.records, whole.records);
  for (let s = 0; s < report.shards; s++) {
    const file = `shard-${String(s).padStart(5, '0')}.bin`;
    t.deepEqual(readFileSync(join(out, file)), readFileSync(join(whole.out, file)), file);
  }
  await t.throwsAsync(data.pack(options), { code: 'ERR_MMSSL_IO', message: /finished pack already/ });
});

test('a corrupted record is named with its shard and sample; skip leaves it out and says so', async (t) => {
  const report = await packOf('corrupt-me');
  const pack = new data.PackedDataset(report.out);
  const victim = pack.samples[6];
  const file = join(report.out, `shard-${String(victim.shard).padStart(5, '0')}.bin`);
  const bytes = readFileSync(file);
  bytes[victim.slot * pack.index.recordBytes + 100] ^= 0xff;
  writeFileSync(file, bytes);
  const damaged = new data.PackedDataset(report.out);
  const error = await t.throwsAsync(batches(damaged), { code: 'ERR_MMSSL_IO' });
  t.regex(
    error!.message,
    new RegExp(
      `shard-0000${victim.shard}\\.bin \\(record ${victim.slot}, ${victim.id.replace(/[.]/g, '\\.')}\\): checksum mismatch`,
    ),
  );
  await using loader = new data.DataLoader(damaged, {
    modalities: ['s1'],
    batchSize: 100,
    splits: ['train', 'val', 'test'],
    onBadSample: 'skip',
  });
  for await (const batch of loader.epoch(0)) {
    using b = batch;
    t.is(b.ids.length, pack.samples.length - 1);
    t.false(b.ids.includes(victim.id));
  }
  t.deepEqual(
    loader.skipped.map((s) => s.id),
    [victim.id],
  );
  await t.throwsAsync(damaged.read(6, 's1'), { code: 'ERR_MMSSL_IO', message: /checksum mismatch/ });
});

test('a truncated shard, a foreign index and another size than packed are refused with what differs', async (t) => {
  const report = await packOf('truncate-me');
  truncateSync(join(report.out, 'shard-00001.bin'), 1000);
  t.throws(() => new data.PackedDataset(report.out), {
    code: 'ERR_MMSSL_IO',
    message: /shard-00001\.bin: 1000 bytes; the index says \d+/,
  });
  const good = await packOf('compact');
  const pack = new data.PackedDataset(good.out);
  t.throws(() => new data.DataLoader(pack, { modalities: [{ name: 'naip', size: [128, 128] }], batchSize: 2 }), {
    code: 'ERR_MMSSL_IO',
    message: /packed naip at 64x64, but 128x128 is asked for: pack the source again with --size naip=128x128/,
  });
  const foreign = mkdtempSync(join(scratch, 'foreign-'));
  t.throws(() => new data.PackedDataset(foreign), { code: 'ERR_MMSSL_IO', message: /pack\.json: cannot read/ });
  writeFileSync(join(foreign, 'pack.json'), '{"format": "other"}');
  t.throws(() => new data.PackedDataset(foreign), { code: 'ERR_MMSSL_IO', message: /not an mmssl pack/ });
  const index = JSON.parse(readFileSync(join(good.out, 'pack.json'), 'utf8')) as data.PackIndex;
  for (const [mangle, message] of [
    [(i: data.PackIndex) => (i.records[3].slot = 99), /record 3 \(.*\) points outside the shards/],
    [(i: data.PackIndex) => (i.records[0].shard = -1), /record 0 \(.*\) points outside the shards/],
    [(i: data.PackIndex) => (i.shards[1].bytes += 1), /shard 1's entry does not match/],
    [(i: data.PackIndex) => (i.modalities[2].bytes = 7), /record layout does not match/],
    [(i: data.PackIndex) => (i.version = 2 as 1), /pack format version 2; this mmssl reads version 1/],
  ] as const) {
    const copy = structuredClone(index);
    mangle(copy);
    writeFileSync(join(foreign, 'pack.json'), JSON.stringify(copy));
    t.throws(() => new data.PackedDataset(foreign), { code: 'ERR_MMSSL_IO', message });
  }
  await t.throwsAsync(data.pack({ source: good.out, out: join(scratch, 'again') }), { code: 'ERR_MMSSL_ARG' });
  await t.throwsAsync(data.pack({ source: await sourceSet(), out: await sourceSet() }), {
    code: 'ERR_MMSSL_IO',
    message: /is not empty/,
  });
});

test('a margin: stored larger, read at the asked size, crops from the stored pixels, the plain view resized', async (t) => {
  const report = await packOf('margin', { margin: 0.1, dtypes: FLOAT32 });
  const pack = new data.PackedDataset(report.out);
  t.deepEqual(pack.modality('naip').size, [70, 70]);
  t.deepEqual(pack.modality('naip').outputSize, [64, 64]);
  t.deepEqual(pack.modality('s1').size, [79, 79]);
  const plain = await batches(pack);
  const augmented = await batches(pack, { augmentation: true });
  t.deepEqual(augmented[0].views.naip[0].length, plain[0].views.naip[0].length);
  t.is(plain[0].views.naip[0].length, 5 * 4 * 64 * 64);
  // the plain view is the stored image resized as the workers resize (antialiased bilinear)
  const index = pack.samples.findIndex((s) => s.id === plain[0].ids[0]);
  const stored = await pack.read(index, 'naip');
  const expected = torch.tidy(() =>
    nn.functional
      .interpolate(torch.fromBuffer(stored.data, [1, 4, 70, 70]), {
        size: [64, 64],
        mode: 'bilinear',
        alignCorners: false,
        antialias: true,
      })
      .toTypedArray(),
  );
  t.deepEqual(plain[0].views.naip[0].subarray(0, 4 * 64 * 64), expected);
  t.throws(() => new data.DataLoader(pack, { modalities: [{ name: 'naip', size: [70, 70] }], batchSize: 2 }), {
    code: 'ERR_MMSSL_IO',
    message: /packed naip at 64x64, but 70x70 is asked for/,
  });
});

test.serial(
  'shard files close with close(), or when the dataset is collected; reading after close() reopens them',
  async (t) => {
    const report = await packOf('compact');
    const openShards = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(report.out);
        } catch {
          return false; // closed while listed
        }
      }).length;
    const before = openShards();
    const pack = new data.PackedDataset(report.out);
    const all = pack.samples.map((_, i) => i);
    (await pack.readRecords(all)).bytes.dispose();
    t.is(openShards() - before, pack.index.shards.length);
    pack.close();
    t.is(openShards(), before);
    (await pack.readRecords([0])).bytes.dispose();
    t.is(openShards() - before, 1);
    await (async () => {
      const dropped = new data.PackedDataset(report.out);
      (await dropped.readRecords(all)).bytes.dispose();
    })();
    for (let i = 0; i < 20 && openShards() - before > 1; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    t.is(openShards() - before, 1, 'the collected dataset closed its files');
    pack.close();
  },
);

test("a value outside the stored dtype's range fails the pack instead of being clipped", async (t) => {
  await t.throwsAsync(data.pack({ source: await sourceSet(), out: join(scratch, 'narrow'), dtypes: { s2: 'uint8' } }), {
    code: 'ERR_MMSSL_ARG',
    message: /\(s2\) holds values in \[\d+, \d+\], outside uint8's range \[0, 255\]; pack s2 as float32/,
  });
});
