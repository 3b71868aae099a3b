/**
 * A decompressed block to samples: the predictor undone, then every sample read at its bit depth (1 to 32 and 64,
 * packed samples MSB-first with rows ending on a byte boundary, as libtiff and GDAL write them), byte order and
 * sample format, into the [bands, height, width] float32 raster. 64-bit integers go through a double, as
 * JavaScript's `Number(bigint)` converts them.
 */
import { type Layout, SampleFormat, rowBytes } from './layout.js';

/** Undoes the predictor in place: horizontal differencing (2) or floating-point prediction (3), row by row. */
export function undoPredictor(block: Uint8Array, layout: Layout, rows: number): void {
  if (layout.predictor === 1) return;
  const stride = layout.planar ? 1 : layout.samples;
  const bytes = rowBytes(layout);
  for (let r = 0; r < rows; r++) {
    const row = block.subarray(r * bytes, (r + 1) * bytes);
    if (layout.predictor === 2) undoDifferencing(row, layout, stride);
    else undoFloatingPoint(row, layout, stride);
  }
}

function undoDifferencing(row: Uint8Array, { bits, littleEndian }: Layout, stride: number): void {
  const view = new DataView(row.buffer, row.byteOffset, row.byteLength);
  const count = (row.byteLength * 8) / bits;
  if (bits === 8) for (let i = stride; i < count; i++) row[i] = (row[i] + row[i - stride]) & 0xff;
  else if (bits === 16)
    for (let i = stride; i < count; i++)
      view.setUint16(
        2 * i,
        view.getUint16(2 * i, littleEndian) + view.getUint16(2 * (i - stride), littleEndian),
        littleEndian,
      );
  else if (bits === 32)
    for (let i = stride; i < count; i++)
      view.setUint32(
        4 * i,
        (view.getUint32(4 * i, littleEndian) + view.getUint32(4 * (i - stride), littleEndian)) >>> 0,
        littleEndian,
      );
  else
    for (let i = stride; i < count; i++)
      view.setBigUint64(
        8 * i,
        BigInt.asUintN(64, view.getBigUint64(8 * i, littleEndian) + view.getBigUint64(8 * (i - stride), littleEndian)),
        littleEndian,
      );
}

/**
 * libtiff's fpAcc: the row's bytes were differenced (stride: samples per pixel), then split into planes by
 * significance, most significant first. The values come back in the file's byte order, so reading is unchanged.
 */
function undoFloatingPoint(row: Uint8Array, { bits, littleEndian }: Layout, stride: number): void {
  for (let i = stride; i < row.length; i++) row[i] = (row[i] + row[i - stride]) & 0xff;
  const planes = new Uint8Array(row); // a copy (Buffer's slice would be a view)
  const size = bits / 8,
    count = row.length / size;
  for (let i = 0; i < count; i++)
    for (let b = 0; b < size; b++) row[i * size + (littleEndian ? size - 1 - b : b)] = planes[b * count + i];
}

/** Reads sample `i` of a row (counted across its pixels' samples) as a number. */
type Reader = (view: DataView, row: number, i: number) => number;

function reader({ bits, format, littleEndian }: Layout): Reader {
  const le = littleEndian;
  if (format === SampleFormat.Float) {
    if (bits === 16) return (v, row, i) => half(v.getUint16(row + 2 * i, le));
    if (bits === 32) return (v, row, i) => v.getFloat32(row + 4 * i, le);
    return (v, row, i) => v.getFloat64(row + 8 * i, le);
  }
  const signed = format === SampleFormat.Signed;
  if (bits === 8) return signed ? (v, row, i) => v.getInt8(row + i) : (v, row, i) => v.getUint8(row + i);
  if (bits === 16)
    return signed ? (v, row, i) => v.getInt16(row + 2 * i, le) : (v, row, i) => v.getUint16(row + 2 * i, le);
  if (bits === 32)
    return signed ? (v, row, i) => v.getInt32(row + 4 * i, le) : (v, row, i) => v.getUint32(row + 4 * i, le);
  if (bits === 64)
    return signed
      ? (v, row, i) => Number(v.getBigInt64(row + 8 * i, le))
      : (v, row, i) => Number(v.getBigUint64(row + 8 * i, le));
  // 24-bit samples are a bit stream too, but libtiff swaps each sample's three bytes in big-endian files (GDAL
  // writes, and reads, through it): there the stream's bytes come least significant first.
  if (bits === 24 && !le) {
    return (v, row, i) => {
      const at = row + 3 * i;
      const value = v.getUint8(at) + 256 * v.getUint8(at + 1) + 65536 * v.getUint8(at + 2);
      return signed && value >= 2 ** 23 ? value - 2 ** 24 : value;
    };
  }
  return packedReader(bits, signed);
}

