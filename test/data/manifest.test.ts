// GeoTIFF manifests over real multi-modal data: two co-registered BigEarthNet-MM locations (Sentinel-1 VV/VH and the
// twelve Sentinel-2 bands, one file each at 10, 20 and 60 m), real multi-band and nodata files, checked against
// GDAL's arrays (MANIFEST.json) and, for resampled bands, a TypeScript bilinear reference.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { data } from '../../lib/index.js';
import type { Raster } from '../../lib/data/dataset.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'real');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-manifest-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

interface GdalFile {
  width: number;
  height: number;
  bands: { sha256: string; numpy_dtype: string; mean: number }[];
}
interface GdalLocation {
  modalities: Record<'sentinel-1' | 'sentinel-2', { files: Record<string, string> }>;
}
const gdal: { files: Record<string, GdalFile>; locations: Record<string, GdalLocation> } = JSON.parse(
  readFileSync(join(fixtures, 'MANIFEST.json'), 'utf8'),
);
const locations = Object.entries(gdal.locations);

/** A fixture's path as a manifest in `scratch` names it: relative to the manifest's folder. */
const rel = (path: string) => relative(scratch, join(fixtures, path));
const S1_BANDS = ['VV', 'VH'];
const S2_BANDS = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B11', 'B12'];
const LABELS = ['Negative', 'CAFOs-Landfills'];

