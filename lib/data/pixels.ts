/**
 * What every reader does to a decoded raster before handing it out: find invalid pixels (NaN, and nodata, which the
 * GeoTIFF reader turns into NaN) and raise or fill them, and resample to a modality's grid.
 */
import { interpolate } from '../nn/functional.js';
import { fromBuffer } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import { FileError } from '../errors.js';
import type { Raster } from './dataset.js';

/**
 * What a reader does with invalid pixels: 'raise' (default) throws a FileError counting them per band; 'fill' puts
 * the mean of the band's valid pixels in that raster in their place (a band with no valid pixel still raises).
 */
export type InvalidPolicy = 'raise' | 'fill';
export const INVALID_POLICIES: readonly InvalidPolicy[] = ['raise', 'fill'];

/** Applies `policy` to the raster's NaN pixels, in place; `file` and `bands` name them in errors. */
export function handleInvalid(raster: Raster, bands: readonly string[], file: string, policy: InvalidPolicy): Raster {
  const {
    shape: [count, height, width],
    data,
  } = raster;
  const plane = height * width;
  const invalid = Array.from({ length: count }, (_, b) =>
    data.subarray(b * plane, (b + 1) * plane).reduce((n, v) => n + Number(Number.isNaN(v)), 0),
  );
  const total = invalid.reduce((a, b) => a + b, 0);
  if (total === 0) return raster;
  const perBand = bands.flatMap((name, b) => (invalid[b] > 0 ? [`${name}: ${invalid[b]}`] : []));
  const empty = bands.filter((_, b) => invalid[b] === plane);
  if (policy === 'raise' || empty.length > 0) {
    const what = `${total} NaN or nodata pixel${total === 1 ? '' : 's'} (${perBand.join(', ')})`;
    throw new FileError(
      file,
      policy === 'raise'
        ? `${what}; the option invalid: 'fill' fills them with the band's mean`
        : `${what}: no valid pixel in ${empty.join(', ')} to fill from`,
    );
  }
  for (let b = 0; b < count; b++) {
    if (invalid[b] === 0) continue;
    const band = data.subarray(b * plane, (b + 1) * plane);
    const mean = band.reduce((s, v) => (Number.isNaN(v) ? s : s + v), 0) / (plane - invalid[b]);
    band.forEach((v, i) => {
      if (Number.isNaN(v)) band[i] = mean;
    });
  }
  return raster;
}

/** float32 [bands, H, W] from values interleaved as [H, W, bands] (how image files store them). */
export function bandsFirst(
  data: ArrayLike<number>,
  [height, width, bands]: readonly [number, number, number],
): Float32Array {
  const plane = height * width,
    out = new Float32Array(bands * plane);
  for (let b = 0; b < bands; b++) {
    for (let p = 0; p < plane; p++) out[b * plane + p] = data[p * bands + b];
  }
  return out;
}

/** The raster resampled to `size` (bilinear, antialiased when shrinking: LibTorch's), in a buffer of its own. */
export function resized({ shape: [c, h, w], data }: Raster, size: readonly [number, number]): Raster {
  const out = tidy(() =>
    interpolate(fromBuffer(data, [1, c, h, w]), {
      size: [...size],
      mode: 'bilinear',
      alignCorners: false,
      antialias: true,
    }).toTypedArray(),
  );
  return { shape: [c, size[0], size[1]], data: out as Float32Array };
}