/** Samples of 1..32 bits that are not whole bytes: a big-endian bit stream within each row. */
function packedReader(bits: number, signed: boolean): Reader {
  const range = 2 ** bits,
    half = 2 ** (bits - 1);
  return (v, row, i) => {
    const bit = i * bits;
    let at = row + (bit >>> 3);
    const skip = bit & 7;
    const span = skip + bits; // bits to read from the first byte on, at most 39: exact in a double
    let acc = 0;
    for (let read = 0; read < span; read += 8) acc = acc * 256 + v.getUint8(at++);
    const padded = Math.ceil(span / 8) * 8;
    const value = Math.floor(acc / 2 ** (padded - span)) % range;
    return signed && value >= half ? value - range : value;
  };
}

/** IEEE 754 half precision to a number. */
function half(h: number): number {
  const exponent = (h >> 10) & 0x1f,
    fraction = h & 0x3ff,
    sign = h & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? Number.NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Where a block lands in the image: block column and row, its band when band-interleaved, its stored rows. */
export interface BlockPlace {
  bx: number;
  by: number;
  band: number;
  rows: number;
}

/** The part of the image a block covers, clipped to the image: rows and columns from (x0, y0), its bands. */
function region({ width, height, blockWidth, blockHeight, samples, planar }: Layout, at: BlockPlace) {
  const x0 = at.bx * blockWidth,
    y0 = at.by * blockHeight;
  const bands = planar ? [at.band] : Array.from({ length: samples }, (_, s) => s);
  return { x0, y0, columns: Math.min(blockWidth, width - x0), rows: Math.min(at.rows, height - y0), bands };
}

/**
 * Writes a decoded block's samples into `out` ([samples, height, width]), clipped to the image; a sample equal to
 * `nodata` becomes NaN.
 */
export function unpackBlock(
  block: Uint8Array,
  layout: Layout,
  at: BlockPlace,
  out: Float32Array,
  nodata: number | undefined,
): void {
  const typed = typedSamples(block, layout);
  const read = reader(layout);
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const { x0, y0, columns, rows, bands } = region(layout, at);
  const perPixel = layout.planar ? 1 : layout.samples,
    stride = typed ? rowBytes(layout) / typed.BYTES_PER_ELEMENT : rowBytes(layout), // a row, in read()'s unit
    plane = layout.width * layout.height;
  const marker = nodata ?? Number.NaN; // NaN equals nothing: no sample is taken for nodata
  for (let r = 0; r < rows; r++) {
    const row = r * stride,
      target = (y0 + r) * layout.width + x0;
    for (let s = 0; s < bands.length; s++) {
      const base = bands[s] * plane + target;
      if (typed) copyRow(typed, row + s, perPixel, out, base, columns, marker);
      else
        for (let c = 0; c < columns; c++) {
          const v = read(view, row, c * perPixel + s);
          out[base + c] = v === marker ? Number.NaN : v;
        }
    }
  }
}

/** One band of one row from typed samples: the loop without a call per sample, which dominates decoding. */
function copyRow(
  from: TypedSamples,
  start: number,
  step: number,
  out: Float32Array,
  at: number,
  n: number,
  marker: number,
) {
  for (let c = 0, i = start; c < n; c++, i += step) {
    const v = from[i];
    out[at + c] = v === marker ? Number.NaN : v;
  }
}

const TYPED_ARRAYS: Record<string, new (buffer: ArrayBufferLike, offset: number, length: number) => TypedSamples> = {
  [`${SampleFormat.Unsigned}:8`]: Uint8Array,
  [`${SampleFormat.Signed}:8`]: Int8Array,
  [`${SampleFormat.Unsigned}:16`]: Uint16Array,
  [`${SampleFormat.Signed}:16`]: Int16Array,
  [`${SampleFormat.Unsigned}:32`]: Uint32Array,
  [`${SampleFormat.Signed}:32`]: Int32Array,
  [`${SampleFormat.Float}:32`]: Float32Array,
  [`${SampleFormat.Float}:64`]: Float64Array,
};
type TypedSamples = ArrayLike<number> & { readonly BYTES_PER_ELEMENT: number };
const hostLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The block as a typed array when its samples are one (whole bytes in the host's byte order): read by index, about
 * five times faster than through a DataView. A block at an unaligned offset (a raw block within the file) is copied.
 */
function typedSamples(block: Uint8Array, { format, bits, littleEndian }: Layout): TypedSamples | undefined {
  const Typed = TYPED_ARRAYS[`${format}:${bits}`];
  if (!Typed || (bits > 8 && littleEndian !== hostLittleEndian)) return undefined;
  const size = bits / 8;
  const aligned = block.byteOffset % size === 0 ? block : new Uint8Array(block); // a copy (a Buffer's slice is a view)
  return new Typed(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / size));
}

/** Fills the part of the image a block covers with one value (a sparse block: no bytes in the file). */
export function fillBlock(layout: Layout, at: BlockPlace, out: Float32Array, value: number): void {
  const { x0, y0, columns, rows, bands } = region(layout, at);
  const plane = layout.width * layout.height;
  for (const band of bands)
    for (let r = 0; r < rows; r++) {
      const start = band * plane + (y0 + r) * layout.width + x0;
      out.fill(value, start, start + columns);
    }
}
