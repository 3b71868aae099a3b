/**
 * The loader: batches of locations, each holding every chosen modality as float tensors [B, C, H, W] (standardised
 * per band, resized to the modality's size, augmented per view), with location ids, labels and the Negative mask.
 * Files are read, decoded and resized in a pool of worker threads; up to `prefetch` batches are in flight while a step runs;
 * the order and the augmentations depend only on the seed and the epoch, never on thread timing.
 */
import { availableParallelism } from 'node:os';

import { checkBool, checkInt, checkOneOf, checkOptions, FileError, invalidArg, WorkerExitError } from '../errors.js';
import { interpolate } from '../nn/functional.js';
import { noGrad } from '../torch/autograd.js';
import { cat, fromBuffer, tensor } from '../torch/creation.js';
import { cuda, type Device } from '../torch/device.js';
import { tidy } from '../torch/scope.js';
import type { MemoryFormat, Tensor } from '../torch/tensor.js';
import { applyTransforms, checkAugmentation, sampleTransform, type AugmentationOptions } from './augment.js';
import {
  type Dataset,
  defaultSize,
  multiHot,
  type Raster,
  type SampleRecord,
  type SkippedSample,
  type Split,
} from './dataset.js';
import { allInOrder, WorkerPool } from '../workers/pool.js';
import { PackedDataset } from './packed/dataset.js';
import { Random } from './random.js';
import { type NormalizationStats, standardize } from './stats.js';
import type { ReadRequest } from './worker.js';

export interface ModalityOptions {
  name: string;
  /** Output [H, W] (default: the modality's native grid); shrinking is antialiased. */
  size?: readonly [number, number];
}

export interface DataLoaderOptions {
  /** The modalities to load, by name or with an output size. */
  modalities: readonly (string | ModalityOptions)[];
  batchSize: number;
  /** Which splits to draw from (default ['train']). */
  splits?: readonly Split[];
  /** Keeps only the samples of those splits for which it returns true (e.g. labelled ones, a label fraction). */
  filter?: (sample: SampleRecord, index: number) => boolean;
  /**
   * Reshuffle every epoch (default true): a full permutation. `{ shards: k }`, for a pack larger than memory: its shards
   * in a random order, the records shuffled within each run of k shards of that order, so an epoch reads k shards at a
   * time, each once (WebDataset's shard-then-buffer shuffle, with a buffer of whole shards).
   */
  shuffle?: boolean | { shards: number };
  /** Drop the last, smaller batch (default false). */
  dropLast?: boolean;
  /** Seeds the order and the augmentations (default 0). */
  seed?: number;
  /**
   * This process's share in data-parallel training, as PyTorch's DistributedSampler deals it: each epoch's order
   * padded with its first samples to a multiple of worldSize, then every worldSize-th sample from `rank`. Batch b of
   * every rank together holds the samples of batch b of one process with batchSize x worldSize, with the same
   * augmentations. Default: the whole order.
   */
  shard?: { rank: number; worldSize: number };
  /** Augment every view (default false: one untouched view per modality). */
  augmentation?: AugmentationOptions | boolean;
  /** Views per modality (default 2 with augmentation, 1 without). */
  views?: number;
  /** Per-band mean and std per modality (see computeBandStats); default: none. */
  normalization?: NormalizationStats;
  /** Decoding threads (default: the cores available, at most 4). */
  workers?: number;
  /** Batches read ahead (default 2). */
  prefetch?: number;
  /** Where batches go (default 'cpu'); host memory is pinned for CUDA. */
  device?: Device;
  /** A sample that cannot be read: 'raise' (default) stops with a FileError; 'skip' leaves it out and counts it. */
  onBadSample?: 'raise' | 'skip';
}

