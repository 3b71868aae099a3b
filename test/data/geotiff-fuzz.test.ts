// No GeoTIFF may crash, hang or exhaust the process: damaged variants of seeds from the GDAL matrix (every codec)
// and of real files are decoded in a child process with a 512 MiB heap and a time limit
// (test/fixtures/geotiff-fuzz.ts). Each must decode or be a FileError naming the file.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
// Seeds from the GDAL matrix, written to a folder of this test's own (geotiff-matrix.test.ts may be rewriting its own).
const matrix = join(root, 'test-output', 'geotiff-fuzz-seeds');
const real = join(root, 'test', 'fixtures', 'real', 'geotiff');

const SEEDS = [
  join(real, 'rasterio__byte.tif'),
  join(real, 'rasterio__RGBA.uint16.tif'),
  join(real, 'imagetiff__int16_zstd.tif'),
  join(real, 'riotiler__cog_uint8_rgba.tif'),
  join(real, 'imagetiff__quad-jpeg.tif'),
  ...[
    'u8_little_pixel3_strips_none',
    'u12_big_band3_tiles_lzw',
    'u5_little_pixel3_tiles_packbits',
    'u24_big_pixel3_tiles_deflate',
    'f32_little_pixel3_tiles_deflate_pred3',
    'u16_big_band3_tiles_zstd_pred2',
    'f32_little_band3_tiles_lerc',
    'u64_big_pixel3_tiles_none',
    'jpeg_rgb_tiles',
    'jpeg_ycbcr_tiles',
    'webp_rgb_tiles',
    'webp_rgba_lossless_strips',
  ].map((name) => join(matrix, `${name}.tif`)),
];

test('damaged GeoTIFFs decode or are FileErrors naming the file: no crash, no hang, bounded memory', (t) => {
  const written = spawnSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'geotiff_matrix.py'), matrix], {
    encoding: 'utf8',
  });
  t.is(written.status, 0, written.stderr);
  for (const seed of SEEDS) t.true(existsSync(seed), seed);
  const child = spawnSync(
    process.execPath,
    ['--max-old-space-size=512', join(root, 'dist', 'test', 'fixtures', 'geotiff-fuzz.js'), ...SEEDS],
    { encoding: 'utf8', timeout: 240_000, maxBuffer: 64 * 2 ** 20 },
  );
  const lines = child.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const results = lines.filter((l) => 'input' in l);
  const last = lines.at(-1);
  t.is(
    child.status,
    0,
    `the child ended (${child.signal ?? child.status}) at ${JSON.stringify(last)}: ${child.stderr.slice(-2000)}`,
  );
  t.is(results.length, lines.length / 2, 'every input started also finished');
  t.true(results.length > SEEDS.length * 80, `${results.length} inputs`);
  const bad = results.filter(
    (r) => r.outcome !== 'ok' && !(r.outcome === 'FileError' && r.message.startsWith('damaged.tif: ')),
  );
  t.deepEqual(bad, []);
  const counts = results.reduce<Record<string, number>>((n, r) => ({ ...n, [r.outcome]: (n[r.outcome] ?? 0) + 1 }), {});
  t.log(`${results.length} damaged inputs: ${JSON.stringify(counts)}`);
});
