/**
 * GeoTIFF to float32 [bands, H, W]. `geotiff` parses the file's structure (TIFF and BigTIFF, both byte orders, the
 * GeoTIFF keys); the pixels are decoded here (lib/data/formats/tiff/): every integer depth from 1 to 32 bits and 64,
 * float16/32/64, both byte orders, pixel or band interleave, strips or tiles, no compression, LZW (both bit orders),
 * Deflate, PackBits, ZSTD, LERC, JPEG and WebP, horizontal and floating-point predictors. The full-resolution image is
 * read; overviews are ignored; scale and offset are not applied (GDAL's ReadAsArray does not either). Nodata pixels
 * (GDAL_NODATA, compared at the samples' own precision; sparse blocks too) and NaN come back as NaN, so one check
 * finds both.
 *
 * Refused, by name and with the gdal_translate command that converts the file: other compressions (LZMA,
 * CCITT fax, SGILOG, JPEG 2000, ...), complex samples, 24-bit floats, interpretations GDAL converts (CMYK, CIELab,
 * YCbCr without JPEG), and images that would decode to more than 1 GiB. Nothing a file declares is allocated before
 * it is checked against these bounds.
 *
 * `encodeGeoTiff` writes what the synthetic generator needs and `geotiff`'s own writer lacks: Deflate compression,
 * a nodata value, georeferencing in EPSG:4326.
 */
import { deflateSync } from 'node:zlib';

import { fromArrayBuffer, fromFile, type GeoTIFFImage } from 'geotiff';

import { ArgumentError, FileError } from '../../errors.js';
import type { Raster } from '../dataset.js';
import { BlockError, blockDecoder, lercLayout, ownBuffer } from './tiff/codecs.js';
import { blockAt, type Layout, readLayout, SampleFormat } from './tiff/layout.js';
import { fillBlock, undoPredictor, unpackBlock } from './tiff/samples.js';

export interface GeoTiffRaster extends Raster {
  /** The file's nodata value (pixels equal to it are NaN in `data`), or null. */
  nodata: number | null;
  /** GDAL's geotransform [originX, pixelWidth, rowRotation, originY, columnRotation, pixelHeight], or null. */
  geoTransform: GeoTransform | null;
  /** The EPSG code of the projected or geographic CRS, or null. */
  epsg: number | null;
  /** Each band's description as GDAL stores it (e.g. 'B04'), or null where it has none. */
  descriptions: (string | null)[];
}

/** What a GeoTIFF's first directory says of its raster, without decoding a pixel. */
export interface GeoTiffHeader {
  bands: number;
  height: number;
  width: number;
  descriptions: (string | null)[];
}

/** The most float32 samples one raster decodes to (1 GiB): a file declaring more is refused before decoding. */
export const MAX_SAMPLES = 2 ** 28;

export type GeoTransform = [number, number, number, number, number, number];
const PIXEL_IS_POINT = 2;

/**
 * GDAL's geotransform from ModelTransformation, or from one tie point and the pixel scale; shifted by half a pixel
 * for PixelIsPoint rasters, as GDAL does. Null when only ground control points (or nothing) georeference the file.
 */
function geoTransform(image: GeoTIFFImage): GeoTransform | null {
  const directory = image.getFileDirectory();
  const matrix = directory.getValue('ModelTransformation') as number[] | undefined;
  const tiepoint = directory.getValue('ModelTiepoint') as number[] | undefined;
  const scale = directory.getValue('ModelPixelScale') as number[] | undefined;
  let gt: GeoTransform;
  if (matrix && matrix.length >= 8) gt = [matrix[3], matrix[0], matrix[1], matrix[7], matrix[4], matrix[5]];
  else if (tiepoint && tiepoint.length === 6 && scale) {
    const [i, j, , x, y] = tiepoint;
    gt = [x - i * scale[0], scale[0], 0, y + j * scale[1], 0, -scale[1]];
  } else return null;
  if (image.getGeoKeys()?.GTRasterTypeGeoKey === PIXEL_IS_POINT) {
    gt[0] -= 0.5 * (gt[1] + gt[2]);
    gt[3] -= 0.5 * (gt[4] + gt[5]);
  }
  return gt;
}

