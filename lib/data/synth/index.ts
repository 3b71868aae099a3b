/**
 * `synthesize`: a synthetic dataset in METER-ML's release layout (or as GeoTIFFs with a manifest), so everything runs
 * offline. Each location has one
 * facility type (a few are multi-class, `CAFOs-Landfills`), or none (Negative), drawn in every modality at the same
 * place (lib/data/synth/scene.ts). Splits follow the release's proportions with every type in every split. A few
 * samples are deliberately broken, as the release's are (a missing Sentinel-1 file, NaN or nodata in Sentinel-2), and
 * listed in `synth_report.json`. The dataset is written into a temporary folder renamed into place at the end: an
 * interrupted run leaves no partial dataset under the requested name.
 */
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { checkBool, checkInt, checkOneOf, checkOptions, FileError, invalidArg, isObject } from '../../errors.js';
import { CLASSES, type ClassName, NEGATIVE, type Split } from '../dataset.js';
import { encodeGeoTiff } from '../formats/geotiff.js';
import { encodeNpy } from '../formats/npy.js';
import { encodePng } from '../formats/png.js';
import { Random } from '../random.js';
import { renderNaip, renderSentinel1, renderSentinel2, sampleScene } from './scene.js';

export type SynthFormat = 'meterml' | 'geotiff';
export const SYNTH_FORMATS: readonly SynthFormat[] = ['meterml', 'geotiff'];

export interface SynthOptions {
  /** The dataset's folder; it must not exist, or be empty. */
  out: string;
  /**
   * 'meterml' (default): METER-ML's release layout (naip.png, sentinel-1.npy, sentinel-2-10m.npy, split geojson files);
   * 'geotiff': GeoTIFFs (S2 one file per band) and a manifest.geojson (lib/data/manifest.ts).
   */
  format?: SynthFormat;
  /** Locations per type (the six classes and Negative), at least 3 so every split holds each. */
  perClass: number;
  seed?: number;
  /** Write a few broken samples (default true). */
  defects?: boolean;
  /**
   * Share of each type's locations in val and test (default the release's, about 0.6% and 1.2%; at least one each,
   * at least one left for train). Larger shares make evaluation on a small synthetic set less noisy.
   */
  holdout?: { val: number; test: number };
  /** Called after each location with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface SynthReport {
  out: string;
  seed: number;
  format: SynthFormat;
  locations: number;
  splits: Record<Split, number>;
  /** The broken samples: their Image_Folder and what is wrong. */
  defects: { folder: string; file: string; problem: string }[];
}

interface Location {
  index: number;
  type: string;
  classes: ClassName[];
  split: Split;
  latitude: number;
  longitude: number;
}

const TYPES = [...CLASSES, NEGATIVE] as const;

/** The release's proportions: 515 val and 1,018 test of 86,598. */
export const RELEASE_HOLDOUT = { val: 0.006, test: 0.012 };

/** Locations per type in val and test: the shares, at least one each. */
function holdoutCounts(perClass: number, holdout: { val: number; test: number }): { val: number; test: number } {
  return {
    val: Math.max(1, Math.round(holdout.val * perClass)),
    test: Math.max(1, Math.round(holdout.test * perClass)),
  };
}

/** Per type: the first locations go to val, the next to test, the rest to train. */
function splitOf(k: number, { val, test }: { val: number; test: number }): Split {
  return k < val ? 'val' : k < val + test ? 'test' : 'train';
}

function locations(perClass: number, seed: number, counts: { val: number; test: number }): Location[] {
  return TYPES.flatMap((type, t) =>
    Array.from({ length: perClass }, (_, k) => {
      const index = t * perClass + k;
      const random = new Random(seed).fork(1_000_000 + index);
      // every fifth CAFO site also holds a landfill: METER-ML's multi-class sites
      const classes: ClassName[] =
        type === NEGATIVE ? [] : type === 'CAFOs' && k % 5 === 4 ? ['CAFOs', 'Landfills'] : [type];
      return {
        index,
        type: classes.length > 1 ? classes.join('-') : type,
        classes,
        split: splitOf(k, counts),
        latitude: random.uniform(30, 48),
        longitude: random.uniform(-120, -75),
      };
    }),
  );
}

const folderName = (l: Location) => `${l.latitude.toFixed(7)}_${l.longitude.toFixed(7)}`;

type Defect = 'missing-s1' | 'invalid-s2';

/** A layout: where a location's files go, how they are written, and the index files naming them. */
interface Layout {
  /** The location's folder relative to the root. */
  folder(l: Location): string;
  /** The location's files (name in the folder, bytes), its defects applied. */
  files(l: Location, rendered: Rendered, defects: readonly Defect[]): [string, Uint8Array][];
  /** The index files (name at the root, text). */
  index(all: Location[]): [string, string][];
  /** The broken file of a defect, and what is wrong with it. */
  defect: Record<Defect, { file: string; problem: string }>;
}

