/**
 * Users' own imagery: a manifest listing, per location, its split, its label and, per modality, one multi-band
 * GeoTIFF or one GeoTIFF per band (as BigEarthNet ships Sentinel bands). Paths are relative to the manifest's folder.
 *
 * GeoJSON (a FeatureCollection; Point geometry optional):
 *
 *   {"type": "FeatureCollection",
 *    "modalities": {"s2": {"bands": ["B02", "B03", "B04", "B08"], "size": [120, 120]}},      (optional)
 *    "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
 *                  "properties": {"id": "a", "split": "train", "label": "Landfills",
 *                                 "s1": "a/s1.tif", "s2": {"B02": "a/B02.tif", "B03": "a/B03.tif", ...}}}]}
 *
 * CSV (a header row): `id,split,label,latitude,longitude,s1,s2:B02,s2:B03,...`; a column `m` holds modality m's
 * multi-band file, columns `m:BAND` its per-band files; an empty cell means the location lacks that file.
 *
 * `split` is train, val or test; `label` reads as METER-ML's Type (a class, 'Negative', classes joined by '-', or
 * empty for none); `id` defaults to the row number. Without a `modalities` declaration (in the file or the options),
 * the properties or columns naming .tif/.tiff files are the modalities, their bands the per-band keys (or band1..N of
 * the first location's file) and their grid the first location's largest raster. Bands of another size are
 * resampled to the modality's grid (bilinear, antialiased when shrinking); nodata and NaN follow `invalid`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';

import { parse as parseCsv } from 'csv-parse/sync';

import { checkInt, checkOneOf, checkOptions, FileError, invalidArg, isObject } from '../errors.js';
import {
  CLASSES,
  type Dataset,
  type ModalityInfo,
  NEGATIVE,
  parseType,
  type Raster,
  type SampleRecord,
  type Split,
} from './dataset.js';
import { parseFeatureCollection } from './formats/geojson.js';
import { decodeGeoTiff } from './formats/geotiff.js';
import { handleInvalid, INVALID_POLICIES, type InvalidPolicy, resized } from './pixels.js';

export interface ManifestModality {
  /** Band names in channel order: for per-band files, the order they are stacked in. */
  bands?: string[];
  /** The grid [H, W] every band is resampled to. */
  size?: [number, number];
}

export interface ManifestOptions {
  /** Declares (or overrides the file's declaration of) the modalities; only these are read. */
  modalities?: Record<string, ManifestModality>;
  /** Splits to index (default all, in file order). */
  splits?: readonly Split[];
  /** Nodata and NaN pixels: 'raise' (default) or 'fill' (lib/data/pixels.ts). */
  invalid?: InvalidPolicy;
  /**
   * A label naming something that is not a class (nor Negative): 'raise' (default) stops at the first, naming the
   * location; 'none' reads that part of the label as no class (a location whose label names nothing else is
   * unlabelled: used in pre-training, not in fine-tuning).
   */
  unknownLabels?: 'raise' | 'none';
}

/** Where one modality of one location is: one multi-band file, or one file per band (by band name). */
type Source = string | Record<string, string>;

interface Location {
  record: SampleRecord;
  sources: Record<string, Source>;
  /** Where the location is described, for messages: 'features[3]' or 'row 5'. */
  where: string;
}

const SPLITS: readonly Split[] = ['train', 'val', 'test'];
const RESERVED = new Set(['id', 'split', 'label', 'latitude', 'longitude']);
const OPTION_NAMES = ['modalities', 'splits', 'invalid', 'unknownLabels'] as const;
const UNKNOWN_LABELS = ['raise', 'none'] as const;
const isTiff = (value: unknown): value is string => typeof value === 'string' && /\.tiff?$/i.test(value);

// ---- parsing ----------------------------------------------------------------------------------------------------

interface Parsed {
  declared: Record<string, ManifestModality> | undefined;
  rows: { where: string; fields: Record<string, unknown>; point?: [number, number] }[];
}

