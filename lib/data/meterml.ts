/**
 * METER-ML (Zhu et al. 2022, CC-BY-4.0), read as released:
 *
 *   <root>/{train,val,test}_dataset.geojson       the official split: one Point feature per site, properties
 *                                                  Latitude, Longitude, Type, Source (not read), Image_Folder
 *   <root>/train_images/train_images_{1,2,3}/<lat>_<lon>/   train folders, one level deeper than Image_Folder says
 *   <root>/{val,test}_images/<lat>_<lon>/
 *
 * Each sample folder holds naip.png (720x720, R, G, B, and NIR in the alpha channel), sentinel-1.npy (72x72x2: VV, VH,
 * uint16 0..4095, not dB), sentinel-2-10m.npy (72x72x4), sentinel-2-20m.npy (36x36x6) and sentinel-2-60m.npy (12x12x3),
 * the arrays height x width x bands; `read` returns float32 [bands, height, width] with the raw values (no scaling).
 *
 * `Type` is a class, `Negative`, or classes joined by '-' for multi-class sites ('CAFOs-Landfills'). Other names
 * (the release has 'Roundabout') mean no class: classes [], label -1, and not a Negative either, so such a site is
 * neither an anchor nor a negative's stand-in, just a sample.
 *
 * The release has defects: a folder lacking sentinel-1.npy and some Sentinel-2 files, images holding NaN. They are
 * found when read, as a FileError naming the sample folder and the file, so a loader can skip them.
 *
 * The 10 m band order is reported both as R, G, B, NIR (the loaders this follows) and as B2, B3, B4, B8 (B, G, R,
 * NIR): the names in file order are an option, `bands: {s2: [...]}`, reported in `ModalityInfo.bands`; no band is
 * ever moved.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { checkInt, checkOneOf, checkOptions, FileError, invalidArg, isObject } from '../errors.js';
import { type Dataset, type ModalityInfo, parseType, type Raster, type SampleRecord, type Split } from './dataset.js';
import { parseFeatureCollection } from './formats/geojson.js';
import { decodeNpy } from './formats/npy.js';
import { decodePng } from './formats/png.js';
import { bandsFirst, handleInvalid, INVALID_POLICIES, type InvalidPolicy } from './pixels.js';

/** Each modality's file in a sample folder, default band names (file order) and native grid [H, W]. */
export const METERML_MODALITIES = {
  s1: { file: 'sentinel-1.npy', bands: ['VV', 'VH'], size: [72, 72] },
  s2: { file: 'sentinel-2-10m.npy', bands: ['R', 'G', 'B', 'NIR'], size: [72, 72] },
  naip: { file: 'naip.png', bands: ['R', 'G', 'B', 'NIR'], size: [720, 720] },
  s2_20m: { file: 'sentinel-2-20m.npy', bands: ['B5', 'B6', 'B7', 'B8A', 'B11', 'B12'], size: [36, 36] },
  s2_60m: { file: 'sentinel-2-60m.npy', bands: ['B1', 'B9', 'B10'], size: [12, 12] },
} as const satisfies Record<string, { file: string; bands: readonly string[]; size: readonly [number, number] }>;

export type MeterMLModality = keyof typeof METERML_MODALITIES;

export interface MeterMLOptions {
  /** The official splits to index, in this order (default ['train', 'val', 'test']). */
  splits?: readonly Split[];
  /**
   * Band names in file order, per modality, instead of the defaults; as many as the file has bands. For instance
   * `{s2: ['B2', 'B3', 'B4', 'B8']}` if the 10 m files hold B, G, R, NIR.
   */
  bands?: Partial<Record<MeterMLModality, readonly string[]>>;
  /** NaN pixels: 'raise' (default) makes the sample unreadable, 'fill' fills them with the band's mean (lib/data/pixels.ts). */
  invalid?: InvalidPolicy;
}

const MODALITY_NAMES = Object.keys(METERML_MODALITIES) as MeterMLModality[];
const SPLITS: readonly Split[] = ['train', 'val', 'test'];
const OPTION_NAMES = ['splits', 'bands', 'invalid'] as const;

// ---- options ----------------------------------------------------------------------------------------------------

function checkSplits(op: string, splits: unknown): readonly Split[] {
  if (!Array.isArray(splits) || splits.length === 0)
    throw invalidArg(op, 'splits', `a non-empty array of ${SPLITS.join(', ')}`, splits);
  splits.forEach((s) => checkOneOf(op, 'splits', s, SPLITS));
  return [...new Set(splits as Split[])];
}

/** The band names of `modality`: the option's, checked, or the default. */
function bandNames(op: string, modality: MeterMLModality, bands: MeterMLOptions['bands']): readonly string[] {
  const defaults = METERML_MODALITIES[modality].bands;
  const names: unknown = bands?.[modality] ?? defaults;
  if (
    !Array.isArray(names) ||
    names.length !== defaults.length ||
    !names.every((n) => typeof n === 'string' && n !== '')
  ) {
    throw invalidArg(op, `bands.${modality}`, `${defaults.length} band names (the file's bands, in order)`, names);
  }
  return names;
}

