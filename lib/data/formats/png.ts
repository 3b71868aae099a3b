/**
 * PNG decoding to raw samples. The alpha channel comes back as stored, never premultiplied into the colours: datasets
 * such as METER-ML keep a fourth band (NAIP's near-infrared) there. Greyscale, grey + alpha, RGB and RGBA at 8 or 16
 * bits are read; palettes and sub-byte depths are not (no multi-band imagery uses them). A file that is not a
 * complete, intact PNG (chunk CRCs and zlib's checksum are checked) is a FileError naming the file and what is wrong.
 *
 * Non-interlaced images, which is what imagery is, take a fast path: Node's zlib (C) inflates the image data and the
 * row filters are undone here, about 3x faster than a JavaScript inflater on a 720x720 NAIP tile. Interlaced ones go
 * through fast-png.
 */
import { crc32, deflateSync, inflateSync } from 'node:zlib';

import { decode, type PngDataArray } from 'fast-png';

import { ArgumentError, FileError } from '../../errors.js';

export interface PngImage {
  width: number;
  height: number;
  /** Samples per pixel: 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA). */
  channels: number;
  /** Bits per sample. */
  depth: 8 | 16;
  /** Interleaved samples, height x width x channels, row-major. */
  data: PngDataArray;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Channels per PNG colour type; 3 (indexed) is refused. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

interface Header {
  width: number;
  height: number;
  depth: number;
  colourType: number;
  interlaced: boolean;
}

const fail = (file: string, what: string) => new FileError(file, `not a readable PNG file: ${what}`);

/** The header and the concatenated image data, every chunk's CRC checked. */
function readChunks(bytes: Uint8Array, file: string): { header: Header; idat: Uint8Array } {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw fail(file, 'no PNG signature');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Uint8Array[] = [];
  let header: Header | undefined;
  for (let at = 8; ;) {
    if (at + 12 > bytes.length) throw fail(file, `truncated at byte ${at} (no IEND chunk)`);
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (at + 12 + length > bytes.length) throw fail(file, `chunk ${type} at byte ${at} runs past the end of the file`);
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length))
      throw fail(file, `chunk ${type} at byte ${at}: CRC mismatch`);
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      const h = new DataView(body.buffer, body.byteOffset, body.byteLength);
      header = {
        width: h.getUint32(0),
        height: h.getUint32(4),
        depth: body[8],
        colourType: body[9],
        interlaced: body[12] === 1,
      };
    } else if (type === 'IDAT') {
      parts.push(body);
    } else if (type === 'IEND') {
      break;
    }
    at += 12 + length;
  }
  if (!header) throw fail(file, 'no IHDR chunk');
  return { header, idat: Buffer.concat(parts) };
}

/** The Paeth predictor (PNG spec, 9.4) of left a, up b and up-left c. */
function paeth(a: number, b: number, c: number): number {
  const pa = b > c ? b - c : c - b,
    pb = a > c ? a - c : c - a,
    pc = a + b - 2 * c > 0 ? a + b - 2 * c : 2 * c - a - b;
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Undoes one row's filter (PNG spec, section 9) into `row`, from its filtered bytes `src` and the row above, `up`;
 * `bpp` bytes per pixel. The first pixel, which has no left neighbour, is done apart so the hot loops do not branch.
 */
function unfilterRow(filter: number, src: Uint8Array, up: Uint8Array, row: Uint8Array, bpp: number): boolean {
  const n = row.length;
  switch (filter) {
    case 0:
      row.set(src);
      return true;
    case 1:
      for (let i = 0; i < bpp; i++) row[i] = src[i];
      for (let i = bpp; i < n; i++) row[i] = src[i] + row[i - bpp];
      return true;
    case 2:
      for (let i = 0; i < n; i++) row[i] = src[i] + up[i];
      return true;
    case 3:
      for (let i = 0; i < bpp; i++) row[i] = src[i] + (up[i] >> 1);
      for (let i = bpp; i < n; i++) row[i] = src[i] + ((row[i - bpp] + up[i]) >> 1);
      return true;
    case 4:
      for (let i = 0; i < bpp; i++) row[i] = src[i] + up[i]; // paeth(0, b, 0) = b
      for (let i = bpp; i < n; i++) row[i] = src[i] + paeth(row[i - bpp], up[i], up[i - bpp]);
      return true;
    default:
      return false;
  }
}

/** Undoes the per-row filters; `stride` bytes per row, `bpp` bytes per pixel. */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number, file: string): Uint8Array {
  const out = new Uint8Array(height * stride);
  const zeros = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const up = y > 0 ? out.subarray((y - 1) * stride, y * stride) : zeros;
    const filter = raw[y * (stride + 1)];
    if (!unfilterRow(filter, src, up, out.subarray(y * stride, (y + 1) * stride), bpp))
      throw fail(file, `row ${y} has filter type ${filter} (0 to 4 exist)`);
  }
  return out;
}