export interface Batch {
  /** Per modality, one tensor [B, C, H, W] per view. */
  views: Record<string, Tensor[]>;
  /** Each location's dataset index: views of one location share it (InfoNCE's groups). int64 [B]. */
  locations: Tensor;
  /** Single-label targets (index in CLASSES, -1 for none). int64 [B]. */
  labels: Tensor;
  /** Multi-hot targets over CLASSES. float32 [B, 6]. */
  targets: Tensor;
  /** METER-ML Negatives (never anchors). bool [B]. */
  negative: Tensor;
  /**
   * `locations`, `labels` and `negative` as host arrays, for code that must not read the device (the training steps:
   * each read waits for the device).
   */
  host: { locations: number[]; labels: number[]; negative: boolean[] };
  /** Sample ids, for reports. */
  ids: string[];
  /** The batch's index in its epoch (`batches(epoch)[index]`). */
  index: number;
  [Symbol.dispose](): void;
}

/** The batch's first view of each modality, in `memoryFormat`: a model's inputs where one view is used. */
export function firstViews(
  batch: Batch,
  modalities: readonly string[],
  memoryFormat: MemoryFormat,
): Record<string, Tensor> {
  return Object.fromEntries(modalities.map((m) => [m, batch.views[m][0].contiguous({ memoryFormat })]));
}

/** What `collectRows` gathered: row i of each column is the i-th sample's; dispose it (`using`). */
export interface CollectedRows extends Disposable {
  /** Each tensor `f` returned, concatenated over the batches (float32, CPU); none when no batch came. */
  columns: Tensor[];
  labels: number[];
  negative: boolean[];
}

/**
 * `f` of every batch of the loader's first epoch, without gradients (embeddings, features): each tensor it returns,
 * [B, ...], concatenated over the batches, with the samples' labels and Negative flags.
 */
export async function collectRows(loader: DataLoader, f: (batch: Batch) => Tensor[]): Promise<CollectedRows> {
  const parts: Tensor[][] = [],
    labels: number[] = [],
    negative: boolean[] = [];
  for await (const batch of loader.epoch(0)) {
    using b = batch;
    parts.push(tidy(() => noGrad(() => f(b).map((t) => t.float().cpu()))));
    labels.push(...b.host.labels);
    negative.push(...b.host.negative);
  }
  const columns =
    parts.length === 0
      ? []
      : parts[0].map((_, k) =>
          cat(
            parts.map((p) => p[k]),
            0,
          ),
        );
  parts.flat().forEach((t) => t.dispose());
  return { columns, labels, negative, [Symbol.dispose]: () => columns.forEach((c) => c.dispose()) };
}

/** A batch's samples as read, before they become tensors: `stack()` gives one host tensor per modality. */
interface ReadBatch {
  indices: number[];
  stack(): Tensor[];
  release(): void;
}

interface Resolved {
  modalities: { name: string; size: [number, number]; channels: number; native: [number, number] }[];
  views: number;
  augmentation: AugmentationOptions | false;
}

const OP = 'DataLoader';

/** Whether a modality is delivered at another size than its grid (the workers resize it, antialiased). */
const resizes = (m: Resolved['modalities'][number]) => m.size[0] !== m.native[0] || m.size[1] !== m.native[1];

function resolveModalities(dataset: Dataset, wanted: DataLoaderOptions['modalities']): Resolved['modalities'] {
  if (!Array.isArray(wanted) || wanted.length === 0)
    throw invalidArg(OP, 'modalities', 'a non-empty list of modality names', wanted);
  return wanted.map((m) => {
    const { name, size } = typeof m === 'string' ? { name: m, size: undefined } : m;
    const info = dataset.modalities.find((d) => d.name === name);
    if (!info)
      throw invalidArg(OP, 'modalities', `names among ${dataset.modalities.map((d) => d.name).join(', ')}`, name);
    if (
      size !== undefined &&
      !(Array.isArray(size) && size.length === 2 && size.every((n) => Number.isInteger(n) && n > 0))
    ) {
      throw invalidArg(OP, `modalities (${name}).size`, '[height, width] of positive integers', size);
    }
    return {
      name,
      size: [...(size ?? defaultSize(info))] as [number, number],
      channels: info.bands.length,
      native: info.size,
    };
  });
}

/**
 * A pack holds each modality at one size (read at it, or at its `outputSize` with a margin): resizing it again would
 * resample twice, so another size is refused.
 */
