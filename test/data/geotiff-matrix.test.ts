// The GeoTIFF reader against a matrix GDAL writes at test time (test/fixtures/geotiff_matrix.py, Debian's
// python3-gdal): every sample type and bit depth x byte order x interleave x strips or tiles x compression x
// predictor, JPEG and WebP, nodata, scale/offset, overviews. Each file must decode to exactly what GDAL's
// ReadAsArray returns (as float32, nodata as NaN; lossy codecs within 1), or be refused with a FileError that names
// what is unsupported and how to convert it. One test per sample type, so a failure names the layouts it hit.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { FileError } from '../../lib/errors.js';
import { decodeGeoTiff } from '../../lib/data/formats/geotiff.js';
import { withTag } from '../fixtures/tiff-tags.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const out = join(root, 'test-output', 'geotiff-matrix');

interface MatrixFile {
  file: string;
  sample: string;
  endian: string;
  layout: string;
  blocks: string;
  compress: string;
  predictor: number;
  bands: number;
  width: number;
  height: number;
  lossy: boolean;
  options: string[];
  expected: { sha256: string; values: string }[];
}

execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'geotiff_matrix.py'), out], { stdio: 'inherit' });
const matrix: { gdal: string; files: MatrixFile[] } = JSON.parse(readFileSync(join(out, 'matrix.json'), 'utf8'));

/** The compressions refused by design, and what the refusal must say. */
const REFUSED: Record<string, RegExp> = {
  LZMA: /LZMA compression is not supported; convert the file, e\.g\. gdal_translate -co COMPRESS=DEFLATE/,
};

const floats = (base64: string) => {
  const bytes = Buffer.from(base64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

/** What is wrong with our reading of one file, or null when it equals GDAL's (or is refused as it should be). */
async function check(f: MatrixFile, dir = out): Promise<string | null> {
  const refusal = REFUSED[f.compress];
  let raster;
  try {
    raster = await decodeGeoTiff(readFileSync(join(dir, f.file)), f.file);
  } catch (e) {
    if (!(e instanceof FileError)) return `threw ${(e as Error).name}, not a FileError: ${(e as Error).message}`;
    return refusal?.test(e.message) ? null : `refused: ${e.message}`;
  }
  if (refusal) return `decoded, but ${f.compress} should be refused`;
  const plane = f.width * f.height;
  if (raster.shape.join('x') !== [f.bands, f.height, f.width].join('x')) return `shape ${raster.shape.join('x')}`;
  for (let b = 0; b < f.bands; b++) {
    const ours = raster.data.subarray(b * plane, (b + 1) * plane),
      gdal = floats(f.expected[b].values);
    for (let i = 0; i < plane; i++) {
      const a = ours[i],
        x = gdal[i];
      if (Object.is(a, x) || (Number.isNaN(a) && Number.isNaN(x))) continue;
      if (f.lossy && Math.abs(a - x) <= 1) continue;
      return `band ${b + 1}, pixel (${i % f.width}, ${Math.floor(i / f.width)}): ${a}, GDAL ${x}`;
    }
  }
  return null;
}

const samples = [...new Set(matrix.files.map((f) => f.sample))];

test(`GDAL ${matrix.gdal} wrote the matrix: every sample type, both byte orders, every layout and codec`, (t) => {
  t.true(matrix.files.length > 900, `${matrix.files.length} files`);
  t.true(samples.length >= 21, samples.join(' '));
  for (const key of ['endian', 'layout', 'blocks', 'compress'] as const)
    t.log(`${key}: ${[...new Set(matrix.files.map((f) => f[key]))].join(' ')}`);
  const codecs = new Set(matrix.files.map((f) => f.compress));
  for (const c of ['NONE', 'DEFLATE', 'LZW', 'PACKBITS', 'ZSTD', 'LERC', 'LZMA', 'JPEG', 'WEBP'])
    t.true(codecs.has(c), c);
});

for (const sample of samples) {
  const files = matrix.files.filter((f) => f.sample === sample);
  test(`${sample}: ${files.length} files equal GDAL's decoding, or are refused by name`, async (t) => {
    t.true(files.length > 0);
    const wrong: string[] = [];
    for (const f of files) {
      const problem = await check(f);
      if (problem) wrong.push(`${f.file}: ${problem}`);
    }
    t.deepEqual(wrong, []);
  });
}

// GDAL 3.10's libtiff writes pixel-interleaved LERC as one LERC band per sample, each with its own NaN mask (or
// the previous band's); GDAL 3.6, which writes the matrix here, writes one band of several values per pixel.
test('a LERC file GDAL 3.10 wrote with a NaN mask per band (two alike, one other, one none) equals its reading', async (t) => {
  const dir = join(root, 'test', 'fixtures', 'tiff');
  const f: MatrixFile = JSON.parse(readFileSync(join(dir, 'lerc-nan-masks-gdal3.10.json'), 'utf8'));
  t.is(f.bands, 4);
  t.is(await check(f, dir), null);
});

test('JPEG blocks of other than 8-bit samples and WebP of other than 8-bit RGB or RGBA are refused by name', async (t) => {
  const cases: [string, number, number, RegExp][] = [
    ['jpeg_grey_tiles', 258, 12, /12-bit JPEG is not supported \(8-bit is\); convert the file, e\.g\. gdal_translate/],
    ['jpeg_rgb_tiles', 277, 5, /JPEG of 5 samples per pixel is not supported/],
    ['webp_rgb_tiles', 258, 16, /WebP holds pixel-interleaved 8-bit RGB or RGBA, not 3 16-bit samples/],
    ['webp_rgb_tiles', 284, 2, /WebP holds pixel-interleaved 8-bit RGB or RGBA, not 3 band-interleaved 8-bit samples/],
  ];
  for (const [name, tag, value, message] of cases) {
    const bytes = withTag(readFileSync(join(out, `${name}.tif`)), tag, value);
    if (!bytes) return t.fail(`${name} has no tag ${tag}`);
    const error = await t.throwsAsync(decodeGeoTiff(bytes, `${name}.tif`), { instanceOf: FileError });
    t.regex(error?.message ?? '', message, `${name}, tag ${tag} = ${value}`);
  }
});