function checkBands(op: string, bands: unknown): void {
  if (bands === undefined) return;
  if (!isObject(bands)) throw invalidArg(op, 'bands', 'an object of band names per modality', bands);
  for (const modality of Object.keys(bands))
    bandNames(op, checkOneOf(op, 'bands modality', modality, MODALITY_NAMES), bands);
}

/** Checks every option; returns the splits to index. */
function checkMeterMLOptions(op: string, options: MeterMLOptions | undefined): readonly Split[] {
  const checked = checkOptions(op, options);
  for (const name of Object.keys(checked)) checkOneOf(op, 'option', name, OPTION_NAMES); // a typo would be ignored
  checkBands(op, checked.bands);
  if (checked.invalid !== undefined) checkOneOf(op, 'invalid', checked.invalid, INVALID_POLICIES);
  return checked.splits === undefined ? SPLITS : checkSplits(op, checked.splits);
}

// ---- decoding ---------------------------------------------------------------------------------------------------

/** An image as the release stores it: height x width x bands, interleaved. */
interface Interleaved {
  shape: readonly number[];
  data: ArrayLike<number>;
}

/** float32 [bands, H, W] from an interleaved image, once its shape and band count are the modality's. */
function channelsFirst(
  { shape, data }: Interleaved,
  modality: MeterMLModality,
  bands: readonly string[],
  file: string,
): Raster {
  const [height, width] = METERML_MODALITIES[modality].size;
  if (shape.length !== 3 || shape[0] !== height || shape[1] !== width) {
    throw new FileError(
      file,
      `shape [${shape.join(', ')}], expected [${height}, ${width}, ${bands.length}] (height, width, bands) for ${modality}`,
    );
  }
  if (shape[2] !== bands.length)
    throw new FileError(file, `${shape[2]} bands, expected ${bands.length} (${bands.join(', ')}) for ${modality}`);
  return { shape: [bands.length, height, width], data: bandsFirst(data, [height, width, bands.length]) };
}

function decodeNaip(bytes: Uint8Array, file: string, bands: readonly string[]): Raster {
  const { width, height, channels, depth, data } = decodePng(bytes, file);
  if (depth !== 8) throw new FileError(file, `${depth}-bit samples, expected 8 (NAIP is uint8)`);
  return channelsFirst({ shape: [height, width, channels], data }, 'naip', bands, file);
}

function decodeSentinel(
  modality: MeterMLModality,
  bytes: Uint8Array,
  file: string,
  bands: readonly string[],
  invalid: InvalidPolicy,
): Raster {
  const array = decodeNpy(bytes, file);
  const raster = channelsFirst(array, modality, bands, file);
  // The release's arrays are uint16; NaN comes with the float files some processing leaves behind.
  return array.dtype === 'float32' || array.dtype === 'float64' ? handleInvalid(raster, bands, file, invalid) : raster;
}

/**
 * Decodes one modality's file, given its bytes: float32 [bands, H, W]. Synchronous and free of I/O, so a worker
 * thread can call it on bytes it was handed; `file` (the path, sample folder included) names the file in errors.
 * A file that is unreadable, of the wrong shape or band count, or holds NaN is a FileError.
 */
export function decodeModality(
  modality: MeterMLModality,
  bytes: Uint8Array,
  file: string,
  options: MeterMLOptions = {},
): Raster {
  const op = 'decodeModality';
  checkOneOf(op, 'modality', modality, MODALITY_NAMES);
  const { bands: names, invalid = 'raise' } = checkOptions(op, options);
  const bands = bandNames(op, modality, names);
  checkOneOf(op, 'invalid', invalid, INVALID_POLICIES);
  return modality === 'naip' ? decodeNaip(bytes, file, bands) : decodeSentinel(modality, bytes, file, bands, invalid);
}

// ---- the index --------------------------------------------------------------------------------------------------

/** A file system error on `path` as a FileError; `missing` says what a missing path means. */
function ioError(path: string, error: unknown, missing: string): FileError {
  const { code, message } = error as NodeJS.ErrnoException;
  return new FileError(path, code === 'ENOENT' ? `missing: ${missing}` : `cannot be read: ${message}`);
}

async function listFolder(path: string, missing: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (e) {
    throw ioError(path, e, missing);
  }
}

/**
 * Image_Folder ('<split>_images/<name>') to the sample folder relative to root, from one listing per folder: train
 * folders sit in train_images_N parts, which Image_Folder leaves out. A name found in two parts is taken from the
 * first (by part number). An Image_Folder that names its part is found too.
 */