function writeManifest(name: string, json: unknown): string {
  const path = join(scratch, name);
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

/** The two BigEarthNet locations, Sentinel-1 and Sentinel-2 as one file per band. */
function bigEarthNetGeoJson(extra: Record<string, unknown> = {}) {
  return {
    type: 'FeatureCollection',
    ...extra,
    features: locations.map(([id, loc], i) => ({
      type: 'Feature',
      geometry: { type: 'Point', coordinates: [10 + i, 50 + i] },
      properties: {
        id,
        split: i === 0 ? 'train' : 'val',
        label: LABELS[i],
        s1: Object.fromEntries(S1_BANDS.map((b) => [b, rel(loc.modalities['sentinel-1'].files[b])])),
        s2: Object.fromEntries(S2_BANDS.map((b) => [b, rel(loc.modalities['sentinel-2'].files[b])])),
      },
    })),
  };
}

function bigEarthNetCsv(): string {
  const header = [
    'id',
    'split',
    'label',
    'latitude',
    'longitude',
    ...S1_BANDS.map((b) => `s1:${b}`),
    ...S2_BANDS.map((b) => `s2:${b}`),
  ];
  const rows = locations.map(([id, loc], i) => [
    id,
    i === 0 ? 'train' : 'val',
    LABELS[i],
    50 + i,
    10 + i,
    ...S1_BANDS.map((b) => rel(loc.modalities['sentinel-1'].files[b])),
    ...S2_BANDS.map((b) => rel(loc.modalities['sentinel-2'].files[b])),
  ]);
  return [header, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

const bandOf = ({ shape: [, h, w], data: values }: Raster, b: number) => values.subarray(b * h * w, (b + 1) * h * w);
const sha256 = (values: ArrayLike<number>, Type: Uint16ArrayConstructor | Float32ArrayConstructor) =>
  createHash('sha256')
    .update(new Uint8Array(Type.from(values).buffer))
    .digest('hex');
const digest = (r: Raster) =>
  createHash('sha256')
    .update(new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength))
    .digest('hex');

/** Bilinear upsampling by an integer factor with align_corners false (PyTorch's convention), in float64. */
function upsampleReference(src: ArrayLike<number>, h: number, w: number, factor: number): Float64Array {
  const out = new Float64Array(h * factor * w * factor);
  const coord = (d: number, n: number) => {
    const x = Math.max((d + 0.5) / factor - 0.5, 0);
    const i0 = Math.min(Math.floor(x), n - 1),
      i1 = Math.min(i0 + 1, n - 1);
    return [i0, i1, x - i0] as const;
  };
  for (let y = 0; y < h * factor; y++) {
    const [y0, y1, fy] = coord(y, h);
    for (let x = 0; x < w * factor; x++) {
      const [x0, x1, fx] = coord(x, w);
      const top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx,
        bottom = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx;
      out[y * w * factor + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

async function gdalBand(path: string): Promise<{ file: GdalFile; values: Float32Array }> {
  const raster = await data.decodeGeoTiff(readFileSync(join(fixtures, path)), path);
  return { file: gdal.files[path], values: raster.data };
}

const ben = writeManifest('ben.geojson', bigEarthNetGeoJson());

test('BigEarthNet-MM through a GeoJSON manifest: modalities inferred, 10 m bands as GDAL reads them, 20 m and 60 m bands upsampled bilinearly', async (t) => {
  const dataset = await data.openManifest(ben);
  t.deepEqual(dataset.modalities, [
    { name: 's1', bands: S1_BANDS, size: [120, 120] },
    { name: 's2', bands: S2_BANDS, size: [120, 120] },
  ]);
  t.deepEqual(
    dataset.samples.map((s) => [s.id, s.split, s.classes, s.negative, s.latitude, s.longitude]),
    [
      [locations[0][0], 'train', [], true, 50, 10],
      [locations[1][0], 'val', ['CAFOs', 'Landfills'], false, 51, 11],
    ],
  );
  for (const [index, [, loc]] of locations.entries()) {
    const s1 = await dataset.read(index, 's1');
    t.deepEqual(s1.shape, [2, 120, 120]);
    S1_BANDS.forEach((b, k) =>
      t.is(
        sha256(bandOf(s1, k), Float32Array),
        gdal.files[loc.modalities['sentinel-1'].files[b]].bands[0].sha256,
        `s1 ${b}`,
      ),
    );
    const s2 = await dataset.read(index, 's2');
    t.deepEqual(s2.shape, [12, 120, 120]);
    for (const [k, b] of S2_BANDS.entries()) {
      const { file, values } = await gdalBand(loc.modalities['sentinel-2'].files[b]);
      if (file.width === 120) {
        t.is(sha256(bandOf(s2, k), Uint16Array), file.bands[0].sha256, `s2 ${b} (10 m): GDAL's values`);
        continue;
      }
      const expected = upsampleReference(values, file.height, file.width, 120 / file.width);
      const ours = bandOf(s2, k);
      const worst = expected.reduce((m, v, i) => Math.max(m, Math.abs(ours[i] - v) / Math.max(1, Math.abs(v))), 0);
      t.true(worst < 1e-5, `s2 ${b} (${file.width}x${file.height} → 120x120): worst relative error ${worst}`);
    }
  }
});

test('the same dataset as CSV reads identically', async (t) => {
  const geojson = await data.openManifest(writeManifest('same.geojson', bigEarthNetGeoJson()));
  const csv = await data.openManifest(writeManifest('same.csv', bigEarthNetCsv()));
  t.deepEqual(csv.modalities, geojson.modalities);
  t.deepEqual(csv.samples, geojson.samples);
  for (let i = 0; i < 2; i++)
    for (const m of ['s1', 's2']) t.is(digest(await csv.read(i, m)), digest(await geojson.read(i, m)), `${i} ${m}`);
});

test('declared modalities pick bands, order them and set the grid, from the file or from the options', async (t) => {
  const declared = { s2: { bands: ['B04', 'B03', 'B02', 'B08'], size: [120, 120] as [number, number] } };
  const fromFile = await data.openManifest(writeManifest('rgbn.geojson', bigEarthNetGeoJson({ modalities: declared })));
  const fromOptions = await data.openManifest(writeManifest('all.geojson', bigEarthNetGeoJson()), {
    modalities: declared,
  });
  for (const dataset of [fromFile, fromOptions]) {
    t.deepEqual(dataset.modalities, [{ name: 's2', bands: ['B04', 'B03', 'B02', 'B08'], size: [120, 120] }]);
    const raster = await dataset.read(0, 's2');
    declared.s2.bands.forEach((b, k) =>
      t.is(
        sha256(bandOf(raster, k), Uint16Array),
        gdal.files[locations[0][1].modalities['sentinel-2'].files[b]].bands[0].sha256,
        b,
      ),
    );
    await t.throwsAsync(dataset.read(0, 's1'), { code: 'ERR_MMSSL_ARG', message: /modality/ });
  }
  // a coarser grid: every band shrunk with antialiasing, so each keeps its mean
  const coarse = await data.openManifest(join(scratch, 'all.geojson'), {
    modalities: { s2: { bands: ['B02', 'B05'], size: [30, 30] } },
  });
  const raster = await coarse.read(1, 's2');
  t.deepEqual(raster.shape, [2, 30, 30]);
  for (const [k, b] of ['B02', 'B05'].entries()) {
    const mean = bandOf(raster, k).reduce((s, v) => s + v, 0) / 900,
      expected = gdal.files[locations[1][1].modalities['sentinel-2'].files[b]].bands[0].mean;
    t.true(Math.abs(mean - expected) / expected < 0.01, `${b}: mean ${mean} vs GDAL's ${expected}`);
  }
});

test('one multi-band file per modality: bands named band1..N, grid and values from the file', async (t) => {
  const path = 'geotiff/rasterio__RGBA.uint16.tif';
  const features = ['train', 'test'].map((split, i) => ({
    type: 'Feature',
    geometry: null,
    properties: { id: `p${i}`, split, label: 'Mines', aerial: rel(path) },
  }));
  const dataset = await data.openManifest(writeManifest('multi.geojson', { type: 'FeatureCollection', features }));
  const file = gdal.files[path];
  t.deepEqual(dataset.modalities, [
    { name: 'aerial', bands: ['band1', 'band2', 'band3', 'band4'], size: [file.height, file.width] },
  ]);
  const raster = await dataset.read(1, 'aerial');
  file.bands.forEach((band, k) => t.is(sha256(bandOf(raster, k), Uint16Array), band.sha256, `band ${k + 1}`));
  t.deepEqual(
    dataset.samples.map((s) => s.label),
    [data.CLASSES.indexOf('Mines'), data.CLASSES.indexOf('Mines')],
  );
  // Checked when opening, naming the location; with checkFiles: false, when the file is read.
  const three = { modalities: { aerial: { bands: ['R', 'G', 'B'], size: [64, 64] as [number, number] } } };
  const mismatch =
    /rasterio__RGBA\.uint16\.tif: features\[0\]( \(sample p0\))?: 4 bands, expected 3 \(R, G, B\) for aerial; to take some of them, declare the modality's select/;
  await t.throwsAsync(data.openManifest(join(scratch, 'multi.geojson'), three), {
    code: 'ERR_MMSSL_IO',
    message: mismatch,
  });
  const unchecked = await data.openManifest(join(scratch, 'multi.geojson'), { ...three, checkFiles: false });
  await t.throwsAsync(unchecked.read(0, 'aerial'), { code: 'ERR_MMSSL_IO', message: mismatch });
});

test("nodata: 'raise' names the file and counts per band, 'fill' fills with the band's mean, an all-nodata band cannot be filled", async (t) => {
  const rgb = Object.fromEntries(['red', 'green', 'blue'].map((c) => [c, rel(`geotiff/riotiler__${c}.tif`)]));
  const path = writeManifest('nodata.geojson', {
    type: 'FeatureCollection',
    features: [
      {
        type: 'Feature',
        geometry: null,
        properties: { id: 'cog', split: 'train', rgb, empty: rel('geotiff/rasterio__all-nodata.tif') },
      },
    ],
  });
  const red = await data.decodeGeoTiff(readFileSync(join(fixtures, 'geotiff/riotiler__red.tif')), 'red');
  const invalid = red.data.reduce((n, v) => n + Number(Number.isNaN(v)), 0);
  const raising = await data.openManifest(path);
  await t.throwsAsync(raising.read(0, 'rgb'), {
    code: 'ERR_MMSSL_IO',
    message: new RegExp(
      `riotiler__(red|green|blue)\\.tif: \\d+ NaN or nodata pixels \\((red|green|blue): \\d+\\); the option invalid: 'fill'`,
    ),
  });
  const filling = await data.openManifest(path, { invalid: 'fill' });
  const filled = await filling.read(0, 'rgb');
  const band = bandOf(filled, 0);
  t.false(filled.data.some(Number.isNaN));
  const validMean = red.data.reduce((s, v) => (Number.isNaN(v) ? s : s + v), 0) / (red.data.length - invalid);
  red.data.forEach((v, i) => {
    if (!Number.isNaN(v) && band[i] !== v) t.fail(`valid pixel ${i} changed`);
  });
  t.is(
    band.filter((v, i) => Number.isNaN(red.data[i]) && v === Math.fround(validMean)).length,
    invalid,
    'every nodata pixel holds the mean of the valid ones',
  );
  await t.throwsAsync(filling.read(0, 'empty'), {
    code: 'ERR_MMSSL_IO',
    message: /all-nodata\.tif: \d+ NaN or nodata pixels .*: no valid pixel in band1, band2, band3, band4 to fill from/,
  });
});

test('bad manifests and bad locations are errors naming the file and the feature or row', async (t) => {
  const good = bigEarthNetGeoJson();
  const variant = (name: string, change: (json: ReturnType<typeof bigEarthNetGeoJson>) => void) => {
    const json = structuredClone(good);
    change(json);
    return writeManifest(name, json);
  };
  const io = (message: RegExp) => ({ code: 'ERR_MMSSL_IO', message });
  await t.throwsAsync(
    data.openManifest(join(scratch, 'nowhere.geojson')),
    io(/nowhere\.geojson: missing: no manifest here/),
  );
  await t.throwsAsync(
    data.openManifest(writeManifest('broken.geojson', '{"type": "FeatureCollection", ')),
    io(/broken\.geojson: not JSON/),
  );
  await t.throwsAsync(data.openManifest(writeManifest('list.geojson', '[]')), io(/not a GeoJSON FeatureCollection/));
  await t.throwsAsync(
    data.openManifest(
      variant('split.geojson', (j) => {
        j.features[1].properties.split = 'validation';
      }),
    ),
    io(/split\.geojson: features\[1\]: split is "validation", expected one of train, val, test/),
  );
  await t.throwsAsync(
    data.openManifest(
      variant('dup.geojson', (j) => {
        j.features[1].properties.id = j.features[0].properties.id;
      }),
    ),
    io(/dup\.geojson: features\[1\]: id .* is used twice/),
  );
  await t.throwsAsync(
    data.openManifest(
      variant('png.geojson', (j) => {
        (j.features[0].properties as Record<string, unknown>).s1 = 'a.png';
      }),
      { modalities: { s1: {} } },
    ),
    io(/png\.geojson: features\[0\]: s1 is "a\.png", not a \.tif path/),
  );
  await t.throwsAsync(
    data.openManifest(
      variant('band.geojson', (j) => {
        delete (j.features[1].properties.s2 as Record<string, string>).B8A;
      }),
    ),
    io(/band\.geojson: features\[1\]: s2 has no file for band B8A/),
  );
  await t.throwsAsync(
    data.openManifest(
      writeManifest('none.geojson', { type: 'FeatureCollection', features: [{ properties: { split: 'train' } }] }),
    ),
    io(/names no modality/),
  );
  await t.throwsAsync(data.openManifest(ben, { invalid: 'ignore' as never }), {
    code: 'ERR_MMSSL_ARG',
    message: /invalid/,
  });
  await t.throwsAsync(data.openManifest(ben, { modalities: { s2: { size: [0, 5] as [number, number] } } }), {
    code: 'ERR_MMSSL_ARG',
    message: /modalities\.s2\.size/,
  });
  await t.throwsAsync(data.openManifest(ben, { bands: {} } as never), { code: 'ERR_MMSSL_ARG', message: /option/ });
  // found on reading: a listed file that is missing, a CSV row with an empty cell
  const missing = await data.openManifest(
    variant('missing.geojson', (j) => {
      (j.features[1].properties.s1 as Record<string, string>).VH = 'gone/VH.tif';
    }),
  );
  await t.throwsAsync(
    missing.read(1, 's1'),
    io(
      new RegExp(`${join(scratch, 'gone', 'VH.tif').replace(/[/.]/g, '\\$&')}: missing: the manifest lists this file`),
    ),
  );
  const lines = bigEarthNetCsv().split('\n');
  lines[2] = lines[2]
    .split(',')
    .map((cell, i) => (i === 5 || i === 6 ? '' : cell))
    .join(',');
  const gap = await data.openManifest(writeManifest('gap.csv', lines.join('\n')));
  await t.throwsAsync(gap.read(1, 's1'), io(/gap\.csv: row 3 \(sample .*\) lists no file for s1/));
  t.deepEqual((await gap.read(1, 's2')).shape, [12, 120, 120]);
});

test("a label that names no class is an error naming the location, or with unknownLabels 'none' no class", async (t) => {
  const path = (label: string) => {
    const json = bigEarthNetGeoJson();
    json.features[1].properties.label = label;
    return writeManifest(`label-${label.length}.geojson`, json);
  };
  for (const label of ['Roundabout', 'CAFOs-Roundabout', 'landfills']) {
    await t.throwsAsync(data.openManifest(path(label)), {
      code: 'ERR_MMSSL_IO',
      message: new RegExp(
        `features\\[1\\]: label "${label}" names '${label.split('-').at(-1)}', not one of the classes \\(CAFOs, .*unknownLabels: 'none'`,
      ),
    });
  }
  const lenient = await data.openManifest(path('CAFOs-Roundabout'), { unknownLabels: 'none' });
  t.like(lenient.samples[1], { classes: ['CAFOs'], label: 0, negative: false });
  const none = await data.openManifest(path('Roundabout'), { unknownLabels: 'none' });
  t.like(none.samples[1], { classes: [], label: -1, negative: false });
  const unlabelled = await data.openManifest(path(''));
  t.like(unlabelled.samples[1], { classes: [], label: -1, negative: false }, "'' is no label, not an unknown one");
  await t.throwsAsync(data.openManifest(path('x'), { unknownLabels: 'drop' as 'none' }), { code: 'ERR_MMSSL_ARG' });
});

test('a manifest dataset reopens from its spec in the data workers: the loader delivers what read gives', async (t) => {
  const dataset = await data.openDataset({ kind: 'manifest', path: ben });
  await using loader = new data.DataLoader(dataset, {
    modalities: ['s1', 's2'],
    batchSize: 2,
    splits: ['train', 'val'],
    shuffle: false,
    workers: 2,
  });
  let batches = 0;
  for await (const batch of loader.epoch(0)) {
    using b = batch;
    batches++;
    t.deepEqual(
      b.ids,
      dataset.samples.map((s) => s.id),
    );
    for (const m of ['s1', 's2']) {
      const stacked = b.views[m][0].toTypedArray() as Float32Array;
      const expected = (await Promise.all([0, 1].map((i) => dataset.read(i, m)))).flatMap((r) => Array.from(r.data));
      t.true(stacked.length === expected.length && stacked.every((v, i) => v === expected[i]), m);
    }
  }
  t.is(batches, 1);
});

// A 5-band stack GDAL writes with band descriptions (B02..B11), 16x16, and a 1-band file at 8x8: selections by
// number and by description, checked when opening; the 8x8 file is reported as resampled, once.
test('a modality takes bands of a multi-band file by number or description; resampling is reported once', async (t) => {
  const stack = join(scratch, 'stack.tif'),
    small = join(scratch, 'small.tif');
  execFileSync('/usr/bin/python3', [
    '-c',
    `import sys, numpy as np
from osgeo import gdal
for path, bands, side in [(sys.argv[1], 5, 16), (sys.argv[2], 1, 8)]:
    ds = gdal.GetDriverByName('GTiff').Create(path, side, side, bands, gdal.GDT_UInt16)
    for b in range(bands):
        ds.GetRasterBand(b + 1).SetDescription(['B02', 'B03', 'B04', 'B08', 'B11'][b])
        ds.GetRasterBand(b + 1).WriteArray(np.full((side, side), 100 * (b + 1), np.uint16))
    ds = None`,
    stack,
    small,
  ]);
  const features = [stack, small].map((file, i) => ({
    type: 'Feature',
    geometry: null,
    properties: { id: `s${i}`, split: 'train', label: 'Mines', s2: relative(scratch, file) },
  }));
  const path = writeManifest('select.geojson', { type: 'FeatureCollection', features: features.slice(0, 1) });
  const byName = await data.openManifest(path, { modalities: { s2: { select: ['B08', 'B04'] } } });
  t.deepEqual(byName.modalities, [{ name: 's2', bands: ['B08', 'B04'], size: [16, 16], select: ['B08', 'B04'] }]);
  const red = await byName.read(0, 's2');
  t.deepEqual([red.data[0], red.data[256]], [400, 300]);
  const byNumber = await data.openManifest(path, { modalities: { s2: { select: [5, 1], bands: ['swir', 'blue'] } } });
  const swir = await byNumber.read(0, 's2');
  t.deepEqual([swir.data[0], swir.data[256]], [500, 100]);
  await t.throwsAsync(data.openManifest(path, { modalities: { s2: { select: ['B8A'] } } }), {
    message:
      /stack\.tif: features\[0\]: s2 selects band 'B8A', which no band's description names \(the file's: 1: B02, 2: B03/,
  });
  await t.throwsAsync(data.openManifest(path, { modalities: { s2: { select: [6] } } }), {
    message: /features\[0\]: s2 selects band 6, but the file has 5 bands/,
  });
  await t.throwsAsync(data.openManifest(path, { modalities: { s2: { select: [0] } } }), { code: 'ERR_MMSSL_ARG' });

  const warnings: Error[] = [];
  const listen = (w: Error) => warnings.push(w);
  process.on('warning', listen);
  try {
    const both = writeManifest('resampled.geojson', { type: 'FeatureCollection', features });
    const opened = await data.openManifest(both, { modalities: { s2: { select: [1], size: [16, 16] } } });
    t.deepEqual((await opened.read(1, 's2')).shape, [1, 16, 16]);
    await new Promise((done) => setImmediate(done)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', listen);
  }
  // Other tests of this file run alongside: only this manifest's warnings count.
  const resampled = warnings.filter(
    (w) => (w as NodeJS.ErrnoException).code === 'MMSSL_RESAMPLED' && w.message.includes('resampled.geojson'),
  );
  t.is(resampled.length, 1);
  t.regex(resampled[0].message, /s2 from 8x8 to 16x16: 1 file\(s\), e\.g\. .*small\.tif/);
});

test('BigEarthNet-MM packed: the real rasters read back from the pack as the manifest reads them, within float16 rounding (S1 in dB; S2 with its 20 m and 60 m bands upsampled, so not integers)', async (t) => {
  const dataset = await data.openManifest(ben);
  const report = await data.pack({ source: dataset, out: join(scratch, 'ben-pack'), workers: 1 });
  const pack = new data.PackedDataset(report.out);
  t.deepEqual(
    pack.modalities.map((m) => [m.name, m.dtype, m.size]),
    [
      ['s1', 'float16', [120, 120]],
      ['s2', 'float16', [120, 120]],
    ],
  );
  t.deepEqual(
    pack.samples.map((s) => [s.id, s.split, s.label, s.negative]),
    dataset.samples.map((s) => [s.id, s.split, s.label, s.negative]),
  );
  for (let i = 0; i < dataset.samples.length; i++)
    for (const m of ['s1', 's2']) {
      const [source, packed] = [await dataset.read(i, m), await pack.read(i, m)];
      // float16 keeps 11 significant bits: half a unit in the last place is 2^-11 of the value (2^-24 near 0)
      const worst = source.data.reduce(
        (w, v, j) => Math.max(w, Math.abs(v - packed.data[j]) - 2 ** -11 * Math.abs(v) - 2 ** -24),
        -Infinity,
      );
      t.true(worst <= 0, `${dataset.samples[i].id} ${m}: beyond float16's rounding by ${worst}`);
    }
});
