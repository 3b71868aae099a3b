/**
 * What a TIFF image's tags say about its pixels: size, samples, blocks, compression, predictor, photometric. Read
 * once, checked once: anything this reader cannot decode right is refused here, by name, with the command that
 * converts the file, before a byte of pixel data is read.
 */
import type { GeoTIFFImage } from 'geotiff';

/** The compressions a TIFF may name (TIFF 6, libtiff's registry, GDAL's). */
export const COMPRESSION_NAMES: Record<number, string> = {
  1: 'none',
  2: 'CCITT RLE (modified Huffman)',
  3: 'CCITT Group 3 fax',
  4: 'CCITT Group 4 fax',
  5: 'LZW',
  6: 'old-style JPEG (TIFF 6.0 section 22)',
  7: 'JPEG',
  8: 'Deflate',
  32771: 'CCITT RLE, word-aligned',
  32773: 'PackBits',
  32809: 'ThunderScan',
  32946: 'Deflate (PKZIP code)',
  34661: 'JBIG',
  34676: 'SGILOG (LogLuv, 32-bit)',
  34677: 'SGILOG24 (LogLuv, 24-bit)',
  34712: 'JPEG 2000',
  34887: 'LERC',
  34892: 'lossy JPEG (DNG)',
  34925: 'LZMA',
  50000: 'ZSTD',
  50001: 'WebP',
  50002: 'JPEG XL',
};

/** The compressions decoded here. */
export const DECODED_COMPRESSIONS = new Set([1, 5, 7, 8, 32773, 32946, 34887, 50000, 50001]);

const PHOTOMETRIC_NAMES: Record<number, string> = {
  0: 'MinIsWhite',
  1: 'MinIsBlack',
  2: 'RGB',
  3: 'Palette',
  4: 'transparency mask',
  5: 'CMYK (separated inks)',
  6: 'YCbCr',
  8: 'CIELab',
  9: 'ICCLab',
  10: 'ITULab',
  32844: 'LogL',
  32845: 'LogLuv',
};
/** Interpretations whose samples are the values GDAL returns too (it converts the others, or JPEG's YCbCr). */
const RAW_PHOTOMETRICS = new Set([0, 1, 2, 3, 4]);
export const YCBCR = 6;

export const enum SampleFormat {
  Unsigned = 1,
  Signed = 2,
  Float = 3,
}

export interface Layout {
  width: number;
  height: number;
  /** Samples per pixel: the bands. */
  samples: number;
  bits: number;
  format: SampleFormat;
  littleEndian: boolean;
  /** Band-interleaved (PlanarConfiguration 2): a block holds one band. */
  planar: boolean;
  tiled: boolean;
  /** A block's stored width and height (a strip's height is RowsPerStrip; the last strip may hold fewer rows). */
  blockWidth: number;
  blockHeight: number;
  blocksAcross: number;
  blocksDown: number;
  compression: number;
  predictor: number;
  photometric: number;
  /** JPEG's YCbCr, converted to RGB by the decoder. */
  ycbcr: boolean;
}

/** Why the image cannot be decoded here, naming what and how to convert it; undefined when it can. */
export type Refusal = string;

const CONVERT = 'gdal_translate -co COMPRESS=DEFLATE in.tif out.tif';
/** The most samples one block may hold (2^28, as the whole raster): decoders allocate a block before filling it. */
const MAX_BLOCK_SAMPLES = 2 ** 28;

const first = (v: unknown, fallback: number): number => {
  const x = Array.isArray(v) || ArrayBuffer.isView(v) ? Number((v as ArrayLike<number>)[0]) : Number(v ?? fallback);
  return Number.isFinite(x) ? x : fallback;
};

const TAGS = [
  'SamplesPerPixel',
  'BitsPerSample',
  'SampleFormat',
  'Compression',
  'PhotometricInterpretation',
  'TileWidth',
  'TileLength',
  'RowsPerStrip',
  'Predictor',
  'PlanarConfiguration',
] as const;