function checkPackedSizes(dataset: PackedDataset, modalities: Resolved['modalities']): void {
  const differ = modalities.filter((m) => {
    const output = defaultSize(dataset.modality(m.name));
    return m.size[0] !== output[0] || m.size[1] !== output[1];
  });
  if (differ.length > 0)
    throw new FileError(
      dataset.root,
      `packed ${differ.map((m) => `${m.name} at ${defaultSize(dataset.modality(m.name)).join('x')}`).join(', ')}, but ${differ.map((m) => `${m.size.join('x')}`).join(', ')} ${differ.length === 1 ? 'is' : 'are'} asked for: pack the source again with ${differ.map((m) => `--size ${m.name}=${m.size.join('x')}`).join(' ')}, or ask for the packed size`,
    );
}

export class DataLoader {
  readonly dataset: Dataset;
  /** Samples left out so far under onBadSample 'skip', in the order found, with the epoch and batch of each. */
  readonly skipped: SkippedSample[] = [];
  readonly #options: Required<
    Omit<DataLoaderOptions, 'normalization' | 'augmentation' | 'views' | 'modalities' | 'filter'>
  > & { normalization?: NormalizationStats };
  readonly #resolved: Resolved;
  readonly #indices: number[];
  #pool?: WorkerPool<ReadRequest, Raster>;
  #epoch = 0;

