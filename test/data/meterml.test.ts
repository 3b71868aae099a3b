// METER-ML as released, against a tiny tree NumPy and Pillow wrote (test/fixtures/data/make_meterml.py), with the
// values the script computed: the index, the decoded rasters, the release's quirks and defects, and bad geojson.
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { multiHot, type Dataset, type Raster } from '../../lib/data/dataset.js';
import { decodeNpy } from '../../lib/data/formats/npy.js';
import { decodePng } from '../../lib/data/formats/png.js';
import { decodeModality, METERML_MODALITIES, type MeterMLModality, openMeterML } from '../../lib/data/meterml.js';
import { openDataset } from '../../lib/data/open.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'data', 'meterml');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-meterml-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

type Decoded = { shape: number[]; sha256: string; mean: number[] };
type Defect =
  | { defect: 'missing' | 'unreadable' }
  | { defect: 'nan'; counts: Record<string, number> }
  | { defect: 'shape'; found: number[] }
  | { defect: 'bands'; found: number };
type Outcome = Decoded | Defect;

interface ExpectedSample {
  id: string;
  split: string;
  type: string;
  latitude: number;
  longitude: number;
  classes: string[];
  label: number;
  negative: boolean;
  modalities: Record<MeterMLModality, Outcome>;
}
const expected: ExpectedSample[] = JSON.parse(readFileSync(join(root, 'expected.json'), 'utf8')).samples;

const sha256 = ({ data }: Raster) =>
  createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');
/** Shape and bytes of a raster: what "the same raster" compares (ava's deepEqual is slow on 2 million floats). */
const digest = (raster: Raster) => ({ shape: raster.shape, sha256: sha256(raster) });

function bandMeans({ shape: [bands, h, w], data }: Raster): number[] {
  return Array.from(
    { length: bands },
    (_, b) => data.subarray(b * h * w, (b + 1) * h * w).reduce((s, v) => s + v, 0) / (h * w),
  );
}

/** Each (sample, modality) the script wrote, with what reading it must give. */
const cases = expected.flatMap((sample, index) =>
  Object.entries(sample.modalities).map(([modality, outcome]) => ({
    index,
    sample,
    modality: modality as MeterMLModality,
    outcome,
    file: join(root, sample.id, METERML_MODALITIES[modality as MeterMLModality].file),
  })),
);
const decodable = cases.flatMap((c) => ('defect' in c.outcome ? [] : [{ ...c, outcome: c.outcome }]));
const defects = cases.flatMap((c) => ('defect' in c.outcome ? [{ ...c, outcome: c.outcome }] : []));

test('indexes the three splits in order, each site with its folder, classes and position', async (t) => {
  const dataset = await openMeterML(root);
  t.deepEqual(
    dataset.samples,
    expected.map(({ id, split, classes, label, negative, latitude, longitude }) => ({
      id,
      split,
      classes,
      label,
      negative,
      latitude,
      longitude,
    })),
  );
  t.deepEqual(dataset.spec, { kind: 'meterml', root, options: {} });
});

test("train folders are found in the train_images_N part that holds them, whatever the geojson's order", async (t) => {
  const ids = (await openMeterML(root, { splits: ['train'] })).samples.map((s) => s.id);
  t.deepEqual(ids, [
    'train_images/train_images_2/35.5555555_-101.2222222',
    'train_images/train_images_1/40.1234567_-95.1234567',
    'train_images/train_images_3/38.8205231_-75.7927729',
  ]);
});

test('Type: classes joined by "-" are multi-class, Negative is a negative, Roundabout is no class and no negative', async (t) => {
  const samples = (await openMeterML(root)).samples;
  const byType = (type: string) => samples[expected.findIndex((s) => s.type === type)];
  const multi = byType('CAFOs-Landfills');
  t.like(multi, { classes: ['CAFOs', 'Landfills'], label: 0, negative: false });
  t.deepEqual(Array.from(multiHot(multi)), [1, 1, 0, 0, 0, 0]);
  t.like(byType('Negative'), { classes: [], label: -1, negative: true });
  t.like(byType('Roundabout'), { classes: [], label: -1, negative: false });
  t.like(byType('WWTreatment'), { classes: ['WWTreatment'], label: 5 });
});