/** The image's layout, or a refusal that names what this reader does not decode. */
export async function readLayout(image: GeoTIFFImage, littleEndian: boolean): Promise<Layout | Refusal> {
  const d = image.getFileDirectory();
  const values = await Promise.all(TAGS.map((tag) => d.loadValue(tag)));
  const tag = Object.fromEntries(TAGS.map((t, i) => [t, values[i]])) as Record<(typeof TAGS)[number], unknown>;
  const width = image.getWidth(),
    height = image.getHeight();
  const samples = first(tag.SamplesPerPixel, 1);
  const bitsList = Array.from((tag.BitsPerSample as ArrayLike<number> | undefined) ?? [1]).map(Number);
  const formats = Array.from((tag.SampleFormat as ArrayLike<number> | undefined) ?? [1]).map(Number);
  const compression = first(tag.Compression, 1);
  const photometric = first(tag.PhotometricInterpretation, samples >= 3 ? 2 : 1);
  const tiled = tag.TileWidth !== undefined;
  const planar = first(tag.PlanarConfiguration, 1) === 2;
  const bits = bitsList[0];
  const format = (formats[0] === 4 ? 1 : formats[0]) as SampleFormat; // 4: "undefined" data, read as unsigned
  if (!(width > 0 && height > 0 && samples > 0)) return `declares a ${width}x${height} image of ${samples} samples`;
  if (bitsList.some((b) => b !== bits) || formats.some((f) => f !== formats[0]))
    return `bands of different sample types (BitsPerSample ${bitsList.join(', ')}; SampleFormat ${formats.join(', ')}) are not supported; ${CONVERT}`;
  const compressionName = COMPRESSION_NAMES[compression] ?? `compression ${compression} (unknown to libtiff)`;
  if (!DECODED_COMPRESSIONS.has(compression))
    return `${compressionName} compression is not supported; convert the file, e.g. ${CONVERT}`;
  const sampleRefusal = refuseSamples(bits, formats[0]) ?? refuseCodecSamples(compression, bits, samples, planar);
  if (sampleRefusal) return sampleRefusal;
  const ycbcr = photometric === YCBCR && compression === 7;
  if (!RAW_PHOTOMETRICS.has(photometric) && !ycbcr) {
    const name = PHOTOMETRIC_NAMES[photometric] ?? `PhotometricInterpretation ${photometric}`;
    return `${name} pixels are not converted here (GDAL converts them to RGB); convert the file, e.g. gdal_translate -co PHOTOMETRIC=RGB -co COMPRESS=DEFLATE in.tif out.tif`;
  }
  const predictor = first(tag.Predictor, 1);
  if (predictor === 2 && ![8, 16, 32, 64].includes(bits))
    return `the horizontal predictor on ${bits}-bit samples is not defined (libtiff refuses it too); ${CONVERT}`;
  if (predictor === 3 && format !== SampleFormat.Float)
    return `the floating-point predictor on ${bits}-bit integer samples is not defined; ${CONVERT}`;
  if (![1, 2, 3].includes(predictor)) return `predictor ${predictor} is not defined by TIFF; ${CONVERT}`;
  const blockWidth = tiled ? first(tag.TileWidth, 0) : width;
  const blockHeight = tiled ? first(tag.TileLength, 0) : Math.min(first(tag.RowsPerStrip, height), height);
  if (!(blockWidth > 0 && blockHeight > 0)) return `declares ${blockWidth}x${blockHeight} blocks`;
  if (blockWidth * blockHeight * samples > MAX_BLOCK_SAMPLES)
    return `declares ${blockWidth}x${blockHeight} blocks of ${samples} samples, more than the ${MAX_BLOCK_SAMPLES} samples a block may hold here`;
  return {
    width,
    height,
    samples,
    bits,
    format,
    littleEndian,
    planar,
    tiled,
    blockWidth,
    blockHeight,
    blocksAcross: Math.ceil(width / blockWidth),
    blocksDown: Math.ceil(height / blockHeight),
    compression,
    predictor,
    photometric,
    ycbcr,
  };
}

function refuseSamples(bits: number, format: number): Refusal | undefined {
  if (format === 5 || format === 6)
    return `complex samples (e.g. CInt16, SampleFormat ${format}) are not supported; convert to amplitude or to two real bands first`;
  if (format === 3 && ![16, 32, 64].includes(bits))
    return `${bits}-bit floating-point samples are not supported (16, 32 and 64 are); gdal_translate -ot Float32 in.tif out.tif`;
  if ((format === 1 || format === 2 || format === 4) && !(bits >= 1 && bits <= 32) && bits !== 64)
    return `${bits}-bit integer samples are not supported (1 to 32 and 64 are); gdal_translate -ot UInt32 in.tif out.tif`;
  if (![1, 2, 3, 4].includes(format)) return `SampleFormat ${format} is not defined by TIFF`;
  return undefined;
}

/** What JPEG and WebP blocks hold, as libtiff decodes them: 8-bit samples; WebP pixel-interleaved RGB or RGBA. */
function refuseCodecSamples(compression: number, bits: number, samples: number, planar: boolean): Refusal | undefined {
  if (compression === 7 && bits !== 8)
    return `${bits}-bit JPEG is not supported (8-bit is); convert the file, e.g. ${CONVERT}`;
  if (compression === 7 && !planar && samples > 4)
    return `JPEG of ${samples} samples per pixel is not supported (at most 4); convert the file, e.g. ${CONVERT}`;
  if (compression === 50001 && (bits !== 8 || ![3, 4].includes(samples) || planar))
    return `WebP holds pixel-interleaved 8-bit RGB or RGBA, not ${samples} ${planar ? 'band-interleaved ' : ''}${bits}-bit samples; convert the file, e.g. ${CONVERT}`;
  return undefined;
}

/** Bytes in one row of a block: packed samples end a row on a byte boundary. */
export const rowBytes = (layout: Layout) =>
  Math.ceil((layout.blockWidth * (layout.planar ? 1 : layout.samples) * layout.bits) / 8);

/** The block's number in the offsets tables, and its rows (the last strip may be short). */
export function blockAt(layout: Layout, bx: number, by: number, band: number) {
  const perPlane = layout.blocksAcross * layout.blocksDown;
  const index = (layout.planar ? band * perPlane : 0) + by * layout.blocksAcross + bx;
  const rows = layout.tiled
    ? layout.blockHeight
    : Math.min(layout.blockHeight, layout.height - by * layout.blockHeight);
  return { index, rows, bytes: rows * rowBytes(layout) };
}
