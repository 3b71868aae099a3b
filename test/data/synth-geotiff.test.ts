// `synth --format geotiff`: the same locations as the METER-ML layout, written as GeoTIFFs (Sentinel-2 one file per
// band) with a manifest; and the GeoTIFF writer behind it, read back by `geotiff` and by Pillow.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { data } from '../../lib/index.js';
import { encodeGeoTiff } from '../../lib/data/formats/geotiff.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-synth-geotiff-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const reports = Promise.all(
  (['geotiff', 'meterml'] as const).map((format) =>
    data.synthesize({ out: join(scratch, format), perClass: 3, seed: 11, format }),
  ),
);

test("the GeoTIFF layout holds the METER-ML layout's pixels, its labels and splits, and its defects as GeoTIFF defects", async (t) => {
  const [geotiffReport, metermlReport] = await reports;
  t.deepEqual(geotiffReport.splits, metermlReport.splits);
  t.deepEqual(
    geotiffReport.defects.map((d) => [d.file, d.problem]),
    [
      ['s1.tif', 'missing'],
      ['s2_B02.tif', 'nodata pixels'],
    ],
  );
  const manifest = await data.openManifest(join(scratch, 'geotiff', 'manifest.geojson'));
  const meterml = await data.openMeterML(join(scratch, 'meterml'));
  t.deepEqual(manifest.modalities, [
    { name: 's1', bands: ['VV', 'VH'], size: [72, 72] },
    { name: 's2', bands: ['B04', 'B03', 'B02', 'B08'], size: [72, 72] },
    { name: 'naip', bands: ['R', 'G', 'B', 'NIR'], size: [720, 720] },
  ]);
  t.is(manifest.samples.length, meterml.samples.length);
  const broken = new Set(geotiffReport.defects.map((d) => `${d.folder}/${d.file}`));
  for (const [i, sample] of manifest.samples.entries()) {
    const j = meterml.samples.findIndex((s) => s.latitude === sample.latitude && s.longitude === sample.longitude);
    t.deepEqual({ ...meterml.samples[j], id: sample.id }, sample, 'the same site, label and split');
    for (const modality of ['s1', 's2', 'naip']) {
      const ours = await manifest.read(i, modality).catch((e: Error) => e);
      if (ours instanceof Error) {
        t.true(
          [...broken].some((file) => ours.message.startsWith(join(scratch, 'geotiff', file))),
          ours.message,
        );
        continue;
      }
      const reference = await meterml.read(j, modality);
      // S2 GeoTIFFs mark nodata with 0, so valid reflectances are at least 1
      const expected = modality === 's2' ? reference.data.map((v) => Math.max(1, v)) : reference.data;
      t.true(
        ours.data.length === expected.length && ours.data.every((v, k) => v === expected[k]),
        `${sample.id} ${modality}`,
      );
    }
  }
  const nodata = geotiffReport.defects.find((d) => d.file === 's2_B02.tif')!;
  const index = manifest.samples.findIndex((s) => s.id === nodata.folder);
  await t.throwsAsync(manifest.read(index, 's2'), {
    code: 'ERR_MMSSL_IO',
    message: /s2_B02\.tif: \d+ NaN or nodata pixels \(B02: \d+\)/,
  });
});

test('encodeGeoTiff: georeferenced, Deflate, any band count; `geotiff` reads back the samples, nodata and EPSG:4326', async (t) => {
  const cases = [
    {
      width: 37,
      height: 21,
      bands: 3,
      data: Uint16Array.from({ length: 37 * 21 * 3 }, (_, i) => 1 + ((i * 7919) % 4095)),
    },
    { width: 5, height: 40, bands: 1, data: Float32Array.from({ length: 200 }, (_, i) => Math.sin(i) * 1e3) },
    { width: 64, height: 17, bands: 4, data: Uint8Array.from({ length: 64 * 17 * 4 }, (_, i) => (i * 31) % 256) },
  ];
  for (const image of cases) {
    const bytes = encodeGeoTiff({ ...image, origin: [-93.5, 46.25], pixelSize: 1e-4, nodata: 0 });
    const raster = await data.decodeGeoTiff(bytes, 'memory');
    t.deepEqual(raster.shape, [image.bands, image.height, image.width]);
    t.deepEqual([raster.geoTransform, raster.epsg, raster.nodata], [[-93.5, 1e-4, 0, 46.25, 0, -1e-4], 4326, 0]);
    const plane = image.width * image.height;
    const same = Array.from(image.data).every((v, i) => {
      const got = raster.data[(i % image.bands) * plane + Math.floor(i / image.bands)];
      return v === 0 ? Number.isNaN(got) : got === Math.fround(v);
    });
    t.true(same, `${image.width}x${image.height}x${image.bands} ${image.data.constructor.name}`);
  }
});

test('encodeGeoTiff: Pillow reads a single-band uint16 file to the same values', (t) => {
  const data16 = Uint16Array.from({ length: 33 * 19 }, (_, i) => (i * 2654435761) % 65536);
  const file = join(scratch, 'gray16.tif');
  writeFileSync(file, encodeGeoTiff({ width: 33, height: 19, bands: 1, data: data16, origin: [0, 0], pixelSize: 1 }));
  const script =
    'import sys, numpy as np; from PIL import Image; a = np.asarray(Image.open(sys.argv[1])).astype(np.uint16); print(a.shape[0], a.shape[1], a.astype(np.int64).ravel().tolist())';
  const out = execFileSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8' }).trim();
  const [h, w, ...values] = out
    .replace(/[[\],]/g, ' ')
    .trim()
    .split(/\s+/)
    .map(Number);
  t.deepEqual([h, w], [19, 33]);
  t.deepEqual(values, Array.from(data16));
  t.is(readFileSync(file).subarray(0, 4).toString('latin1'), 'II*\0');
});
