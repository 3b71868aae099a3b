/**
 * A request's input for one modality, made into what the model takes: decoded (a .npy, PNG or GeoTIFF file's bytes,
 * recognised by their signature; or numbers with a shape), checked against the run (band count, finite values), and
 * resampled to the size the run trained at. Every problem is an InputError naming the field.
 */
import { InputError } from '../errors.js';
import type { Raster } from '../data/dataset.js';
import { decodeGeoTiff } from '../data/formats/geotiff.js';
import { decodeNpy } from '../data/formats/npy.js';
import { decodePng } from '../data/formats/png.js';
import { bandsFirst, resized } from '../data/pixels.js';

/** One modality's input: a file's bytes, or values with their shape ([bands, H, W], or [H, W, bands] for files). */
export type ModalityInput = Uint8Array | { data: ArrayLike<number>; shape: readonly number[] };

/** What the run expects of a modality. */
export interface InputSpec {
  channels: number;
  /** The size the run trained at, which inputs are resampled to (none recorded: any size from `minSize` up). */
  size?: readonly [number, number];
  /** The smallest side the backbone takes. */
  minSize: number;
}

const startsWith = (bytes: Uint8Array, signature: readonly number[]) => signature.every((b, i) => bytes[i] === b);
const NPY = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59],
  PNG = [0x89, 0x50, 0x4e, 0x47],
  TIFF_LE = [0x49, 0x49, 0x2a, 0x00],
  TIFF_BE = [0x4d, 0x4d, 0x00, 0x2a];

/** Values with a 3-D shape, bands first or (as METER-ML's files store them) last, as float32 [bands, H, W]. */
function fromValues(field: string, data: ArrayLike<number>, shape: readonly number[], channels: number): Raster {
  if (shape.length !== 3 || !shape.every((n) => Number.isInteger(n) && n > 0))
    throw new InputError(
      field,
      `shape [${shape.join(', ')}]: expected [bands, height, width] or [height, width, bands]`,
    );
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count)
    throw new InputError(field, `${data.length} values for shape [${shape.join(', ')}] (${count})`);
  if (shape[0] === channels) return { shape: [shape[0], shape[1], shape[2]], data: Float32Array.from(data) };
  if (shape[2] !== channels)
    throw new InputError(
      field,
      `${shape[0]} or ${shape[2]} bands (shape [${shape.join(', ')}]), the run expects ${channels}`,
    );
  const [h, w, c] = shape;
  return { shape: [c, h, w], data: bandsFirst(data, [h, w, c]) };
}

async function decodeFile(field: string, bytes: Uint8Array, channels: number): Promise<Raster> {
  try {
    if (startsWith(bytes, NPY)) {
      const { shape, data } = decodeNpy(bytes, field);
      return fromValues(field, data, shape, channels);
    }
    if (startsWith(bytes, PNG)) {
      const { width, height, channels: c, data } = decodePng(bytes, field);
      return fromValues(field, data, [height, width, c], channels);
    }
    if (startsWith(bytes, TIFF_LE) || startsWith(bytes, TIFF_BE)) {
      const raster = await decodeGeoTiff(bytes, field);
      if (raster.shape[0] !== channels)
        throw new InputError(field, `${raster.shape[0]} bands, the run expects ${channels}`);
      return raster;
    }
  } catch (e) {
    throw e instanceof InputError ? e : new InputError(field, (e as Error).message.replace(`${field}: `, ''));
  }
  throw new InputError(field, 'not a .npy, PNG or GeoTIFF file (unrecognised signature)');
}

/** The input ready for the model: float32 [bands, H, W] at the run's size, every value finite. */
export async function prepareInput(field: string, input: ModalityInput, spec: InputSpec): Promise<Raster> {
  const raster =
    input instanceof Uint8Array
      ? await decodeFile(field, input, spec.channels)
      : input &&
          typeof input === 'object' &&
          Array.isArray(input.shape) &&
          input.data !== undefined &&
          typeof input.data.length === 'number'
        ? fromValues(field, input.data, input.shape, spec.channels)
        : (() => {
            throw new InputError(field, 'expected a file, or {data: numbers, shape: [bands, height, width]}');
          })();
  const bad = raster.data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new InputError(field, `value ${bad} is ${raster.data[bad]} (NaN, nodata or infinite): inputs must be finite`);
  const [, h, w] = raster.shape;
  if (h < 8 || w < 8) throw new InputError(field, `${h}x${w} pixels: at least 8x8 are needed`);
  if (!spec.size && (h < spec.minSize || w < spec.minSize))
    throw new InputError(field, `${h}x${w} pixels: this model takes at least ${spec.minSize}x${spec.minSize}`);
  return spec.size && (spec.size[0] !== h || spec.size[1] !== w) ? resized(raster, spec.size) : raster;
}