async function sampleFolders(root: string, split: Split): Promise<Map<string, string>> {
  const top = `${split}_images`;
  const isPart = new RegExp(`^${top}_\\d+$`);
  const entries = (await listFolder(join(root, top), `the ${split} split's sample folders belong here`)).sort((a, b) =>
    a.localeCompare(b, 'en', { numeric: true }),
  );
  const groups = await Promise.all(
    entries.map(async (entry) =>
      isPart.test(entry)
        ? (await listFolder(join(root, top, entry), 'removed while being listed')).map((name) => [
            name,
            `${top}/${entry}/${name}`,
          ])
        : [[entry, `${top}/${entry}`]],
    ),
  );
  const folders = new Map<string, string>();
  for (const [name, folder] of groups.flat()) {
    if (!folders.has(`${top}/${name}`)) folders.set(`${top}/${name}`, folder);
    folders.set(folder, folder);
  }
  return folders;
}

interface SiteProperties {
  Latitude: number;
  Longitude: number;
  Type: string;
  Image_Folder: string;
}

const PROPERTY_TYPES: Record<keyof SiteProperties, 'number' | 'string'> = {
  Latitude: 'number',
  Longitude: 'number',
  Type: 'string',
  Image_Folder: 'string',
};

async function readFeatures(geojson: string): Promise<unknown[]> {
  let text: string;
  try {
    text = await readFile(geojson, 'utf8');
  } catch (e) {
    throw ioError(geojson, e, "the split's sites are listed here");
  }
  return parseFeatureCollection(text, geojson).features;
}

function siteProperties(feature: unknown, index: number, geojson: string): SiteProperties {
  const properties = isObject(feature) ? feature.properties : undefined;
  if (!isObject(properties)) throw new FileError(geojson, `feature ${index} has no properties object`);
  for (const [key, type] of Object.entries(PROPERTY_TYPES)) {
    if (!(key in properties)) throw new FileError(geojson, `feature ${index} lacks the property ${key}`);
    if (typeof properties[key] !== type)
      throw new FileError(geojson, `feature ${index}: ${key} is ${JSON.stringify(properties[key])}, not a ${type}`);
  }
  return properties as unknown as SiteProperties;
}

async function splitSamples(root: string, split: Split): Promise<SampleRecord[]> {
  const geojson = join(root, `${split}_dataset.geojson`);
  const [features, folders] = await Promise.all([readFeatures(geojson), sampleFolders(root, split)]);
  return features.map((feature, index) => {
    const site = siteProperties(feature, index, geojson);
    const id = folders.get(site.Image_Folder);
    if (id === undefined) {
      throw new FileError(
        geojson,
        `feature ${index}: Image_Folder ${site.Image_Folder} is not a folder in ${join(root, `${split}_images`)} or its ${split}_images_N parts`,
      );
    }
    return { id, split, ...parseType(site.Type), latitude: site.Latitude, longitude: site.Longitude };
  });
}

// ---- the dataset ------------------------------------------------------------------------------------------------

class MeterMLDataset implements Dataset {
  readonly spec: Dataset['spec'];
  readonly modalities: readonly ModalityInfo[];
  readonly #root: string;
  readonly #options: MeterMLOptions;

  constructor(
    root: string,
    options: MeterMLOptions,
    readonly samples: readonly SampleRecord[],
  ) {
    this.spec = { kind: 'meterml', root, options: options as Record<string, unknown> };
    this.modalities = MODALITY_NAMES.map((name) => ({
      name,
      bands: [...bandNames('openMeterML', name, options.bands)],
      size: [...METERML_MODALITIES[name].size],
    }));
    this.#root = root;
    this.#options = options;
  }

  async read(index: number, modality: string): Promise<Raster> {
    if (checkInt('read', 'index', index) < 0 || index >= this.samples.length)
      throw invalidArg('read', 'index', `an index in [0, ${this.samples.length})`, index);
    const name = checkOneOf('read', 'modality', modality, MODALITY_NAMES);
    const file = join(this.#root, this.samples[index].id, METERML_MODALITIES[name].file);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw ioError(
        file,
        e,
        `the sample folder has no ${METERML_MODALITIES[name].file} (the release lacks some files)`,
      );
    }
    return decodeModality(name, bytes, file, this.#options);
  }
}

/**
 * Indexes METER-ML at `root` from its geojson files (samples in split order, then file order) and one listing of the
 * image folders; no image is read. The spec `{kind: 'meterml', root, options}` reopens it in a worker thread.
 */
export async function openMeterML(root: string, options?: MeterMLOptions): Promise<Dataset> {
  const op = 'openMeterML';
  if (typeof root !== 'string' || root === '') throw invalidArg(op, 'root', 'a folder path', root);
  const splits = checkMeterMLOptions(op, options);
  const perSplit = await Promise.all(splits.map((split) => splitSamples(root, split)));
  return new MeterMLDataset(root, { ...options }, perSplit.flat());
}