function parseGeoJson(text: string, path: string): Parsed {
  const json = parseFeatureCollection(text, path);
  if (json.modalities !== undefined && !isObject(json.modalities))
    throw new FileError(path, 'modalities must be an object of {bands, size} per modality');
  return {
    declared: json.modalities as Parsed['declared'],
    rows: json.features.map((feature, i) => {
      const where = `features[${i}]`;
      if (!isObject(feature) || !isObject(feature.properties))
        throw new FileError(path, `${where} has no properties object`);
      const geometry = feature.geometry;
      const point =
        isObject(geometry) && geometry.type === 'Point' && Array.isArray(geometry.coordinates)
          ? (geometry.coordinates as [number, number])
          : undefined;
      return { where, fields: feature.properties, point };
    }),
  };
}

/** CSV columns `m:BAND` gathered into {m: {BAND: file}}; empty cells dropped. */
function parseCsvManifest(text: string, path: string): Parsed {
  let records: Record<string, string>[];
  try {
    records = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true });
  } catch (e) {
    throw new FileError(path, `not a readable CSV file: ${(e as Error).message}`);
  }
  return {
    declared: undefined,
    rows: records.map((record, i) => {
      const fields: Record<string, unknown> = {};
      for (const [column, cell] of Object.entries(record)) {
        if (cell === '') continue;
        const [modality, band] = column.split(':');
        if (band === undefined) fields[column] = cell;
        else ((fields[modality] ??= {}) as Record<string, string>)[band] = cell;
      }
      const latitude = Number(record.latitude),
        longitude = Number(record.longitude);
      return {
        where: `row ${i + 2}`,
        fields,
        point: record.latitude && record.longitude ? [longitude, latitude] : undefined,
      };
    }),
  };
}

function checkSource(value: unknown, modality: string, where: string, path: string): Source | undefined {
  if (value === undefined) return undefined;
  if (isTiff(value)) return value;
  if (isObject(value) && Object.keys(value).length > 0 && Object.values(value).every(isTiff))
    return value as Record<string, string>;
  throw new FileError(
    path,
    `${where}: ${modality} is ${JSON.stringify(value)}, not a .tif path or an object of .tif paths per band`,
  );
}

/** The names in a label that are neither a class nor Negative ('' is no label, not an unknown one). */
function unknownNames(label: string): string[] {
  if (label.trim() === '') return [];
  const known: readonly string[] = [...CLASSES, NEGATIVE];
  return label.split('-').filter((name) => !known.includes(name.trim()));
}

function toLocation(
  row: Parsed['rows'][number],
  index: number,
  modalities: readonly string[],
  path: string,
  unknownLabels: 'raise' | 'none',
): Location {
  const { where, fields, point } = row;
  const split = fields.split;
  if (!SPLITS.includes(split as Split))
    throw new FileError(path, `${where}: split is ${JSON.stringify(split)}, expected one of ${SPLITS.join(', ')}`);
  const label = fields.label ?? '';
  if (typeof label !== 'string') throw new FileError(path, `${where}: label is ${JSON.stringify(label)}, not a string`);
  const unknown = unknownNames(label);
  if (unknown.length > 0 && unknownLabels === 'raise')
    throw new FileError(
      path,
      `${where}: label ${JSON.stringify(label)} names ${unknown.map((n) => `'${n}'`).join(', ')}, not one of the classes (${CLASSES.join(', ')}) or ${NEGATIVE}; classes are joined by '-'. To read such labels as no class, open it with unknownLabels: 'none'`,
    );
  const latitude = Number(fields.latitude ?? point?.[1]),
    longitude = Number(fields.longitude ?? point?.[0]);
  const record: SampleRecord = {
    id: String(fields.id ?? index),
    split: split as Split,
    ...parseType(label),
    ...(Number.isFinite(latitude) && Number.isFinite(longitude) ? { latitude, longitude } : {}),
  };
  const sources = Object.fromEntries(
    modalities.flatMap((m) => {
      const source = checkSource(fields[m], m, where, path);
      return source === undefined ? [] : [[m, source]];
    }),
  );
  return { record, sources, where };
}

/** The modality names: the declared ones, or every field naming .tif files somewhere in the manifest. */
function modalityNames(parsed: Parsed, declared: Record<string, ManifestModality> | undefined): string[] {
  if (declared) return Object.keys(declared);
  const names = new Set<string>();
  for (const { fields } of parsed.rows) {
    for (const [key, value] of Object.entries(fields)) {
      if (!RESERVED.has(key) && (isTiff(value) || (isObject(value) && Object.values(value).some(isTiff))))
        names.add(key);
    }
  }
  return [...names];
}

