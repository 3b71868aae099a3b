/**
 * GeoTIFF to float32 [bands, H, W], decoded by the `geotiff` package: every dtype it reads (8 to 64-bit integers,
 * float16/32/64, packed 1..7 and 12-bit samples), compression (none, Deflate, LZW, PackBits, JPEG, ZSTD, LERC) with
 * predictors, strips or tiles, pixel or band interleave, little or big-endian, BigTIFF. The full-resolution image is
 * read; overviews are ignored. Nodata pixels (GDAL_NODATA) and NaN come back as NaN, so one check finds both.
 *
 * Not decodable here: WebP-compressed TIFF (geotiff decodes WebP with the browser's createImageBitmap, which Node
 * lacks) and complex samples; both are FileErrors that say so and how to convert the file.
 *
 * `encodeGeoTiff` writes what the synthetic generator needs and `geotiff`'s own writer lacks: Deflate compression,
 * a nodata value, georeferencing in EPSG:4326.
 */
import { deflateSync } from 'node:zlib';

import { fromArrayBuffer, type GeoTIFFImage } from 'geotiff';

import { ArgumentError, FileError } from '../../errors.js';
import type { Raster } from '../dataset.js';

export interface GeoTiffRaster extends Raster {
  /** The file's nodata value (pixels equal to it are NaN in `data`), or null. */
  nodata: number | null;
  /** GDAL's geotransform [originX, pixelWidth, rowRotation, originY, columnRotation, pixelHeight], or null. */
  geoTransform: GeoTransform | null;
  /** The EPSG code of the projected or geographic CRS, or null. */
  epsg: number | null;
}

const WEBP = 50001;
const YCBCR = 6;
const COMPLEX_FORMATS = new Set([5, 6]); // SampleFormat: complex int, complex float

/** Why `image` cannot be decoded here, if we know in advance: WebP and complex samples. */
function unsupported(image: GeoTIFFImage): string | undefined {
  const directory = image.getFileDirectory();
  if (directory.getValue('Compression') === WEBP) {
    return "WebP compression cannot be decoded in Node (geotiff needs the browser's createImageBitmap); re-encode it, e.g. gdal_translate -co COMPRESS=DEFLATE in.tif out.tif";
  }
  if (Array.from(directory.getValue('SampleFormat') ?? []).some((f) => COMPLEX_FORMATS.has(Number(f))))
    return 'complex samples (e.g. CInt16) are not supported; convert to amplitude or to two real bands first';
  return undefined;
}

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

/** The bands as one float32 [C, H, W] buffer, nodata turned into NaN (compared at the samples' own precision). */
function channelsFirst(bands: ArrayLike<number>[], nodata: number | null, plane: number): Float32Array {
  const out = new Float32Array(bands.length * plane);
  bands.forEach((band, b) => {
    const target = out.subarray(b * plane, (b + 1) * plane);
    for (let i = 0; i < plane; i++) target[i] = band[i];
    if (nodata === null) return;
    // Float32 bands hold the nodata value rounded to float32; integer and float64 bands hold it exactly.
    const marker = band instanceof Float32Array ? Math.fround(nodata) : nodata;
    for (let i = 0; i < plane; i++) if (band[i] === marker) target[i] = Number.NaN;
  });
  return out;
}

/**
 * Decodes a GeoTIFF's bytes; `file` names it in errors. Anything that is not a decodable TIFF is a FileError naming
 * the file and the reason.
 */
export async function decodeGeoTiff(bytes: Uint8Array, file: string): Promise<GeoTiffRaster> {
  let image: GeoTIFFImage;
  let bands: ArrayLike<number>[];
  try {
    const tiff = await fromArrayBuffer(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    );
    image = await tiff.getImage(0);
    const reason = unsupported(image);
    if (reason) throw new FileError(file, reason);
    // YCbCr (JPEG-compressed photos mostly) is converted to RGB, as GDAL does; other photometrics keep their samples.
    const ycbcr = image.getFileDirectory().getValue('PhotometricInterpretation') === YCBCR;
    const rasters = ycbcr ? await image.readRGB({ interleave: false }) : await image.readRasters({ interleave: false });
    bands = Array.from(rasters as unknown as ArrayLike<number>[]);
  } catch (e) {
    if (e instanceof FileError) throw e;
    throw new FileError(file, `cannot be decoded as a GeoTIFF: ${(e as Error).message ?? e}`);
  }
  const width = image.getWidth(),
    height = image.getHeight();
  const nodata = image.getGDALNoData();
  const transform = geoTransform(image);
  return {
    shape: [bands.length, height, width],
    data: channelsFirst(bands, nodata, width * height),
    nodata,
    geoTransform: transform,
    epsg: transform ? epsg(image) : null, // GCP-only files: the GCPs' CRS is not the raster's (GDAL reports none)
  };
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
