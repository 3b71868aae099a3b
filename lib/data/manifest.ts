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
 * the first location's file) and their grid the first location's largest raster. A modality may take some bands of
 * a multi-band file (`select`: 1-based numbers or GDAL band descriptions), e.g. four bands of a 13-band Sentinel-2
 * stack. Opening reads every file's header (not its pixels): band counts and selections are checked there, naming
 * the location and the file, and files of another size than their modality's grid are reported once (a
 * MMSSL_RESAMPLED warning); they are resampled when read (bilinear, antialiased when shrinking). Nodata and NaN
 * follow `invalid`.
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
import { decodeGeoTiff, type GeoTiffHeader, readGeoTiffHeader } from './formats/geotiff.js';
import { handleInvalid, INVALID_POLICIES, type InvalidPolicy, resized } from './pixels.js';

export interface ManifestModality {
  /** Band names in channel order: for per-band files, the order they are stacked in. */
  bands?: string[];
  /**
   * The bands a multi-band file gives the modality, in channel order: 1-based band numbers, or band descriptions as
   * GDAL stores them (e.g. 'B04'). Default: every band. The names default to the descriptions (`band<N>` for numbers).
   */
  select?: (number | string)[];
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
  /**
   * Read every file's header when opening (default true): band counts and selections checked before any epoch,
   * resampling reported once. False leaves each check to the file's first read (for manifests too large to scan).
   */
  checkFiles?: boolean;
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
const OPTION_NAMES = ['modalities', 'splits', 'invalid', 'unknownLabels', 'checkFiles'] as const;
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

/** A modality as the manifest reads it: its bands may be a selection of a multi-band file's. */
interface Modality extends ModalityInfo {
  select?: (number | string)[];
}

/** One file of a modality's source: a multi-band file, or one band's. */
interface Part {
  file: string;
  bands: string[];
  perBand: boolean;
}

const partsOf = (source: Source, m: Modality, base: string): Part[] =>
  typeof source === 'string'
    ? [{ file: resolvePath(base, source), bands: m.bands, perBand: false }]
    : m.bands.map((band) => ({ file: resolvePath(base, source[band]), bands: [band], perBand: true }));

/** The file's bands (0-based) the modality takes from it; a FileError naming the location and file otherwise. */
function bandsFrom(m: Modality, part: Part, file: Pick<GeoTiffHeader, 'bands' | 'descriptions'>, where: string) {
  if (part.perBand || !m.select) {
    if (file.bands !== part.bands.length)
      throw new FileError(
        part.file,
        `${where}: ${file.bands} bands, expected ${part.bands.length} (${part.bands.join(', ')}) for ${m.name}${part.perBand ? '' : "; to take some of them, declare the modality's select"}`,
      );
    return part.bands.map((_, b) => b);
  }
  return m.select.map((wanted) => {
    const index = typeof wanted === 'number' ? wanted - 1 : file.descriptions.indexOf(wanted);
    if (index >= 0 && index < file.bands) return index;
    const named = file.descriptions.map((d, b) => `${b + 1}: ${d ?? '(none)'}`).join(', ');
    throw new FileError(
      part.file,
      typeof wanted === 'number'
        ? `${where}: ${m.name} selects band ${wanted}, but the file has ${file.bands} bands`
        : `${where}: ${m.name} selects band '${wanted}', which no band's description names (the file's: ${named})`,
    );
  });
}

/** The raster's bands at `indices`, in that order (the raster itself when that is all of them, in order). */
function pickBands(raster: Raster, indices: number[]): Raster {
  if (indices.length === raster.shape[0] && indices.every((b, i) => b === i)) return raster;
  const [, height, width] = raster.shape,
    plane = height * width,
    data = new Float32Array(indices.length * plane);
  indices.forEach((b, i) => data.set(raster.data.subarray(b * plane, (b + 1) * plane), i * plane));
  return { shape: [indices.length, height, width], data };
}

/** A modality's files, each decoded, its bands taken, checked for invalid pixels, resampled, then stacked. */
async function readSource(source: Source, m: Modality, base: string, invalid: InvalidPolicy, where: string) {
  const [height, width] = m.size;
  const rasters = await Promise.all(
    partsOf(source, m, base).map(async (part) => {
      const decoded = await readTiff(part.file);
      const raster = pickBands(decoded, bandsFrom(m, part, { bands: decoded.shape[0], ...decoded }, where));
      handleInvalid(raster, part.bands, part.file, invalid);
      return raster.shape[1] === height && raster.shape[2] === width ? raster : resized(raster, m.size);
    }),
  );
  if (rasters.length === 1) return rasters[0];
  const plane = height * width,
    data = new Float32Array(rasters.length * plane);
  rasters.forEach((r, b) => data.set(r.data, b * plane));
  return { shape: [rasters.length, height, width], data } as Raster;
}

/** Band names, selection and grid of each modality: as declared, else from the first location that has it. */
async function describeModalities(
  names: readonly string[],
  declared: Record<string, ManifestModality>,
  locations: readonly Location[],
  base: string,
  path: string,
): Promise<Modality[]> {
  return Promise.all(
    names.map(async (name) => {
      const { bands, select, size } = declared[name] ?? {};
      const chosen = select && { select: [...select] };
      const named = bands ?? select?.map((b) => (typeof b === 'number' ? `band${b}` : b));
      const first = locations.find((l) => l.sources[name] !== undefined)?.sources[name];
      if (first === undefined && (!named || !size))
        throw new FileError(path, `no location lists a file for ${name}, so its bands and size must be declared`);
      if (named && size) return { name, bands: [...named], size: [...size] as [number, number], ...chosen };
      const files = typeof first === 'string' ? [first] : Object.values(first!);
      const headers = await Promise.all(files.map((f) => readGeoTiffHeader(resolvePath(base, f))));
      const largest = headers.reduce((a, h) => (h.height * h.width > a.height * a.width ? h : a));
      return {
        name,
        bands: named
          ? [...named]
          : typeof first === 'string'
            ? Array.from({ length: headers[0].bands }, (_, b) => `band${b + 1}`)
            : Object.keys(first!),
        size: size ? ([...size] as [number, number]) : [largest.height, largest.width],
        ...chosen,
      };
    }),
  );
}

/**
 * Every listed file's header, read (16 at a time): its bands checked against its modality (a file that does not
 * read is left to its first read), and the files whose size is not their modality's grid reported in one warning,
 * by modality and size.
 */
async function checkFiles(locations: readonly Location[], modalities: readonly Modality[], base: string, path: string) {
  const jobs = locations.flatMap(({ sources, where }) =>
    modalities.flatMap((m) => {
      const source = sources[m.name];
      return source === undefined ? [] : partsOf(source, m, base).map((part) => ({ m, part, where }));
    }),
  );
  const resampled = new Map<string, { count: number; example: string }>();
  const failures: FileError[] = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = next++;
      const { m, part, where } = jobs[job];
      // A missing or damaged file is a bad sample, for the reader's onBadSample to raise or skip when it is read.
      const header = await readGeoTiffHeader(part.file).catch(() => undefined);
      if (!header) continue;
      try {
        bandsFrom(m, part, header, where);
      } catch (e) {
        failures[job] = e as FileError;
      }
      if (header.height === m.size[0] && header.width === m.size[1]) continue;
      const key = `${m.name} from ${header.height}x${header.width} to ${m.size.join('x')}`;
      const entry = resampled.get(key) ?? { count: 0, example: part.file };
      resampled.set(key, { ...entry, count: entry.count + 1 });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const first = failures.find(Boolean); // the first in the manifest's order, whichever read finished first
  if (first) throw first;
  if (resampled.size > 0) {
    const lines = [...resampled].map(([key, { count, example }]) => `${key}: ${count} file(s), e.g. ${example}`);
    process.emitWarning(`${path}: files resampled to their modality's grid when read:\n  ${lines.join('\n  ')}`, {
      code: 'MMSSL_RESAMPLED',
    });
  }
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
      m.select !== undefined &&
      (!Array.isArray(m.select) ||
        m.select.length === 0 ||
        !m.select.every((b) => (Number.isInteger(b) && (b as number) > 0) || (typeof b === 'string' && b !== '')))
    ) {
      throw invalidArg(
        op,
        `${where}.${name}.select`,
        'a non-empty array of 1-based band numbers or descriptions',
        m.select,
      );
    }
    if (Array.isArray(m.select) && Array.isArray(m.bands) && m.select.length !== m.bands.length)
      throw invalidArg(op, `${where}.${name}.bands`, `${m.select.length} names, one per selected band`, m.bands);
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
function checkSources(locations: readonly Location[], modalities: readonly Modality[], path: string): void {
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
    readonly modalities: readonly Modality[],
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
    const invalid = (this.spec.options as ManifestOptions).invalid ?? 'raise';
    return readSource(source, info, dirname(this.path), invalid, `${where} (sample ${record.id})`);
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
  const { splits = SPLITS, invalid = 'raise', unknownLabels = 'raise', checkFiles: scan = true } = checked;
  if (!Array.isArray(splits) || splits.length === 0)
    throw invalidArg(op, 'splits', `a non-empty array of ${SPLITS.join(', ')}`, splits);
  splits.forEach((s) => checkOneOf(op, 'splits', s, SPLITS));
  checkOneOf(op, 'invalid', invalid, INVALID_POLICIES);
  checkOneOf(op, 'unknownLabels', unknownLabels, UNKNOWN_LABELS);
  if (typeof scan !== 'boolean') throw invalidArg(op, 'checkFiles', 'a boolean', scan);
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
  if (scan) await checkFiles(locations, modalities, base, path);
  const resolved = Object.fromEntries(modalities.map(({ name, ...m }) => [name, m]));
  // Workers reopen it from the spec: the files were checked here.
  return new ManifestDataset(path, { ...checked, modalities: resolved, checkFiles: false }, modalities, locations);
}