interface Rendered {
  naip: Uint8Array;
  s2: Uint16Array;
  s1: Uint16Array;
}

function render(l: Location, seed: number): Rendered {
  const random = new Random(seed).fork(l.index);
  const scene = sampleScene(random.fork(0), l.classes);
  return {
    naip: renderNaip(scene, random.fork(1)),
    s2: renderSentinel2(scene, random.fork(2)),
    s1: renderSentinel1(scene, random.fork(3)),
  };
}

/** METER-ML as released: train folders one level deeper (train_images_N) than the Image_Folder the geojson names. */
const METERML: Layout = {
  folder: (l) =>
    l.split === 'train'
      ? `train_images/train_images_${1 + (l.index % 3)}/${folderName(l)}`
      : `${l.split}_images/${folderName(l)}`,
  files: (_, { naip, s2, s1 }, defects) => [
    ['naip.png', encodePng({ width: 720, height: 720, channels: 4, data: naip })],
    [
      'sentinel-2-10m.npy',
      defects.includes('invalid-s2')
        ? encodeNpy({
            dtype: 'float32',
            shape: [72, 72, 4],
            data: Float32Array.from(s2, (v, i) => (i % 97 === 0 ? Number.NaN : v)),
          })
        : encodeNpy({ dtype: 'uint16', shape: [72, 72, 4], data: s2 }),
    ],
    ...(defects.includes('missing-s1')
      ? []
      : [['sentinel-1.npy', encodeNpy({ dtype: 'uint16', shape: [72, 72, 2], data: s1 })] as [string, Uint8Array]]),
  ],
  index: (all) =>
    (['train', 'val', 'test'] as const).map((split) => [
      `${split}_dataset.geojson`,
      featureCollection(
        all
          .filter((l) => l.split === split)
          .map((l) => ({
            geometry: point(l),
            properties: {
              Latitude: l.latitude,
              Longitude: l.longitude,
              Type: l.type,
              Source: 'mmssl synth',
              Image_Folder: `${l.split}_images/${folderName(l)}`,
            },
          })),
      ),
    ]),
  defect: {
    'missing-s1': { file: 'sentinel-1.npy', problem: 'missing' },
    'invalid-s2': { file: 'sentinel-2-10m.npy', problem: 'float32 with NaN pixels' },
  },
};

/** Sentinel-2's 10 m bands in the channel order of METER-ML's files (R, G, B, NIR), one GeoTIFF each, as BigEarthNet. */
const S2_BANDS = ['B04', 'B03', 'B02', 'B08'];
const S2_NODATA = 0;

/** Band `b` of interleaved samples, as Sentinel-2 files hold it: nodata (0) only where marked. */
function s2Band(s2: Uint16Array, b: number, broken: boolean): Uint16Array {
  return Uint16Array.from({ length: 72 * 72 }, (_, p) =>
    broken && p % 97 === 0 ? S2_NODATA : Math.max(1, s2[p * 4 + b]),
  );
}

/** A GeoTIFF manifest (lib/data/manifest.ts): images/<split>/<name>/ with one file per modality, per band for S2. */
const GEOTIFF: Layout = {
  folder: (l) => `images/${l.split}/${folderName(l)}`,
  files: (l, { naip, s2, s1 }, defects) => {
    const at = (pixelSize: number) => ({ origin: [l.longitude, l.latitude] as [number, number], pixelSize });
    return [
      ['naip.tif', encodeGeoTiff({ width: 720, height: 720, bands: 4, data: naip, ...at(1e-5) })],
      ...S2_BANDS.map(
        (band, b) =>
          [
            `s2_${band}.tif`,
            encodeGeoTiff({
              width: 72,
              height: 72,
              bands: 1,
              data: s2Band(s2, b, defects.includes('invalid-s2') && band === 'B02'),
              nodata: S2_NODATA,
              ...at(1e-4),
            }),
          ] as [string, Uint8Array],
      ),
      ...(defects.includes('missing-s1')
        ? []
        : [
            ['s1.tif', encodeGeoTiff({ width: 72, height: 72, bands: 2, data: s1, ...at(1e-4) })] as [
              string,
              Uint8Array,
            ],
          ]),
    ];
  },
  index: (all) => [
    [
      'manifest.geojson',
      featureCollection(
        all.map((l) => {
          const folder = GEOTIFF.folder(l);
          return {
            geometry: point(l),
            properties: {
              id: folder,
              split: l.split,
              label: l.type,
              s1: `${folder}/s1.tif`,
              naip: `${folder}/naip.tif`,
              s2: Object.fromEntries(S2_BANDS.map((band) => [band, `${folder}/s2_${band}.tif`])),
            },
          };
        }),
        {
          modalities: {
            s1: { bands: ['VV', 'VH'], size: [72, 72] },
            s2: { bands: S2_BANDS, size: [72, 72] },
            naip: { bands: ['R', 'G', 'B', 'NIR'], size: [720, 720] },
          },
        },
      ),
    ],
  ],
  defect: {
    'missing-s1': { file: 's1.tif', problem: 'missing' },
    'invalid-s2': { file: 's2_B02.tif', problem: 'nodata pixels' },
  },
};