test('modalities: s1, s2 (10 m), NAIP and the 20 m and 60 m Sentinel-2 files, with band names and native grids', async (t) => {
  const dataset = await openMeterML(root);
  t.deepEqual(dataset.modalities, [
    { name: 's1', bands: ['VV', 'VH'], size: [72, 72] },
    { name: 's2', bands: ['R', 'G', 'B', 'NIR'], size: [72, 72] },
    { name: 'naip', bands: ['R', 'G', 'B', 'NIR'], size: [720, 720] },
    { name: 's2_20m', bands: ['B5', 'B6', 'B7', 'B8A', 'B11', 'B12'], size: [36, 36] },
    { name: 's2_60m', bands: ['B1', 'B9', 'B10'], size: [12, 12] },
  ]);
});

test('every readable file decodes to the values NumPy and Pillow wrote, channels first (NIR from the alpha channel, not premultiplied)', async (t) => {
  const dataset = await openMeterML(root);
  t.true(decodable.length >= 25);
  for (const { index, sample, modality, outcome } of decodable) {
    const raster = await dataset.read(index, modality);
    const what = `${sample.id} ${modality}`;
    t.deepEqual(raster.shape, outcome.shape, what);
    t.is(sha256(raster), outcome.sha256, what);
    bandMeans(raster).forEach((m, b) =>
      t.true(
        Math.abs(m - outcome.mean[b]) <= 1e-9 * Math.abs(outcome.mean[b]),
        `${what} band ${b}: ${m} vs ${outcome.mean[b]}`,
      ),
    );
    t.is(
      raster.data.byteLength,
      raster.data.buffer.byteLength,
      'the raster owns its buffer, so a worker can transfer it',
    );
  }
});

/** What each defect's message must say, from what the script recorded. */
function defectMessage(outcome: Defect, modality: MeterMLModality): RegExp {
  const escape = (s: string) => s.replace(/[[\]().*+?^$|\\]/g, '\\$&');
  switch (outcome.defect) {
    case 'missing':
      return new RegExp(`missing: the sample folder has no ${escape(METERML_MODALITIES[modality].file)}`);
    case 'unreadable':
      return /not a readable (\.npy|PNG) file: /;
    case 'shape':
      return new RegExp(
        escape(`shape [${outcome.found.join(', ')}], expected [${METERML_MODALITIES[modality].size.join(', ')}, `),
      );
    case 'bands':
      return new RegExp(escape(`${outcome.found} bands, expected ${METERML_MODALITIES[modality].bands.length} (`));
    case 'nan': {
      const total = Object.values(outcome.counts).reduce((a, b) => a + b, 0);
      return new RegExp(
        escape(
          `${total} NaN or nodata pixels (${Object.entries(outcome.counts)
            .map(([band, n]) => `${band}: ${n}`)
            .join(', ')})`,
        ),
      );
    }
  }
}

test("the release's defects are FileErrors naming the sample folder and the file: missing, unreadable, wrong shape or band count, NaN", async (t) => {
  const dataset = await openMeterML(root);
  t.deepEqual([...new Set(defects.map((c) => c.outcome.defect))].sort(), [
    'bands',
    'missing',
    'nan',
    'shape',
    'unreadable',
  ]);
  for (const { index, sample, modality, outcome, file } of defects) {
    const error = await t.throwsAsync(
      dataset.read(index, modality),
      { code: 'ERR_MMSSL_IO', message: defectMessage(outcome, modality) },
      `${sample.id} ${modality}`,
    );
    t.is((error as { path?: string })?.path, file);
    t.true(
      error?.message.startsWith(`${join(root, sample.id)}/${METERML_MODALITIES[modality].file}: `),
      error?.message,
    );
  }
});

test('decodeModality decodes bytes handed to it, in a worker thread too, as read does', async (t) => {
  const dataset = await openMeterML(root);
  for (const { index, modality, file } of cases.filter((c) => c.index === 0)) {
    t.deepEqual(
      digest(decodeModality(modality, readFileSync(file), file)),
      digest(await dataset.read(index, modality)),
      modality,
    );
  }
  const { file } = cases.find((c) => c.index === 0 && c.modality === 'naip')!;
  const bytes = readFileSync(file);
  const worker = new Worker(
    new URL(
      'data:text/javascript,' +
        encodeURIComponent(`
    import { parentPort, workerData } from 'node:worker_threads';
    import { decodeModality } from ${JSON.stringify(new URL('../../lib/data/meterml.js', import.meta.url).href)};
    const raster = decodeModality('naip', workerData.bytes, workerData.file);
    parentPort.postMessage(raster, [raster.data.buffer]);`),
    ),
    { workerData: { bytes, file } },
  );
  const fromWorker: Raster = await new Promise((resolve, reject) =>
    worker.once('message', resolve).once('error', reject),
  );
  await worker.terminate();
  t.deepEqual(digest(fromWorker), digest(decodeModality('naip', bytes, file)));
});