/** The EPSG code of the geotransform's CRS (projected, else geographic), or null. */
function epsg(image: GeoTIFFImage): number | null {
  const keys = image.getGeoKeys();
  const code = keys?.ProjectedCSTypeGeoKey ?? keys?.GeographicTypeGeoKey;
  return typeof code === 'number' && code !== 32767 ? code : null; // 32767: user-defined
}

/** Each band's GDAL description (GDAL_METADATA's DESCRIPTION items), or null. */
async function descriptions(image: GeoTIFFImage): Promise<(string | null)[]> {
  const bands = image.getSamplesPerPixel();
  if (!image.getFileDirectory().hasTag('GDAL_METADATA')) return Array<null>(bands).fill(null);
  return Promise.all(
    Array.from({ length: bands }, async (_, b) => {
      const value = ((await image.getGDALMetadata(b)) as Record<string, unknown> | null)?.DESCRIPTION;
      return typeof value === 'string' && value !== '' ? value : null;
    }),
  );
}

/** Any failure reading a file, as the FileError that names it. */
function asFileError(e: unknown, file: string): FileError {
  if (e instanceof FileError) return e;
  const { code, message } = e as NodeJS.ErrnoException;
  if (code === 'ENOENT') return new FileError(file, 'missing: no file here');
  // A damaged file fails wherever geotiff reads past what it holds (a tag, an offsets table): one FileError.
  const past = e instanceof RangeError ? ' (its directory points past the end of the file: truncated or damaged?)' : '';
  return new FileError(file, `is not a readable TIFF${past}: ${message ?? e}`);
}

/** A GeoTIFF file's bands, size and band descriptions, reading only its header and directory. */
export async function readGeoTiffHeader(file: string): Promise<GeoTiffHeader> {
  try {
    const tiff = await fromFile(file);
    try {
      const image = await tiff.getImage(0);
      const header = { bands: image.getSamplesPerPixel(), height: image.getHeight(), width: image.getWidth() };
      return { ...header, descriptions: await descriptions(image) };
    } finally {
      await tiff.close();
    }
  } catch (e) {
    throw asFileError(e, file);
  }
}

/**
 * Decodes a GeoTIFF's bytes; `file` names it in errors. Anything that is not a TIFF this reader decodes right is a
 * FileError naming the file and the reason.
 */
export async function decodeGeoTiff(bytes: Uint8Array, file: string): Promise<GeoTiffRaster> {
  try {
    return await decode(bytes, file);
  } catch (e) {
    throw asFileError(e, file);
  }
}

async function decode(bytes: Uint8Array, file: string): Promise<GeoTiffRaster> {
  const tiff = await fromArrayBuffer(ownBuffer(bytes));
  const image = await tiff.getImage(0);
  const littleEndian = (tiff as unknown as { littleEndian: boolean }).littleEndian;
  const layout = await readLayout(image, littleEndian);
  if (typeof layout === 'string') throw new FileError(file, layout);
  const total = layout.width * layout.height * layout.samples;
  if (total > MAX_SAMPLES)
    throw new FileError(
      file,
      `declares ${layout.width}x${layout.height} pixels of ${layout.samples} samples (${(total / 2 ** 28).toFixed(1)} GiB as float32), more than the 1 GiB a raster may decode to; cut it into tiles first (gdal_translate -srcwin)`,
    );
  const nodata = image.getGDALNoData();
  const data = await decodePixels(image, layout, bytes, nodata, file);
  const transform = geoTransform(image);
  return {
    shape: [layout.samples, layout.height, layout.width],
    data,
    nodata,
    geoTransform: transform,
    epsg: transform ? epsg(image) : null, // GCP-only files: the GCPs' CRS is not the raster's (GDAL reports none)
    descriptions: await descriptions(image),
  };
}

