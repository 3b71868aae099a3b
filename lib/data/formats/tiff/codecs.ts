/**
 * A block's bytes, decompressed into exactly the bytes its tags say it holds. LZW and PackBits are decoded here
 * (geotiff's decoders grow their output without bound and do not know LZW's pre-TIFF-6 bit order), Deflate by
 * Node's zlib with the output bounded; ZSTD by `zstddec` told the block's size (geotiff's wrapper lets the frame
 * say how much to allocate, so one damaged byte can exhaust the heap); LERC by the `lerc` package (geotiff's wrapper
 * returns the whole buffer of a view, whatever its offset, and keeps only the first of a block's LERC bands); JPEG
 * and WebP by libjpeg-turbo and libwebp in the addon, as GDAL's libtiff decodes them (geotiff's JavaScript JPEG
 * decoder upsamples YCbCr otherwise and knows no WebP). Every decoder stops at the block's size: no file can make
 * this allocate more than its tags declare.
 */
import { inflateSync } from 'node:zlib';

import Lerc from 'lerc';
import { ZSTDDecoder } from 'zstddec';

import { native } from '../../../native.js';

import type { Layout } from './layout.js';

/** A copy of a view's bytes in an ArrayBuffer of their own (what geotiff's parser and LERC's decoder take). */
export const ownBuffer = (view: Uint8Array): ArrayBuffer =>
  view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer;

/** Thrown for a block that does not decode; the caller names the file and the block. */
export class BlockError extends Error {}

const CLEAR = 256,
  EOI = 257,
  MAX_CODES = 4096;

/**
 * LZW as TIFF 6 writes it (codes MSB-first, the code width growing one code early) and as TIFF 5 did (LSB-first,
 * no early change; libtiff's "compat" decoder, told apart the same way: the first bytes 0x00 0x01).
 */
export function lzwDecode(input: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const oldStyle = input.length >= 2 && input[0] === 0 && (input[1] & 1) === 1;
  const early = oldStyle ? 0 : 1;
  const prefix = new Int16Array(MAX_CODES),
    suffix = new Uint8Array(MAX_CODES),
    first = new Uint8Array(MAX_CODES),
    length = new Uint16Array(MAX_CODES);
  for (let c = 0; c < 256; c++) {
    suffix[c] = first[c] = c;
    length[c] = 1;
  }
  let next = 258,
    width = 9,
    previous = -1,
    pos = 0;
  let acc = 0,
    held = 0,
    at = 0;
  const emit = (code: number) => {
    const n = length[code];
    for (let i = n - 1, c = code; i >= 0; i--, c = prefix[c]) if (pos + i < size) out[pos + i] = suffix[c];
    pos += n;
  };
  while (pos < size) {
    while (held < width && at < input.length) {
      // acc keeps fewer than 32 bits: at most width - 1 + 8
      if (oldStyle) acc |= input[at++] << held;
      else acc = ((acc << 8) | input[at++]) >>> 0;
      held += 8;
    }
    if (held < width) break; // the data ended without an EOI code: what was decoded stands, as in libtiff
    let code: number;
    if (oldStyle) {
      code = acc & ((1 << width) - 1);
      acc >>>= width;
    } else {
      code = (acc >>> (held - width)) & ((1 << width) - 1);
      acc &= (1 << (held - width)) - 1;
    }
    held -= width;
    if (code === EOI) break;
    if (code === CLEAR) {
      next = 258;
      width = 9;
      previous = -1;
      continue;
    }
    if (previous < 0) {
      if (code > 255) throw new BlockError(`LZW data start with code ${code}, not a literal`);
    } else if (code <= next && next < MAX_CODES) {
      prefix[next] = previous;
      suffix[next] = code < next ? first[code] : first[previous];
      first[next] = first[previous];
      length[next] = length[previous] + 1;
      next++;
    } else if (code >= next) throw new BlockError(`LZW code ${code} is beyond the table (${next} codes)`);
    emit(code);
    previous = code;
    if (next + early >= 1 << width && width < 12) width++;
  }
  return out;
}

/** PackBits runs, up to `size` bytes. */
export function packBitsDecode(input: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let pos = 0,
    at = 0;
  while (pos < size && at < input.length) {
    const header = (input[at++] << 24) >> 24;
    if (header >= 0) {
      const n = Math.min(header + 1, size - pos, input.length - at);
      out.set(input.subarray(at, at + n), pos);
      pos += n;
      at += header + 1;
    } else if (header !== -128) {
      const n = Math.min(1 - header, size - pos);
      if (at < input.length) out.fill(input[at], pos, pos + n);
      pos += n;
      at++;
    }
  }
  return out;
}

