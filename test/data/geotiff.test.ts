// The GeoTIFF reader against real files no one here wrote (test/fixtures/real, from public repositories) and what
// GDAL 3.6.2 reads from them (MANIFEST.json): per band, the sha256 of GDAL's array, min/max/mean and the count of
// valid pixels; the geotransform and the EPSG code.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeGeoTiff, type GeoTiffRaster } from '../../lib/data/formats/geotiff.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'real');

interface GdalBand {
  numpy_dtype: string;
  sha256: string;
  min: number | null;
  max: number | null;
  mean: number | null;
  valid_count: number;
  nodata: number | string | null;
}
interface GdalFile {
  width: number;
  height: number;
  band_count: number;
  compression: string;
  file_sha256: string;
  georeferenced: boolean;
  geotransform: number[] | null;
  crs_epsg: number | null;
  gcp_count: number;
  bands: GdalBand[];
}
const manifest: { files: Record<string, GdalFile> } = JSON.parse(readFileSync(join(root, 'MANIFEST.json'), 'utf8'));
const files = Object.entries(manifest.files);

/** What the reader refuses, and what the error must say. */
const UNSUPPORTED: Record<string, RegExp> = {
  'geotiff/rioxarray__cint16.tif': /complex samples \(e\.g\. CInt16, SampleFormat 5\) are not supported/,
};
const decodable = files.filter(([path]) => !(path in UNSUPPORTED));

const TYPED: Record<
  string,
  new (length: number) => ArrayLike<number> & { buffer: ArrayBufferLike; [i: number]: number }
> = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

const bandOf = ({ shape: [, h, w], data }: GeoTiffRaster, b: number) => data.subarray(b * h * w, (b + 1) * h * w);

/** Our float32 band back in GDAL's dtype, NaN put back as the nodata value, hashed as GDAL's array was. */
function sha256As(band: Float32Array, { numpy_dtype, nodata }: GdalBand): string {
  const out = new TYPED[numpy_dtype](band.length);
  const fill = nodata === null || nodata === 'nan' ? Number.NaN : Number(nodata);
  for (let i = 0; i < band.length; i++) out[i] = Number.isNaN(band[i]) ? fill : band[i];
  return createHash('sha256').update(new Uint8Array(out.buffer)).digest('hex');
}

function stats(band: Float32Array) {
  let min = Infinity,
    max = -Infinity,
    sum = 0,
    valid = 0;
  for (const v of band) {
    if (Number.isNaN(v)) continue;
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    valid++;
  }
  return { min, max, mean: sum / valid, valid };
}

/** float32 holds these dtypes' values exactly, so our band must hash to GDAL's. */
const exactInFloat32 = (band: GdalBand) =>
  ['uint8', 'int8', 'uint16', 'int16', 'float32'].includes(band.numpy_dtype) ||
  (['int32', 'uint32'].includes(band.numpy_dtype) &&
    Math.max(Math.abs(band.min ?? 0), Math.abs(band.max ?? 0)) < 2 ** 24);

test('the fixtures are the files MANIFEST.json describes', (t) => {
  for (const [path, file] of files)
    t.is(
      createHash('sha256')
        .update(readFileSync(join(root, path)))
        .digest('hex'),
      file.file_sha256,
      path,
    );
});

for (const [path, gdal] of decodable) {
  test(`${path}: ${gdal.band_count} band(s) as GDAL reads them (${gdal.compression})`, async (t) => {
    const raster = await decodeGeoTiff(readFileSync(join(root, path)), path);
    t.deepEqual(raster.shape, [gdal.band_count, gdal.height, gdal.width]);
    gdal.bands.forEach((expected, b) => {
      const band = bandOf(raster, b),
        ours = stats(band);
      t.is(ours.valid, expected.valid_count, `band ${b + 1}: valid pixels (nodata and NaN excluded)`);
      if (exactInFloat32(expected)) {
        t.is(sha256As(band, expected), expected.sha256, `band ${b + 1}: the same ${expected.numpy_dtype} values`);
      } else {
        // float64 or large 32-bit integers, rounded to float32
        for (const key of ['min', 'max', 'mean'] as const) {
          t.true(
            Math.abs(ours[key] - expected[key]!) <= 1e-6 * Math.max(1, Math.abs(expected[key]!)),
            `band ${b + 1}: ${key} ${ours[key]} vs ${expected[key]}`,
          );
        }
      }
    });
    const nodata = gdal.bands[0].nodata;
    t.is(raster.nodata, nodata === null ? null : nodata === 'nan' ? Number.NaN : Number(nodata));
    t.is(raster.epsg, gdal.crs_epsg);
    if (raster.geoTransform) t.deepEqual(raster.geoTransform, gdal.geotransform, 'geotransform');
    else
      t.true(
        !gdal.georeferenced || gdal.gcp_count > 0,
        'no geotransform only where GDAL has none, or ground control points only',
      );
  });
}

test('files the reader refuses are FileErrors saying why and how to convert them', async (t) => {
  for (const [path, message] of Object.entries(UNSUPPORTED)) {
    const error = await t.throwsAsync(decodeGeoTiff(readFileSync(join(root, path)), path), {
      code: 'ERR_MMSSL_IO',
      message,
    });
    t.true(error?.message.startsWith(`${path}: `), error?.message);
  }
});

test('nodata pixels become NaN: all-nodata, a NaN nodata, and integer nodata inside the data', async (t) => {
  const allNodata = await decodeGeoTiff(readFileSync(join(root, 'geotiff/rasterio__all-nodata.tif')), 'all-nodata');
  t.true(allNodata.data.every(Number.isNaN));
  const red = await decodeGeoTiff(readFileSync(join(root, 'geotiff/riotiler__red.tif')), 'red');
  const nan = red.data.reduce((n, v) => n + Number(Number.isNaN(v)), 0);
  t.true(nan > 0 && nan < red.data.length, `${nan} of ${red.data.length}`);
  t.is(red.data.length - nan, manifest.files['geotiff/riotiler__red.tif'].bands[0].valid_count);
});

test('anything but a TIFF, and truncated TIFFs, are FileErrors naming the file, never a crash', async (t) => {
  await t.throwsAsync(decodeGeoTiff(new TextEncoder().encode('not a tiff at all'), 'x.tif'), {
    code: 'ERR_MMSSL_IO',
    message: /^x\.tif: is not a readable TIFF: /,
  });
  await t.throwsAsync(decodeGeoTiff(new Uint8Array(0), 'empty.tif'), {
    code: 'ERR_MMSSL_IO',
    message: /^empty\.tif: /,
  });
  for (const path of [
    'geotiff/rasterio__byte.tif',
    'geotiff/rasterio__RGBA.uint16.tif',
    'geotiff/riotiler__cog_uint8_rgba.tif',
    'geotiff/imagetiff__int16_zstd.tif',
  ]) {
    const bytes = readFileSync(join(root, path));
    for (const fraction of [0.01, 0.1, 0.5, 0.9]) {
      const cut = bytes.subarray(0, Math.floor(bytes.length * fraction));
      // A cut can spare everything the reader needs (trailing overviews); otherwise it must be a FileError.
      await decodeGeoTiff(cut, path).then(
        (r) =>
          t.deepEqual(r.shape, [
            manifest.files[path].band_count,
            manifest.files[path].height,
            manifest.files[path].width,
          ]),
        (e: { code?: string; message: string }) =>
          t.is(e.code, 'ERR_MMSSL_IO', `${path} cut at ${fraction}: ${e.message}`),
      );
    }
  }
});
