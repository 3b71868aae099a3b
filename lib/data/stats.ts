/**
 * Per-band normalisation statistics (mean and standard deviation over every pixel of the training split), computed
 * once in the data workers and cached; checkpoints store them with the weights later. Datasets are read-only to
 * mmssl (a shared METER-ML on a cluster usually is): a cache file beside the dataset is read when present, never
 * written; computed statistics go to the user cache directory and the run folder.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { dirname, join } from 'node:path';

import { checkOneOf, checkOptions, FileError, invalidArg } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic.js';
import type { Dataset, Raster, SkippedSample, Split } from './dataset.js';
import { allInOrder, WorkerPool } from '../workers/pool.js';
import type { ReadRequest } from './worker.js';
import { Random } from './random.js';
import { tensor } from '../torch/creation.js';
import type { Tensor } from '../torch/tensor.js';

export interface BandStats {
  mean: number[];
  std: number[];
}

/** Per modality. */
export type NormalizationStats = Record<string, BandStats>;

/** A batch [N, bands, H, W] standardised band by band: (x - mean) / std, on x's device. */
export function standardize(x: Tensor, { mean, std }: BandStats): Tensor {
  const shape = [mean.length, 1, 1],
    device = x.device;
  return x.sub(tensor(mean, { device }).reshape(shape)).div_(tensor(std, { device }).reshape(shape));
}

export interface BandStatsOptions {
  modalities: readonly string[];
  /** Default ['train']. */
  splits?: readonly Split[];
  /** Use a seeded random subset of this many samples (default: all). */
  maxSamples?: number;
  seed?: number;
  workers?: number;
  /** A sample that cannot be read: 'raise' (default) stops with its FileError; 'skip' leaves it out (see onSkip). */
  onBadSample?: 'raise' | 'skip';
  /** Told of each sample left out under 'skip' (a cached result tells those its computation left out). */
  onSkip?: (sample: SkippedSample) => void;
  /** Called after each sample with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Running count, mean and sum of squared deviations per band, merged with Chan et al.'s formula (float64). */
export class Moments {
  n = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(bands: number) {
    this.mean = new Float64Array(bands);
    this.m2 = new Float64Array(bands);
  }

  add({ shape: [bands, h, w], data }: Raster): void {
    const count = h * w;
    for (let b = 0; b < bands; b++) {
      const plane = data.subarray(b * count, (b + 1) * count);
      let sum = 0;
      for (let i = 0; i < count; i++) sum += plane[i];
      const mean = sum / count;
      let m2 = 0;
      for (let i = 0; i < count; i++) m2 += (plane[i] - mean) ** 2;
      this.#merge(b, count, mean, m2);
    }
    this.n += count;
  }

  /** Adds another set of moments over the same bands (another shard's, another worker's). */
  merge(other: { n: number; mean: ArrayLike<number>; m2: ArrayLike<number> }): void {
    for (let b = 0; b < this.mean.length; b++) this.#merge(b, other.n, other.mean[b], other.m2[b]);
    this.n += other.n;
  }

  #merge(b: number, count: number, mean: number, m2: number): void {
    if (count === 0) return;
    const delta = mean - this.mean[b],
      total = this.n + count;
    this.mean[b] += (delta * count) / total;
    this.m2[b] += m2 + (delta * delta * this.n * count) / total;
  }

  toJSON(): { n: number; mean: number[]; m2: number[] } {
    return { n: this.n, mean: Array.from(this.mean), m2: Array.from(this.m2) };
  }

  stats(): BandStats {
    return { mean: Array.from(this.mean), std: Array.from(this.m2, (m2) => Math.sqrt(m2 / this.n)) };
  }
}

function chosenSamples(
  dataset: Dataset,
  splits: readonly Split[],
  maxSamples: number | undefined,
  seed: number,
): number[] {
  const all = dataset.samples.flatMap((s, i) => (splits.includes(s.split) ? [i] : []));
  if (all.length === 0) throw invalidArg('computeBandStats', 'splits', 'splits holding samples', splits);
  return maxSamples === undefined || maxSamples >= all.length
    ? all
    : new Random(seed)
        .shuffle(all)
        .slice(0, maxSamples)
        .sort((a, b) => a - b);
}

/** Mean and population standard deviation of every band of every chosen modality. */
export async function computeBandStats(dataset: Dataset, options: BandStatsOptions): Promise<NormalizationStats> {
  const {
    modalities,
    splits = ['train'],
    maxSamples,
    seed = 0,
    workers = Math.min(4, availableParallelism()),
    onBadSample = 'raise',
    onSkip,
    onProgress,
  } = checkOptions('computeBandStats', options);
  checkOneOf('computeBandStats', 'onBadSample', onBadSample, ['raise', 'skip']);
  const infos = modalities.map(
    (name) =>
      dataset.modalities.find((m) => m.name === name) ??
      (() => {
        throw invalidArg(
          'computeBandStats',
          'modalities',
          `names among ${dataset.modalities.map((m) => m.name).join(', ')}`,
          name,
        );
      })(),
  );
  const indices = chosenSamples(dataset, splits, maxSamples, seed);
  const moments = infos.map((m) => new Moments(m.bands.length));
  await using pool = new WorkerPool<ReadRequest, Raster>(
    new URL('./worker.js', import.meta.url),
    workers,
    dataset.spec,
  );
  let done = 0;
  await Promise.all(
    indices.map(async (index) => {
      const rasters = await allInOrder(infos.map((m) => pool.run({ index, modality: m.name }))).catch((e: unknown) => {
        if (onBadSample === 'raise') throw e;
        onSkip?.({ id: dataset.samples[index].id, file: (e as { path?: string }).path, message: (e as Error).message });
        return undefined;
      });
      rasters?.forEach((r, k) => moments[k].add(r));
      onProgress?.(++done, indices.length);
    }),
  );
  return Object.fromEntries(infos.map((m, k) => [m.name, moments[k].stats()]));
}