// ---- reading ----------------------------------------------------------------------------------------------------

async function readTiff(file: string) {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    throw new FileError(
      file,
      code === 'ENOENT' ? 'missing: the manifest lists this file' : `cannot be read: ${message}`,
    );
  }
  return decodeGeoTiff(bytes, file);
}

const resolvePath = (base: string, file: string) => (isAbsolute(file) ? file : join(base, file));

/** A modality's files, each decoded, checked for band count and invalid pixels, resampled, then stacked. */
async function readSource(source: Source, info: ModalityInfo, base: string, invalid: InvalidPolicy): Promise<Raster> {
  const [height, width] = info.size;
  const parts =
    typeof source === 'string'
      ? [{ file: source, bands: info.bands }]
      : info.bands.map((band) => ({ file: source[band], bands: [band] }));
  const rasters = await Promise.all(
    parts.map(async ({ file, bands }) => {
      const path = resolvePath(base, file);
      const raster = await readTiff(path);
      if (raster.shape[0] !== bands.length)
        throw new FileError(
          path,
          `${raster.shape[0]} bands, expected ${bands.length} (${bands.join(', ')}) for ${info.name}`,
        );
      handleInvalid(raster, bands, path, invalid);
      return raster.shape[1] === height && raster.shape[2] === width ? raster : resized(raster, info.size);
    }),
  );
  if (rasters.length === 1) return rasters[0];
  const plane = height * width,
    data = new Float32Array(rasters.length * plane);
  rasters.forEach((r, b) => data.set(r.data, b * plane));
  return { shape: [rasters.length, height, width], data };
}

/** Band names and grid of each modality: as declared, else from the first location that has it. */
async function describeModalities(
  names: readonly string[],
  declared: Record<string, ManifestModality>,
  locations: readonly Location[],
  base: string,
  path: string,
): Promise<ModalityInfo[]> {
  return Promise.all(
    names.map(async (name) => {
      const { bands, size } = declared[name] ?? {};
      const first = locations.find((l) => l.sources[name] !== undefined)?.sources[name];
      if (first === undefined && (!bands || !size))
        throw new FileError(path, `no location lists a file for ${name}, so its bands and size must be declared`);
      if (bands && size) return { name, bands: [...bands], size: [...size] as [number, number] };
      const files = typeof first === 'string' ? [first] : Object.values(first!);
      const rasters = await Promise.all(files.map((f) => readTiff(resolvePath(base, f))));
      const largest = rasters.reduce((a, r) => (r.shape[1] * r.shape[2] > a.shape[1] * a.shape[2] ? r : a));
      return {
        name,
        bands: bands
          ? [...bands]
          : typeof first === 'string'
            ? Array.from({ length: rasters[0].shape[0] }, (_, b) => `band${b + 1}`)
            : Object.keys(first!),
        size: size ? ([...size] as [number, number]) : [largest.shape[1], largest.shape[2]],
      };
    }),
  );
}

function checkDeclared(op: string, declared: unknown, where: string): Record<string, ManifestModality> | undefined {
  if (declared === undefined) return undefined;
  if (!isObject(declared)) throw invalidArg(op, where, 'an object of {bands, size} per modality', declared);
  for (const [name, m] of Object.entries(declared)) {
    if (!isObject(m)) throw invalidArg(op, `${where}.${name}`, '{bands?, size?}', m);
    if (
      m.bands !== undefined &&
      (!Array.isArray(m.bands) || m.bands.length === 0 || !m.bands.every((b) => typeof b === 'string' && b !== ''))
    ) {
      throw invalidArg(op, `${where}.${name}.bands`, 'a non-empty array of band names', m.bands);
    }
    if (
      m.size !== undefined &&
      (!Array.isArray(m.size) || m.size.length !== 2 || !m.size.every((s) => Number.isInteger(s) && s > 0))
    ) {
      throw invalidArg(op, `${where}.${name}.size`, '[height, width], positive integers', m.size);
    }
  }
  return declared as Record<string, ManifestModality>;
}