  constructor(dataset: Dataset, options: DataLoaderOptions) {
    const {
      modalities,
      batchSize,
      splits = ['train'],
      filter = () => true,
      shuffle = true,
      dropLast = false,
      seed = 0,
      augmentation = false,
      shard = { rank: 0, worldSize: 1 },
      views,
      normalization,
      workers = Math.min(4, availableParallelism()),
      prefetch = 2,
      device = 'cpu',
      onBadSample = 'raise',
    } = checkOptions(OP, options);
    this.dataset = dataset;
    if (checkInt(OP, 'batchSize', batchSize) < 1) throw invalidArg(OP, 'batchSize', 'a positive integer', batchSize);
    if (checkInt(OP, 'workers', workers) < 1) throw invalidArg(OP, 'workers', 'a positive integer', workers);
    if (checkInt(OP, 'prefetch', prefetch) < 1) throw invalidArg(OP, 'prefetch', 'a positive integer', prefetch);
    checkOneOf(OP, 'onBadSample', onBadSample, ['raise', 'skip']);
    const augment = augmentation === true ? {} : augmentation === false ? false : checkAugmentation(augmentation);
    const viewCount = views ?? (augment ? 2 : 1);
    if (checkInt(OP, 'views', viewCount) < 1) throw invalidArg(OP, 'views', 'a positive integer', views);
    this.#resolved = { modalities: resolveModalities(dataset, modalities), views: viewCount, augmentation: augment };
    if (dataset instanceof PackedDataset) checkPackedSizes(dataset, this.#resolved.modalities);
    for (const m of this.#resolved.modalities) {
      const stats = normalization?.[m.name];
      if (normalization && (!stats || stats.mean.length !== m.channels || stats.std.length !== m.channels)) {
        throw invalidArg(OP, `normalization.${m.name}`, `mean and std of ${m.channels} bands`, stats);
      }
    }
    this.#options = {
      batchSize,
      splits,
      shuffle: checkShuffle(dataset, shuffle),
      dropLast: checkBool(OP, 'dropLast', dropLast),
      seed,
      workers,
      prefetch,
      device,
      onBadSample,
      normalization,
      shard: checkShard(shard),
    };
    if (typeof filter !== 'function') throw invalidArg(OP, 'filter', 'a function (sample, index) => boolean', filter);
    this.#indices = dataset.samples.flatMap((s, i) => (splits.includes(s.split) && filter(s, i) ? [i] : []));
    if (this.#indices.length === 0)
      throw invalidArg(
        OP,
        'splits',
        `splits holding samples (${splits.join(', ')} hold none${options.filter ? ' that pass the filter' : ''})`,
        splits,
      );
  }

  /** Batches per epoch. */
  get length(): number {
    const n = Math.ceil(this.#indices.length / this.#options.shard.worldSize) / this.#options.batchSize;
    return this.#options.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  #workers(): WorkerPool<ReadRequest, Raster> {
    this.#pool ??= new WorkerPool(new URL('./worker.js', import.meta.url), this.#options.workers, this.dataset.spec);
    return this.#pool;
  }

  /** The dataset indices of each batch of `epoch`, in order. */
  batches(epoch: number): number[][] {
    const { batchSize, dropLast, shard } = this.#options;
    const order = shardOf(this.#order(epoch), shard);
    const out: number[][] = [];
    for (let i = 0; i < order.length; i += batchSize) out.push(order.slice(i, i + batchSize));
    return dropLast && out.length > 0 && out[out.length - 1].length < batchSize ? out.slice(0, -1) : out;
  }

  /** The epoch's order of the loader's samples, before dealing them to ranks. */
  #order(epoch: number): number[] {
    const { shuffle, seed } = this.#options;
    if (shuffle === false) return [...this.#indices];
    const random = new Random(seed).fork(epoch).fork(0);
    if (shuffle === true) return random.shuffle([...this.#indices]);
    const records = (this.dataset as PackedDataset).samples;
    const byShard = new Map<number, number[]>();
    for (const i of this.#indices) {
      const members = byShard.get(records[i].shard);
      if (members) members.push(i);
      else byShard.set(records[i].shard, [i]);
    }
    const shards = random.shuffle([...byShard.keys()].sort((a, b) => a - b));
    const order: number[] = [];
    for (let g = 0; g < shards.length; g += shuffle.shards)
      order.push(...random.shuffle(shards.slice(g, g + shuffle.shards).flatMap((k) => byShard.get(k)!)));
    return order;
  }

  /** Every modality of every sample of a batch, read by the workers (or from a pack); failed samples raise or are skipped. */
  async #read(indices: number[], epoch: number, batch: number): Promise<ReadBatch> {
    if (this.dataset instanceof PackedDataset) return this.#readPacked(this.dataset, indices, epoch, batch);
    const pool = this.#workers();
    const samples = await Promise.allSettled(
      indices.map(async (index) => ({
        index,
        rasters: await allInOrder(
          this.#resolved.modalities.map((m) =>
            pool
              .run({ index, modality: m.name, size: resizes(m) ? m.size : undefined })
              .catch((e: unknown) => Promise.reject(sampleError(e, `${this.dataset.samples[index].id} (${m.name})`))),
          ),
        ),
      })),
    );
    const good = samples.flatMap((result, i) => {
      if (result.status === 'fulfilled' && this.#shapesFit(result.value.rasters)) return [result.value];
      const error = (
        result.status === 'rejected' ? result.reason : this.#shapeError(indices[i], result.value.rasters)
      ) as Error & { path?: string };
      this.#badSample(indices[i], error, epoch, batch);
      return [];
    });
    return {
      indices: good.map((s) => s.index),
      stack: () =>
        this.#resolved.modalities.map((m, k) =>
          this.#stack(
            m,
            good.map((s) => s.rasters[k]),
          ),
        ),
      release: () => undefined,
    };
  }

  /** A batch's records from a pack, read into one buffer and decoded per modality (no worker, no decoding). */
  async #readPacked(dataset: PackedDataset, indices: number[], epoch: number, batch: number): Promise<ReadBatch> {
    const records = await dataset.readRecords(indices);
    try {
      records.failed.forEach(({ index, error }) => this.#badSample(index, error, epoch, batch));
    } catch (e) {
      records.bytes.dispose();
      throw e;
    }
    return {
      indices: records.indices,
      stack: () => this.#resolved.modalities.map((m) => dataset.decode(records.bytes, m.name)),
      release: () => records.bytes.dispose(),
    };
  }

  /** A sample that could not be read: raised, or skipped and recorded, as onBadSample says. */
  #badSample(index: number, error: Error & { path?: string }, epoch: number, batch: number): void {
    if (this.#options.onBadSample === 'raise') throw error;
    this.skipped.push({ id: this.dataset.samples[index].id, file: error.path, message: error.message, epoch, batch });
  }

  #shapesFit(rasters: Raster[]): boolean {
    return this.#resolved.modalities.every((m, k) => String(rasters[k].shape) === String([m.channels, ...m.size]));
  }

  /** (Readers check shapes themselves; this catches a reader whose grid differs from what its dataset declares.) */
  #shapeError(index: number, rasters: Raster[]): Error {
    const k = this.#resolved.modalities.findIndex(
      (m, j) => String(rasters[j].shape) !== String([m.channels, ...m.size]),
    );
    const m = this.#resolved.modalities[k];
    return new FileError(
      `${this.dataset.samples[index].id} (${m.name})`,
      `raster of shape [${rasters[k].shape}], expected [${m.channels}, ${m.size}] from the dataset's grid`,
    );
  }

  /** One modality's rasters (already at the output size) stacked into one host tensor [B, C, H, W]. */
  #stack(m: Resolved['modalities'][number], rasters: Raster[]): Tensor {
    const [h, w] = m.size;
    const plane = m.channels * h * w;
    const stacked = new Float32Array(rasters.length * plane);
    rasters.forEach((r, i) => stacked.set(r.data, i * plane));
    return fromBuffer(stacked, [rasters.length, m.channels, h, w]);
  }

  /**
   * Host tensors on the loader's device: for CUDA, pinned and copied on a side stream, so the batch travels while the
   * step before it computes.
   */
  #toDevice(tensors: Tensor[]): Tensor[] {
    const { device } = this.#options;
    return device === 'cpu'
      ? tensors
      : cuda.copyOnSideStream(
          tensors.map((t) => t.pinMemory()),
          device,
        );
  }

  /**
   * One modality of a batch on the device: standardised, each view augmented there in one batched call. A pack
   * stored with a margin (a larger grid than asked for) gives crops of its pixels, and without augmentation the
   * whole image resized.
   */
  #modalityViews(m: Resolved['modalities'][number], onDevice: Tensor, random: Random[]): Tensor[] {
    const stats = this.#options.normalization?.[m.name];
    const x = stats ? standardize(onDevice, stats) : onDevice;
    const { augmentation, views } = this.#resolved;
    const [h, w] = [x.shape[2], x.shape[3]];
    const larger = h !== m.size[0] || w !== m.size[1];
    if (!augmentation) {
      const view = larger
        ? interpolate(x, { size: [...m.size], mode: 'bilinear', alignCorners: false, antialias: true })
        : x;
      return Array.from({ length: views }, () => view);
    }
    return Array.from({ length: views }, () =>
      applyTransforms(
        x,
        random.map((r) => sampleTransform(r, augmentation, w / h)),
        m.size,
      ),
    );
  }

  #assemble(read: ReadBatch, random: Random, index: number): Batch {
    const records = read.indices.map((i) => this.dataset.samples[i]);
    // One generator per sample, so a sample's views do not depend on which other samples the batch holds.
    const perSample = read.indices.map((i) => random.fork(i));
    const host = {
      locations: [...read.indices],
      labels: records.map((r) => r.label),
      negative: records.map((r) => r.negative),
    };
    const { modalities } = this.#resolved;
    const batch = tidy(() => {
      const [locations, labels, targets, negative, ...stacked] = this.#toDevice([
        tensor(host.locations, { dtype: 'int64' }),
        tensor(host.labels, { dtype: 'int64' }),
        tensor(Float32Array.from(records.flatMap((r) => Array.from(multiHot(r))))).reshape([records.length, -1]),
        tensor(host.negative),
        ...read.stack(),
      ]);
      const views = Object.fromEntries(
        modalities.map((m, k) => [m.name, this.#modalityViews(m, stacked[k], perSample)]),
      );
      return { views, locations, labels, targets, negative };
    });
    const tensors = [
      ...Object.values(batch.views).flat(),
      batch.locations,
      batch.labels,
      batch.targets,
      batch.negative,
    ];
    return {
      ...batch,
      host,
      index,
      ids: records.map((r) => r.id),
      [Symbol.dispose]: () => new Set(tensors).forEach((t) => t.dispose()),
    };
  }

  /**
   * The batches of `epoch`, from batch `from` on (a resumed run skips what it has done: the batches that follow are
   * the same, augmentations included); read ahead by `prefetch` batches. Dispose each batch (`using`) when done.
   */
  async *epoch(epoch: number, options: { from?: number } = {}): AsyncGenerator<Batch> {
    const batches = this.batches(epoch);
    const { from = 0 } = checkOptions('DataLoader.epoch', options);
    if (checkInt('DataLoader.epoch', 'from', from) < 0)
      throw invalidArg('DataLoader.epoch', 'from', 'a batch index >= 0', from);
    const random = new Random(this.#options.seed).fork(epoch);
    const inFlight: Promise<ReadBatch>[] = [];
    let next = from;
    const fill = () => {
      while (inFlight.length < this.#options.prefetch && next < batches.length) {
        const reading = this.#read(batches[next], epoch, next++);
        reading.catch(() => undefined); // awaited in order below; this only silences the ones never reached
        inFlight.push(reading);
      }
    };
    fill();
    try {
      for (let b = from; inFlight.length > 0; b++) {
        const read = await inFlight.shift()!;
        fill();
        try {
          if (read.indices.length > 0) yield this.#assemble(read, random.fork(1 + b), b);
        } finally {
          read.release();
        }
      }
    } finally {
      // a loop left early: the batches read ahead are released once they arrive
      inFlight.forEach((reading) => reading.then((r) => r.release()).catch(() => undefined));
    }
  }

  /** Successive epochs: the first iteration is epoch 0, the next epoch 1, and so on. */
  [Symbol.asyncIterator](): AsyncGenerator<Batch> {
    return this.epoch(this.#epoch++);
  }

  async close(): Promise<void> {
    await this.#pool?.close();
    this.#pool = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The loader's `shuffle` for a run's `shuffleShards` option. */
export function shuffleOf(config: { shuffleShards: number | null }): true | { shards: number } {
  return config.shuffleShards === null ? true : { shards: config.shuffleShards };
}

function checkShuffle(dataset: Dataset, shuffle: unknown): boolean | { shards: number } {
  if (typeof shuffle === 'boolean') return shuffle;
  const { shards } = checkOptions(`${OP} shuffle`, shuffle as { shards: number });
  if (checkInt(OP, 'shuffle.shards', shards) < 1) throw invalidArg(OP, 'shuffle.shards', 'a positive integer', shards);
  if (!(dataset instanceof PackedDataset))
    throw invalidArg(OP, 'shuffle', 'true or false: shuffling by shards needs a packed dataset (mmssl pack)', shuffle);
  return { shards };
}

function checkShard(shard: { rank: number; worldSize: number }): { rank: number; worldSize: number } {
  const { rank, worldSize } = checkOptions(`${OP} shard`, shard);
  if (checkInt(OP, 'shard.worldSize', worldSize) < 1)
    throw invalidArg(OP, 'shard.worldSize', 'a positive integer', worldSize);
  if (checkInt(OP, 'shard.rank', rank) < 0 || rank >= worldSize)
    throw invalidArg(OP, 'shard.rank', `in [0, ${worldSize})`, rank);
  return { rank, worldSize };
}

/** DistributedSampler's deal: the order padded with its own start to a multiple of worldSize, every worldSize-th from rank. */
export function shardOf<T>(order: readonly T[], { rank, worldSize }: { rank: number; worldSize: number }): T[] {
  if (worldSize === 1) return [...order];
  const total = Math.ceil(order.length / worldSize) * worldSize;
  const padded = Array.from({ length: total }, (_, i) => order[i % order.length]);
  return padded.filter((_, i) => i % worldSize === rank);
}

/**
 * A read's error as the sample's: a worker that died reading it (each worker reads one file at a time, so the file
 * it held killed it) is a FileError for that file, which `onBadSample: 'skip'` skips like any unreadable one.
 */
export function sampleError(error: unknown, where: string): unknown {
  if (!(error instanceof WorkerExitError)) return error;
  return new FileError(where, `killed the worker decoding it (${error.message}): the file is damaged or too large`, {
    cause: error,
  });
}