/** Where a dataset's own statistics file would be: beside METER-ML's geojson files, or beside a manifest (read only). */
export function bandStatsCachePath(dataset: Dataset): string {
  return dataset.spec.kind !== 'manifest'
    ? join(dataset.spec.root, 'mmssl-band-stats.json')
    : join(dirname(dataset.spec.path), 'mmssl-band-stats.json');
}

/** mmssl's cache directory: $MMSSL_CACHE_DIR, else $XDG_CACHE_HOME/mmssl, else ~/.cache/mmssl. */
export function userCacheDir(): string {
  return process.env.MMSSL_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'mmssl');
}

/** What a statistics file holds: the computation it answers (dataset, modalities, splits, subset), its result. */
interface BandStatsFile {
  key: string;
  stats: NormalizationStats;
  skipped: SkippedSample[];
}

function cacheKey(dataset: Dataset, options: BandStatsOptions): string {
  const { modalities, splits = ['train'], maxSamples = null, seed = 0, onBadSample = 'raise' } = options;
  return JSON.stringify({
    spec: dataset.spec,
    modalities,
    splits,
    samples: dataset.samples.length,
    maxSamples,
    seed,
    onBadSample,
  });
}

const userCachePath = (key: string) =>
  join(userCacheDir(), `band-stats-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.json`);

async function readCached(path: string, key: string): Promise<BandStatsFile | undefined> {
  const file = await readFile(path, 'utf8')
    .then((text) => JSON.parse(text) as BandStatsFile)
    .catch(() => undefined);
  return file?.key === key ? file : undefined;
}

/**
 * Writes statistics computed with `options` as a file that `loadOrComputeBandStats` reads back (`lookIn`): a run
 * folder's copy, atomically.
 */
export async function writeBandStats(
  path: string,
  dataset: Dataset,
  options: BandStatsOptions,
  stats: NormalizationStats,
  skipped: readonly SkippedSample[],
): Promise<void> {
  await writeJsonAtomic(path, {
    key: cacheKey(dataset, options),
    stats,
    skipped: [...skipped],
  } satisfies BandStatsFile);
}

/** Equal up to the summation order's rounding (a pack made again with another shard size merges in another order). */
function sameStats(a: BandStats | undefined, b: BandStats): boolean {
  const close = (x: readonly number[], y: readonly number[]) =>
    x.length === y.length && x.every((v, i) => Math.abs(v - y[i]) <= 1e-9 * Math.max(1, Math.abs(y[i])));
  return a !== undefined && close(a.mean, b.mean) && close(a.std, b.std);
}

/**
 * A run that standardised with other statistics (its own file in `lookIn`, from a run started on the source data or
 * on another pack) cannot continue on a pack's: the inputs would change under the model.
 */
async function refuseOtherStats(lookIn: readonly string[], stats: NormalizationStats): Promise<void> {
  for (const path of lookIn) {
    const file = await readFile(path, 'utf8')
      .then((text) => JSON.parse(text) as BandStatsFile)
      .catch(() => undefined);
    const differ = Object.keys(stats).filter((m) => !sameStats(file?.stats?.[m], stats[m]));
    if (file && differ.length > 0)
      throw new FileError(
        path,
        `the run standardised ${differ.join(', ')} with other statistics than the pack's (it was started on other data): resume it on that data, or start a new run on the pack`,
      );
  }
}

/**
 * The statistics for the same dataset description, modalities, splits, sample count and subset, from the first file
 * that holds them: the `lookIn` files (a run folder's), the dataset's own (`bandStatsCachePath`), the user cache;
 * otherwise computed and kept in the user cache (best effort: an unwritable cache costs a recomputation later, never
 * the run). The dataset's folder is never written. A dataset that carries its statistics (a pack) gives those.
 */
export async function loadOrComputeBandStats(
  dataset: Dataset,
  options: BandStatsOptions & { lookIn?: readonly string[] },
): Promise<NormalizationStats> {
  const { lookIn = [], ...rest } = options;
  const carried = dataset.stats;
  if (carried && rest.modalities.every((m) => carried[m])) {
    const stats = Object.fromEntries(rest.modalities.map((m) => [m, carried[m]]));
    await refuseOtherStats(lookIn, stats);
    return stats;
  }
  const key = cacheKey(dataset, rest);
  for (const path of [...lookIn, bandStatsCachePath(dataset), userCachePath(key)]) {
    const cached = await readCached(path, key);
    if (cached) {
      (cached.skipped ?? []).forEach((s) => rest.onSkip?.(s)); // (files written before skips were kept hold none)
      return cached.stats;
    }
  }
  const skipped: SkippedSample[] = [];
  const stats = await computeBandStats(dataset, {
    ...rest,
    onSkip: (s) => {
      skipped.push(s);
      rest.onSkip?.(s);
    },
  });
  await writeBandStats(userCachePath(key), dataset, rest, stats, skipped).catch(() => undefined);
  return stats;
}