function decodeFast({ width, height, depth, colourType }: Header, idat: Uint8Array, file: string): PngImage {
  const channels = CHANNELS[colourType];
  const bytesPerSample = depth / 8;
  const stride = width * channels * bytesPerSample;
  let raw: Uint8Array;
  try {
    raw = inflateSync(idat);
  } catch (e) {
    throw fail(file, `image data does not inflate: ${(e as Error).message}`);
  }
  if (raw.length !== height * (stride + 1))
    throw fail(
      file,
      `image data inflates to ${raw.length} bytes, ${height * (stride + 1)} expected for ${width}x${height}x${channels}`,
    );
  const bytes = unfilter(raw, height, stride, channels * bytesPerSample, file);
  if (depth === 8) return { width, height, channels, depth: 8, data: bytes };
  const samples = new Uint16Array(bytes.length / 2); // PNG stores 16-bit samples big-endian
  for (let i = 0; i < samples.length; i++) samples[i] = (bytes[2 * i] << 8) | bytes[2 * i + 1];
  return { width, height, channels, depth: 16, data: samples };
}

function decodeInterlaced(bytes: Uint8Array, file: string): PngImage {
  try {
    const { width, height, channels, depth, data } = decode(bytes, { checkCrc: true });
    return { width, height, channels, depth: depth as 8 | 16, data };
  } catch (e) {
    const { message, cause } = e as Error; // fast-png puts the inflater's complaint in `cause`
    throw fail(file, `${message}${cause instanceof Error ? ` ${cause.message}` : ''}`);
  }
}

/** Decodes a whole PNG file; `file` names it in errors. */
export function decodePng(bytes: Uint8Array, file: string): PngImage {
  const { header, idat } = readChunks(bytes, file);
  if (header.colourType === 3)
    throw new FileError(file, 'indexed-colour (palette) PNG: only grey, RGB and their alpha forms are read');
  if (CHANNELS[header.colourType] === undefined) throw fail(file, `colour type ${header.colourType}`);
  if (header.depth !== 8 && header.depth !== 16)
    throw new FileError(file, `PNG of ${header.depth}-bit samples: 8 and 16 bits are read`);
  return header.interlaced ? decodeInterlaced(bytes, file) : decodeFast(header, idat, file);
}

/**
 * Encodes 8-bit interleaved samples (height x width x channels, channels 1 to 4) as a non-interlaced PNG, alpha
 * stored as given. Rows use the Sub filter; Node's zlib compresses them at level 3 (imagery noise barely compresses
 * further at higher levels, which cost several times the time).
 */
export function encodePng({
  width,
  height,
  channels,
  data,
}: {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}): Uint8Array {
  const colourType = ({ 1: 0, 2: 4, 3: 2, 4: 6 } as Record<number, number>)[channels];
  const positive = (n: number) => Number.isInteger(n) && n > 0;
  if (colourType === undefined || !positive(width) || !positive(height) || data.length !== width * height * channels) {
    throw new ArgumentError(
      `encodePng: ${data.length} samples for ${width}x${height}x${channels} (positive integer sizes, 1 to 4 channels)`,
    );
  }
  const stride = width * channels;
  const filtered = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const row = data.subarray(y * stride, (y + 1) * stride),
      out = filtered.subarray(y * (stride + 1), (y + 1) * (stride + 1));
    out[0] = 1;
    for (let i = 0; i < stride; i++) out[i + 1] = row[i] - (i >= channels ? row[i - channels] : 0);
  }
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, colourType, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from(SIGNATURE),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(filtered, { level: 3 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  out.set(Buffer.from(type, 'latin1'), 4);
  out.set(body, 8);
  view.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}