test('options: the splits to index, in their order, and band names in file order, reported and used in messages', async (t) => {
  const valTest = await openMeterML(root, { splits: ['test', 'val'] });
  t.deepEqual(
    valTest.samples.map((s) => s.id),
    [...expected.filter((s) => s.split === 'test'), ...expected.filter((s) => s.split === 'val')].map((s) => s.id),
  );
  const options = { bands: { s2: ['B2', 'B3', 'B4', 'B8'] } };
  const renamed = await openMeterML(root, options);
  t.deepEqual(renamed.modalities.find((m) => m.name === 's2')?.bands, ['B2', 'B3', 'B4', 'B8']);
  t.deepEqual(renamed.spec, { kind: 'meterml', root, options });
  const nan = defects.find((c) => c.outcome.defect === 'nan')!;
  await t.throwsAsync(renamed.read(nan.index, 's2'), {
    code: 'ERR_MMSSL_IO',
    message: /4 NaN or nodata pixels \(B3: 3, B8: 1\)/,
  });
  // invalid: 'fill' puts each band's mean over its valid pixels where NaN was, computed here from NumPy's array
  const filled = await (await openMeterML(root, { invalid: 'fill' })).read(nan.index, 's2');
  const raw = decodeNpy(readFileSync(nan.file), nan.file);
  const [, , bands] = raw.shape,
    plane = raw.shape[0] * raw.shape[1];
  for (let b = 0; b < bands; b++) {
    const values = Array.from({ length: plane }, (_, p) => Number(raw.data[p * bands + b]));
    const valid = values.filter((v) => !Number.isNaN(v));
    const mean = valid.reduce((a, v) => a + v, 0) / valid.length;
    const expectedBand = values.map((v) => Math.fround(Number.isNaN(v) ? mean : v));
    t.deepEqual(Array.from(filled.data.subarray(b * plane, (b + 1) * plane)), expectedBand, `band ${b}`);
  }
  await t.throwsAsync(openMeterML(root, { invalid: 'drop' as never }), { code: 'ERR_MMSSL_ARG', message: /invalid/ });
  const first = cases.find((c) => c.index === 0 && c.modality === 's2')!;
  t.deepEqual(
    digest(await renamed.read(0, 's2')),
    digest(await (await openMeterML(root)).read(0, 's2')),
    'names only: no band moves',
  );
  t.deepEqual(
    digest(decodeModality('s2', readFileSync(first.file), first.file, options)),
    digest(await renamed.read(0, 's2')),
  );
});

test('openDataset(spec) reopens the same dataset, as a data worker does', async (t) => {
  const dataset = await openMeterML(root, { splits: ['val'], bands: { s2: ['B', 'G', 'R', 'NIR'] } });
  const reopened: Dataset = await openDataset(structuredClone(dataset.spec));
  t.deepEqual(reopened.samples, dataset.samples);
  t.deepEqual(reopened.modalities, dataset.modalities);
  t.deepEqual(digest(await reopened.read(0, 's1')), digest(await dataset.read(0, 's1')));
});

test('bad options and read arguments are ArgumentErrors naming the argument', async (t) => {
  const bad: [unknown, unknown, RegExp][] = [
    ['', undefined, /root must be a folder path/],
    [root, { splits: ['training'] }, /splits must be one of 'train', 'val', 'test', got string 'training'/],
    [root, { splits: [] }, /splits must be a non-empty array/],
    [root, { split: ['val'] }, /option must be one of 'splits', 'bands', 'invalid', got string 'split'/],
    [root, { bands: { s2: ['R', 'G', 'B'] } }, /bands\.s2 must be 4 band names/],
    [root, { bands: { s3: ['VV', 'VH'] } }, /bands modality must be one of 's1'/],
    [root, 'val', /options must be an options object/],
  ];
  for (const [path, options, message] of bad) {
    await t.throwsAsync(
      openMeterML(path as string, options as object),
      { code: 'ERR_MMSSL_ARG', message },
      String(message),
    );
  }
  const dataset = await openMeterML(root);
  await t.throwsAsync(dataset.read(-1, 's1'), {
    code: 'ERR_MMSSL_ARG',
    message: /read: index must be an index in \[0, 8\), got number -1/,
  });
  await t.throwsAsync(dataset.read(8, 's1'), { code: 'ERR_MMSSL_ARG', message: /index in \[0, 8\)/ });
  await t.throwsAsync(dataset.read(0, 'rgb'), {
    code: 'ERR_MMSSL_ARG',
    message: /read: modality must be one of 's1', 's2', 'naip', 's2_20m', 's2_60m', got string 'rgb'/,
  });
  t.throws(() => decodeModality('s3' as MeterMLModality, new Uint8Array(), 'x.npy'), { code: 'ERR_MMSSL_ARG' });
});