const LAYOUTS: Record<SynthFormat, Layout> = { meterml: METERML, geotiff: GEOTIFF };

const point = (l: Location) => ({ type: 'Point', coordinates: [l.longitude, l.latitude] });
function featureCollection(
  features: { geometry: unknown; properties: unknown }[],
  members: Record<string, unknown> = {},
): string {
  return `${JSON.stringify({ type: 'FeatureCollection', ...members, features: features.map((f) => ({ type: 'Feature', ...f })) })}\n`;
}

async function checkTarget(out: string): Promise<void> {
  const existing = await stat(out).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new FileError(out, 'exists and is not a folder');
  if (existing && (await readdir(out)).length > 0)
    throw new FileError(out, 'exists and is not empty: synth writes a new dataset');
}

/** Writes the dataset and returns its report (also written as synth_report.json). */
export async function synthesize(options: SynthOptions): Promise<SynthReport> {
  const {
    out,
    perClass,
    seed = 0,
    format = 'meterml',
    defects = true,
    holdout = RELEASE_HOLDOUT,
    onProgress,
  } = checkOptions('synthesize', options);
  if (typeof out !== 'string' || out === '') throw invalidArg('synthesize', 'out', 'a folder path', out);
  if (checkInt('synthesize', 'perClass', perClass) < 3)
    throw invalidArg('synthesize', 'perClass', 'an integer >= 3 (one location per split at least)', perClass);
  checkInt('synthesize', 'seed', seed);
  checkOneOf('synthesize', 'format', format, SYNTH_FORMATS);
  checkBool('synthesize', 'defects', defects);
  if (!isObject(holdout) || !(holdout.val >= 0) || !(holdout.test >= 0) || !(holdout.val + holdout.test < 1)) {
    throw invalidArg('synthesize', 'holdout', '{val, test}: shares >= 0 summing to less than 1', holdout);
  }
  const counts = holdoutCounts(perClass, holdout);
  if (counts.val + counts.test >= perClass)
    throw invalidArg(
      'synthesize',
      'holdout',
      `shares that leave training locations out of ${perClass} per type`,
      holdout,
    );
  await checkTarget(out);
  const layout = LAYOUTS[format],
    all = locations(perClass, seed, counts);
  const train = all.filter((l) => l.split === 'train');
  // The last two Negative training sites are the broken ones (the same one when it is the only one, at perClass 3).
  const negatives = train.filter((l) => l.type === NEGATIVE);
  const broken: [number, Defect][] = defects
    ? [
        [negatives[negatives.length - 1].index, 'missing-s1'],
        [negatives[Math.max(0, negatives.length - 2)].index, 'invalid-s2'],
      ]
    : [];
  const defectsOf = (l: Location) => broken.flatMap(([index, defect]) => (index === l.index ? [defect] : []));
  const target = resolve(out); // 'dir/' would put the temporary folder inside the target
  const partial = `${target}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  try {
    let done = 0;
    for (const l of all) {
      const dir = join(partial, layout.folder(l));
      await mkdir(dir, { recursive: true });
      await Promise.all(
        layout.files(l, render(l, seed), defectsOf(l)).map(([name, bytes]) => writeFile(join(dir, name), bytes)),
      );
      onProgress?.(++done, all.length);
    }
    for (const [name, text] of layout.index(all)) await writeFile(join(partial, name), text);
    const report: SynthReport = {
      out,
      seed,
      format,
      locations: all.length,
      splits: {
        train: train.length,
        val: all.filter((l) => l.split === 'val').length,
        test: all.filter((l) => l.split === 'test').length,
      },
      defects: broken.map(([index, defect]) => ({ folder: layout.folder(all[index]), ...layout.defect[defect] })),
    };
    await writeFile(join(partial, 'synth_report.json'), `${JSON.stringify(report, null, 1)}\n`);
    await rm(target, { recursive: true, force: true }); // (empty, checked above)
    await rename(partial, target);
    return report;
  } catch (e) {
    await rm(partial, { recursive: true, force: true });
    throw e;
  }
}