function inflate(input: Uint8Array, size: number): Uint8Array {
  try {
    // Room for a writer's padding, not for a bomb: a block inflating past twice its size is refused.
    return inflateSync(input, { maxOutputLength: 2 * size + 1024 });
  } catch (e) {
    throw new BlockError(`Deflate data do not inflate: ${(e as Error).message}`);
  }
}

type Decode = (input: Uint8Array, size: number) => Uint8Array | Promise<Uint8Array>;

/** The block decoder for an image: `size` is the bytes the block holds, by its tags. */
export async function blockDecoder(
  layout: Layout,
  tags: { jpegTables?: Uint8Array; lercParameters?: number[] },
): Promise<Decode> {
  const own: Record<number, Decode> = {
    1: (input) => input,
    5: lzwDecode,
    8: inflate,
    32946: inflate,
    32773: packBitsDecode,
    [JPEG]: jpegDecoder(layout, tags.jpegTables),
    [WEBP]: webpDecoder(layout),
  };
  const decode = own[layout.compression];
  if (decode) return decode;
  if (layout.compression === ZSTD) return zstdDecoder();
  if (layout.compression === LERC) return lercDecoder(layout, tags.lercParameters);
  throw new BlockError(`compression ${layout.compression} has no decoder`); // readLayout refused it already
}

/** The rows a block of `size` bytes holds (the last strip may hold fewer than the others). */
const rowsOf = (layout: Layout, size: number, samples: number) => size / (layout.blockWidth * samples);

/** A native decoder's refusal, as the block's. */
function nativeBlock(decode: () => Uint8Array): Uint8Array {
  try {
    return decode();
  } catch (e) {
    throw new BlockError((e as Error).message.replace(/^\w+: /, ''));
  }
}

function jpegDecoder(layout: Layout, tables: Uint8Array | undefined): Decode {
  const components = layout.planar ? 1 : layout.samples;
  return (input, size) =>
    nativeBlock(() =>
      native.jpegDecode(input, tables, layout.ycbcr, layout.blockWidth, rowsOf(layout, size, components), components),
    );
}

function webpDecoder(layout: Layout): Decode {
  return (input, size) =>
    nativeBlock(() =>
      native.webpDecode(input, layout.blockWidth, rowsOf(layout, size, layout.samples), layout.samples),
    );
}

const JPEG = 7,
  ZSTD = 50000,
  LERC = 34887,
  WEBP = 50001;

let zstd: Promise<ZSTDDecoder> | undefined;
async function zstdDecoder() {
  zstd ??= (async () => {
    const decoder = new ZSTDDecoder();
    await decoder.init();
    return decoder;
  })();
  const decoder = await zstd;
  return async (input: Uint8Array, size: number) => {
    try {
      return decoder.decode(input, size);
    } catch (e) {
      throw new BlockError(`ZSTD data do not decompress: ${(e as Error).message ?? e}`);
    }
  };
}

/**
 * LERC blobs, after their additional Deflate or ZSTD (LercParameters[1]). LERC returns samples in memory order,
 * whole bytes per sample: `lercLayout` says how to read them.
 */
async function lercDecoder(layout: Layout, parameters: number[] | undefined) {
  const extra = parameters?.[1] ?? 0;
  if (![0, 1, 2].includes(extra)) throw new BlockError(`LERC with additional compression ${extra} is not defined`);
  const unzstd = extra === 2 ? await zstdDecoder() : undefined;
  return async (input: Uint8Array, size: number) => {
    // The LERC blob is at most about the raw size (LERC only shrinks data, plus a header).
    const blob = extra === 1 ? inflate(input, size) : unzstd ? await unzstd(input, 2 * size + 1024) : input;
    try {
      const values = lercSamples(blob, !layout.planar);
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    } catch (e) {
      throw new BlockError(`LERC data do not decode: ${(e as Error).message ?? e}`);
    }
  };
}

/**
 * A LERC block's samples in TIFF order. A pixel-interleaved block is one LERC band holding every sample of a pixel
 * (GDAL up to 3.6) or one LERC band per sample, each with a mask of invalid pixels of its own or the previous band's
 * (libtiff 4.5 on, when the samples' NaN differ): those bands are interleaved back, each band's mask applied to its
 * own samples. LERC keeps NaN out of its data as a mask: GDAL puts NaN back, so do we.
 */