// ---- bad geojson and layouts, in scratch roots with a val split only ----------------------------------------------

let roots = 0;

/** A root with `geojson` (text, or JSON to serialise) as val_dataset.geojson and empty sample `folders`. */
function scratchRoot(geojson: unknown, folders: string[] = ['val_images/10.0_20.0']): string {
  const dir = join(scratch, `root-${roots++}`);
  mkdirSync(dir);
  if (geojson !== undefined)
    writeFileSync(join(dir, 'val_dataset.geojson'), typeof geojson === 'string' ? geojson : JSON.stringify(geojson));
  for (const folder of folders) mkdirSync(join(dir, folder), { recursive: true });
  return dir;
}

const site = (properties: Record<string, unknown> = {}) => ({
  type: 'Feature',
  properties: {
    Latitude: 10,
    Longitude: 20,
    Type: 'Mines',
    Source: 'test',
    Image_Folder: 'val_images/10.0_20.0',
    ...properties,
  },
});
const collection = (...features: unknown[]) => ({ type: 'FeatureCollection', features });
const { Type: _, ...withoutType } = site().properties;

test('geojson that is missing, not JSON, not a FeatureCollection, or whose features lack properties is a FileError naming the file and the feature', async (t) => {
  const bad: [unknown, RegExp][] = [
    [undefined, /missing: the split's sites are listed here/],
    ['{"type": "FeatureCollection", "features": [', /not JSON: /],
    [{ type: 'Feature', properties: {} }, /not a GeoJSON FeatureCollection/],
    [{ type: 'FeatureCollection' }, /not a GeoJSON FeatureCollection/],
    [collection(site(), { type: 'Feature', properties: withoutType }), /feature 1 lacks the property Type$/],
    [collection({ type: 'Feature', geometry: null }), /feature 0 has no properties object/],
    [collection(site({ Latitude: '10.0' })), /feature 0: Latitude is "10.0", not a number/],
    [
      collection(site(), site(), site({ Image_Folder: 'val_images/nowhere' })),
      /feature 2: Image_Folder val_images\/nowhere is not a folder in .*val_images or its val_images_N parts/,
    ],
  ];
  for (const [geojson, message] of bad) {
    const dir = scratchRoot(geojson);
    const error = await t.throwsAsync(
      openMeterML(dir, { splits: ['val'] }),
      { code: 'ERR_MMSSL_IO', message },
      String(message),
    );
    t.is((error as { path?: string })?.path, join(dir, 'val_dataset.geojson'));
    t.true(error?.message.startsWith(`${join(dir, 'val_dataset.geojson')}: `));
  }
});

test("a split without its images folder is a FileError naming the folder; val and test may have parts like train's, and Image_Folder may name one", async (t) => {
  const noImages = scratchRoot(collection(site()), []);
  await t.throwsAsync(openMeterML(noImages, { splits: ['val'] }), {
    code: 'ERR_MMSSL_IO',
    message: `${join(noImages, 'val_images')}: missing: the val split's sample folders belong here`,
  });
  const parts = scratchRoot(collection(site(), site({ Image_Folder: 'val_images/val_images_2/10.0_20.0' })), [
    'val_images/val_images_1/10.0_20.0',
    'val_images/val_images_2/10.0_20.0',
  ]);
  t.deepEqual(
    (await openMeterML(parts, { splits: ['val'] })).samples.map((s) => s.id),
    [
      'val_images/val_images_1/10.0_20.0', // a name in two parts: the first part
      'val_images/val_images_2/10.0_20.0', // an Image_Folder naming its part
    ],
  );
});

test('decodePng checks CRCs: a damaged chunk is a FileError even where its data still inflates', (t) => {
  const file = decodable.find((c) => c.modality === 'naip')!.file;
  const bytes = Buffer.from(readFileSync(file));
  const idat = bytes.indexOf('IDAT'); // the chunk: length (4 bytes), 'IDAT', data, CRC (4 bytes)
  bytes[idat + 4 + bytes.readUInt32BE(idat - 4)] ^= 0x10;
  t.throws(() => decodePng(bytes, file), {
    code: 'ERR_MMSSL_IO',
    message: new RegExp(`^${file.replace(/[.]/g, '\\.')}: not a readable PNG file: .*crc`, 'i'),
  });
});