/** Every location's per-band files include the modality's bands (others, not declared, are not read). */
function checkSources(locations: readonly Location[], modalities: readonly ModalityInfo[], path: string): void {
  for (const { sources, where } of locations) {
    for (const m of modalities) {
      const source = sources[m.name];
      const lacking = source === undefined || typeof source === 'string' ? [] : m.bands.filter((b) => !(b in source));
      if (lacking.length > 0)
        throw new FileError(
          path,
          `${where}: ${m.name} has no file for band ${lacking.join(', ')} (its bands: ${m.bands.join(', ')})`,
        );
    }
  }
}

class ManifestDataset implements Dataset {
  readonly samples: readonly SampleRecord[];

  readonly spec: Dataset['spec'];

  constructor(
    readonly path: string,
    options: ManifestOptions,
    readonly modalities: readonly ModalityInfo[],
    readonly locations: readonly Location[],
  ) {
    this.spec = { kind: 'manifest', path, options: options as Record<string, unknown> };
    this.samples = locations.map((l) => l.record);
  }

  async read(index: number, modality: string): Promise<Raster> {
    if (checkInt('read', 'index', index) < 0 || index >= this.samples.length)
      throw invalidArg('read', 'index', `an index in [0, ${this.samples.length})`, index);
    const info = this.modalities.find((m) => m.name === modality);
    if (!info)
      throw invalidArg('read', 'modality', `one of ${this.modalities.map((m) => m.name).join(', ')}`, modality);
    const { sources, where, record } = this.locations[index];
    const source = sources[modality];
    if (source === undefined)
      throw new FileError(this.path, `${where} (sample ${record.id}) lists no file for ${modality}`);
    return readSource(source, info, dirname(this.path), (this.spec.options as ManifestOptions).invalid ?? 'raise');
  }
}

/**
 * Indexes the manifest at `path` (.geojson/.json, or .csv); no raster is read unless a modality's bands or size must
 * be learnt from its first file. The spec `{kind: 'manifest', path, options}` reopens it in a worker thread, with the
 * modalities resolved.
 */
export async function openManifest(path: string, options: ManifestOptions = {}): Promise<Dataset> {
  const op = 'openManifest';
  if (typeof path !== 'string' || path === '')
    throw invalidArg(op, 'path', 'a manifest file path (.geojson, .json or .csv)', path);
  const checked = checkOptions(op, options);
  for (const name of Object.keys(checked)) checkOneOf(op, 'option', name, OPTION_NAMES);
  const { splits = SPLITS, invalid = 'raise', unknownLabels = 'raise' } = checked;
  if (!Array.isArray(splits) || splits.length === 0)
    throw invalidArg(op, 'splits', `a non-empty array of ${SPLITS.join(', ')}`, splits);
  splits.forEach((s) => checkOneOf(op, 'splits', s, SPLITS));
  checkOneOf(op, 'invalid', invalid, INVALID_POLICIES);
  checkOneOf(op, 'unknownLabels', unknownLabels, UNKNOWN_LABELS);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const { code, message } = e as NodeJS.ErrnoException;
    throw new FileError(path, code === 'ENOENT' ? 'missing: no manifest here' : `cannot be read: ${message}`);
  }
  const parsed = /\.csv$/i.test(path) ? parseCsvManifest(text, path) : parseGeoJson(text, path);
  const declared =
    checkDeclared(op, checked.modalities, 'modalities') ?? checkDeclared(op, parsed.declared, `${path} modalities`);
  const names = modalityNames(parsed, declared);
  if (names.length === 0)
    throw new FileError(path, 'names no modality: no property or column lists .tif files, and none is declared');
  const locations = parsed.rows
    .map((row, i) => toLocation(row, i, names, path, unknownLabels as 'raise' | 'none'))
    .filter((l) => splits.includes(l.record.split));
  const ids = new Set<string>();
  for (const { record, where } of locations) {
    if (ids.has(record.id)) throw new FileError(path, `${where}: id ${record.id} is used twice`);
    ids.add(record.id);
  }
  const base = dirname(path);
  const modalities = await describeModalities(names, declared ?? {}, locations, base, path);
  checkSources(locations, modalities, path);
  const resolved = Object.fromEntries(modalities.map((m) => [m.name, { bands: m.bands, size: m.size }]));
  return new ManifestDataset(path, { ...checked, modalities: resolved }, modalities, locations);
}