function lercSamples(blob: Uint8Array, interleaved: boolean): TypedArray {
  const bands = lercBands(blob);
  if (bands.length > 1 && !interleaved) throw new Error(`a band-interleaved block holds ${bands.length} LERC bands`);
  const decoded = Lerc.decode(ownBuffer(blob), { returnPixelInterleavedDims: interleaved });
  const values = decoded.pixels as TypedArray[];
  if (values.length !== bands.length) throw new Error(`${values.length} bands decode, ${bands.length} are declared`);
  // `lerc` returns the first band's mask and, only when several bands store one, the masks without saying whose
  // they are: a band that stores its own is decoded alone for it.
  let previous: Uint8Array | null = null;
  const masks = bands.map((band, b) => {
    if (band.validPixels === band.pixels) previous = null;
    else if (band.ownMask) previous = b === 0 ? decoded.mask : Lerc.decode(ownBuffer(band.bytes)).mask;
    return previous;
  });
  const n = bands.length,
    depth = bands[0].depth;
  const out =
    n === 1 ? values[0] : new (values[0].constructor as new (length: number) => TypedArray)(values[0].length * n);
  if (n > 1)
    values.forEach((band, b) => {
      for (let i = 0; i < band.length; i++) out[(i - (i % depth)) * n + b * depth + (i % depth)] = band[i];
    });
  if (out instanceof Float32Array || out instanceof Float64Array)
    masks.forEach((mask, b) => {
      for (let p = 0; mask && p < mask.length; p++)
        if (!mask[p]) out.fill(Number.NaN, (p * n + b) * depth, (p * n + b + 1) * depth);
    });
  return out;
}

type TypedArray = Exclude<NodeJS.TypedArray, BigInt64Array | BigUint64Array>;

interface LercBand {
  bytes: Uint8Array;
  pixels: number;
  /** Values per pixel. */
  depth: number;
  validPixels: number;
  /** Whether the band stores its mask (one that does not, yet has invalid pixels, has the previous band's). */
  ownMask: boolean;
}

/**
 * The bands of a LERC 2 blob, read from their headers as `lerc` reads them. A blob of another kind (LERC 1) is one
 * band for `lerc` to judge, its mask the one `lerc` returns.
 */
function lercBands(blob: Uint8Array): LercBand[] {
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const isLerc2 = (at: number) => String.fromCharCode(...blob.subarray(at, at + 6)) === 'Lerc2 ';
  if (!isLerc2(0)) return [{ bytes: blob, pixels: 1, depth: 1, validPixels: 0, ownMask: true }];
  const bands: LercBand[] = [];
  // Bands follow one another until fewer than 10 bytes are left, as `lerc` reads them.
  for (let at = 0; at < blob.length - 10;) {
    const band = `band ${bands.length + 1}`;
    if (!isLerc2(at)) throw new Error(`${band} does not start with a LERC 2 header`);
    const version = view.getInt32(at + 6, true);
    let key = at + (version >= 3 ? 14 : 10);
    if (key + (version >= 4 ? 56 : 52) > blob.length) throw new Error(`${band}'s header is cut short`);
    const height = view.getUint32(key, true),
      width = view.getUint32(key + 4, true);
    const depth = version >= 4 ? view.getUint32(key + 8, true) : 1;
    key += version >= 4 ? 12 : 8;
    const validPixels = view.getUint32(key, true),
      size = view.getInt32(key + 8, true),
      maskBytes = view.getUint32(key + 40, true);
    if (size <= key + 44 - at || at + size > blob.length) throw new Error(`${band} claims ${size} bytes`);
    const ownMask = maskBytes > 0 || validPixels === 0;
    bands.push({ bytes: blob.subarray(at, at + size), pixels: width * height, depth, validPixels, ownMask });
    at += size;
  }
  return bands;
}

/** How LERC's output is laid out: the container type's whole bytes (packed NBITS samples unpacked), in the file's byte order. */
export function lercLayout(layout: Layout): Layout {
  if (layout.compression !== LERC) return layout;
  const bits = layout.bits <= 8 ? 8 : layout.bits <= 16 ? 16 : layout.bits <= 32 ? 32 : 64;
  return { ...layout, bits };
}