/** Where each block's bytes are; every block checked to lie within the file before anything is allocated. */
async function blockTable(image: GeoTIFFImage, layout: Layout, size: number, file: string) {
  const d = image.getFileDirectory();
  const [offsets, counts] = (await Promise.all(
    layout.tiled
      ? [d.loadValue('TileOffsets'), d.loadValue('TileByteCounts')]
      : [d.loadValue('StripOffsets'), d.loadValue('StripByteCounts')],
  )) as (ArrayLike<number | bigint> | undefined)[];
  const blocks = layout.blocksAcross * layout.blocksDown * (layout.planar ? layout.samples : 1);
  if (!offsets || !counts || offsets.length < blocks || counts.length < blocks)
    throw new FileError(
      file,
      `lists ${offsets?.length ?? 0} block offsets and ${counts?.length ?? 0} byte counts for ${blocks} blocks`,
    );
  const table = Array.from({ length: blocks }, (_, i) => ({ offset: Number(offsets[i]), count: Number(counts[i]) }));
  const beyond = table.findIndex(({ offset, count }) => !(offset >= 0 && count >= 0 && offset + count <= size));
  if (beyond >= 0)
    throw new FileError(
      file,
      `${layout.tiled ? 'tile' : 'strip'} ${beyond} (${table[beyond].count} bytes at ${table[beyond].offset}) lies beyond the end of the file (${size} bytes): truncated?`,
    );
  return table;
}

/** The block decoder for the image; a FileError when its codec's parameters are not usable. */
async function decoderFor(image: GeoTIFFImage, layout: Layout, file: string) {
  const d = image.getFileDirectory();
  const jpegTables = (await d.loadValue('JPEGTables')) as Uint8Array | undefined;
  const lercParameters = (await d.loadValue('LercParameters')) as number[] | undefined;
  try {
    return await blockDecoder(layout, { jpegTables, lercParameters });
  } catch (e) {
    throw new FileError(file, `cannot decode its ${layout.tiled ? 'tiles' : 'strips'}: ${(e as Error).message ?? e}`);
  }
}

/** Every block of the image, decompressed, un-predicted and unpacked into one [C, H, W] float32 buffer. */
async function decodePixels(
  image: GeoTIFFImage,
  layout: Layout,
  bytes: Uint8Array,
  nodata: number | null,
  file: string,
): Promise<Float32Array> {
  const table = await blockTable(image, layout, bytes.length, file);
  const decode = await decoderFor(image, layout, file);
  const stored = lercLayout(layout); // how the decoded bytes hold the samples
  const out = new Float32Array(layout.width * layout.height * layout.samples);
  // Float32 (and float16) samples hold the nodata value rounded to float32; integer and float64 samples exactly.
  const float32 = layout.format === SampleFormat.Float && layout.bits <= 32;
  const marker = nodata === null ? undefined : float32 ? Math.fround(nodata) : nodata;
  for (let band = 0; band < (layout.planar ? layout.samples : 1); band++)
    for (let by = 0; by < layout.blocksDown; by++)
      for (let bx = 0; bx < layout.blocksAcross; bx++) {
        const block = blockAt(layout, bx, by, band),
          place = { bx, by, band, rows: block.rows };
        const { offset, count } = table[block.index];
        if (count === 0) {
          fillBlock(layout, place, out, marker === undefined ? 0 : Number.NaN); // sparse: no bytes in the file
          continue;
        }
        const where = `${layout.tiled ? 'tile' : 'strip'} ${block.index}`;
        let pixels: Uint8Array;
        try {
          pixels = await decode(bytes.subarray(offset, offset + count), block.bytes);
        } catch (e) {
          if (!(e instanceof BlockError)) throw e;
          throw new FileError(file, `${where} does not decode: ${e.message}`);
        }
        const expected = blockAt(stored, bx, by, band).bytes;
        if (pixels.length < expected)
          throw new FileError(file, `${where} decodes to ${pixels.length} bytes, ${expected} expected`);
        undoPredictor(pixels, layout, block.rows);
        unpackBlock(pixels, stored, place, out, marker);
      }
  return out;
}

// ---- writing ----------------------------------------------------------------------------------------------------

export interface GeoTiffImage {
  width: number;
  height: number;
  /** Samples per pixel, interleaved (height x width x bands). */
  bands: number;
  data: Uint8Array | Uint16Array | Float32Array;
  /** Longitude and latitude of the top-left corner, and the pixel size in degrees (EPSG:4326, north up). */
  origin: [number, number];
  pixelSize: number;
  nodata?: number;
}

const enum TagType {
  Short = 3,
  Long = 4,
  Ascii = 2,
  Double = 12,
}
const TYPE_BYTES: Record<TagType, number> = {
  [TagType.Ascii]: 1,
  [TagType.Short]: 2,
  [TagType.Long]: 4,
  [TagType.Double]: 8,
};
const ROWS_PER_STRIP = 16;

/** Little-endian classic TIFF, Deflate strips of 16 rows, pixel-interleaved, with GeoTIFF keys for EPSG:4326. */
export function encodeGeoTiff({ width, height, bands, data, origin, pixelSize, nodata }: GeoTiffImage): Uint8Array {
  if (data.length !== width * height * bands)
    throw new ArgumentError(`encodeGeoTiff: ${data.length} samples for ${width}x${height}x${bands}`);
  const bytesPerSample = data.BYTES_PER_ELEMENT,
    format = data instanceof Float32Array ? 3 : 1;
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // little-endian on every platform Node runs on
  const rowBytes = width * bands * bytesPerSample;
  const strips: Uint8Array[] = [];
  for (let y = 0; y < height; y += ROWS_PER_STRIP)
    strips.push(deflateSync(raw.subarray(y * rowBytes, Math.min(height, y + ROWS_PER_STRIP) * rowBytes)));
  const offsets: number[] = [];
  let end = 8; // after the header
  for (const strip of strips) {
    offsets.push(end);
    end += strip.length;
  }
  const repeat = (v: number) => Array<number>(bands).fill(v);
  const tags: [number, TagType, number[] | string][] = [
    [256, TagType.Long, [width]],
    [257, TagType.Long, [height]],
    [258, TagType.Short, repeat(bytesPerSample * 8)],
    [259, TagType.Short, [8]],
    [262, TagType.Short, [1]],
    [273, TagType.Long, offsets],
    [277, TagType.Short, [bands]],
    [278, TagType.Long, [ROWS_PER_STRIP]],
    [279, TagType.Long, strips.map((s) => s.length)],
    [284, TagType.Short, [1]],
    ...(bands > 1 ? [[338, TagType.Short, Array<number>(bands - 1).fill(0)] as [number, TagType, number[]]] : []),
    [339, TagType.Short, repeat(format)],
    [33550, TagType.Double, [pixelSize, pixelSize, 0]],
    [33922, TagType.Double, [0, 0, 0, origin[0], origin[1], 0]],
    // GeoKeyDirectory: version 1.1.0, 3 keys: GTModelType geographic, GTRasterType PixelIsArea, GeographicType 4326
    [34735, TagType.Short, [1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326]],
    ...(nodata === undefined ? [] : [[42113, TagType.Ascii, `${nodata}\0`] as [number, TagType, string]]),
  ];
  const ifdStart = end + (end % 2); // the IFD starts on a word boundary
  const ifdSize = 2 + tags.length * 12 + 4;
  const values = tags.map(([, type, v]) => (typeof v === 'string' ? v.length : v.length) * TYPE_BYTES[type]);
  const total = ifdStart + ifdSize + values.reduce((n, b) => n + (b > 4 ? b + (b % 2) : 0), 0);
  const out = new Uint8Array(total),
    view = new DataView(out.buffer);
  out.set([0x49, 0x49, 42, 0]);
  view.setUint32(4, ifdStart, true);
  strips.forEach((s, i) => out.set(s, offsets[i]));
  view.setUint16(ifdStart, tags.length, true);
  let extra = ifdStart + ifdSize;
  tags.forEach(([tag, type, v], i) => {
    const entry = ifdStart + 2 + i * 12,
      count = typeof v === 'string' ? v.length : v.length;
    view.setUint16(entry, tag, true);
    view.setUint16(entry + 2, type, true);
    view.setUint32(entry + 4, count, true);
    let at = entry + 8;
    if (values[i] > 4) {
      view.setUint32(at, extra, true);
      at = extra;
      extra += values[i] + (values[i] % 2); // values start on a word boundary
    }
    for (let k = 0; k < count; k++) {
      if (typeof v === 'string') view.setUint8(at + k, v.charCodeAt(k));
      else if (type === TagType.Short) view.setUint16(at + 2 * k, v[k], true);
      else if (type === TagType.Long) view.setUint32(at + 4 * k, v[k], true);
      else view.setFloat64(at + 8 * k, v[k], true);
    }
  });
  return out;
}
