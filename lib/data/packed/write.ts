/**
 * `pack`: a dataset (METER-ML, a manifest, the synthetic set) written once as a packed dataset (format.ts), so
 * training reads records instead of decoding files. Samples are read, decoded and resized in worker threads; shards
 * are written one after the other, each atomically (temporary file, fsync, rename) and followed by a sidecar that
 * says it is complete, so a killed pack continues from the first shard without one. The index is written last.
 */
import { availableParallelism } from 'node:os';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { ArgumentError, checkInt, checkOneOf, checkOptions, FileError, invalidArg } from '../../errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import { native } from '../../native.js';
import { fromBuffer } from '../../torch/creation.js';
import { tidy } from '../../torch/scope.js';
import { allInOrder, WorkerPool } from '../../workers/pool.js';
import type { Dataset, ModalityInfo, Raster, SampleRecord, SkippedSample, Split } from '../dataset.js';
import { openPath } from '../open.js';
import { Moments } from '../stats.js';
import type { ReadRequest } from '../worker.js';
import {
  DTYPE_RANGE,
  INDEX_FILE,
  layOut,
  PACK_DTYPES,
  PACK_FORMAT,
  PACK_VERSION,
  type PackDtype,
  type PackIndex,
  type PackedModality,
  type PackedRecord,
  shardFile,
} from './format.js';

export interface PackOptions {
  /** The dataset: a path as `openPath` takes it, or an opened dataset. */
  source: string | Dataset;
  /** The pack's folder: new, empty, or holding this same pack unfinished (it continues). */
  out: string;
  /** The modalities to pack (default: the method's, s1, s2 and naip, where the dataset has them, else all of its own). */
  modalities?: readonly string[];
  /** Packed [height, width] per modality (default: its native grid); shrinking is antialiased, as the loader does. */
  sizes?: Record<string, readonly [number, number]>;
  /**
   * A margin for the resized crop, a fraction of each side (default 0): a modality is stored at (1 + margin) x its
   * size and read at its size, each crop resampled from the stored pixels. The method's crops keep at least 90% of
   * the area (95% of a side): a margin of 0.06 leaves them at full resolution. With a margin, a view without
   * augmentation is the stored image resized (antialiased) again, so batches are no longer bit for bit the source's.
   */
  margin?: number;
  /**
   * Stored dtype per modality (default 'auto': uint8 when the first readable sample's values are integers in
   * [0, 255], int16 when integers in int16's range, float16 otherwise). A value outside the dtype's range fails the pack.
   */
  dtypes?: Record<string, PackDtype | 'auto'>;
  /** The splits to pack (default all three). */
  splits?: readonly Split[];
  /** Records per shard (default: as many as fill 256 MiB). */
  recordsPerShard?: number;
  /** Decoding threads (default: the cores available, at most 4). */
  workers?: number;
  /** A sample that cannot be read: 'raise' (default) stops the pack; 'skip' leaves it out and lists it in the index. */
  onBadSample?: 'raise' | 'skip';
  /** Called after each sample with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface PackReport {
  out: string;
  records: number;
  shards: number;
  /** Shards found complete from an earlier, interrupted pack. */
  resumedShards: number;
  skipped: SkippedSample[];
  bytes: number;
  seconds: number;
}

/** What a completed shard's sidecar holds: enough to write the index without reading the shard again. */
interface ShardSidecar {
  plan: string;
  records: Omit<PackedRecord, 'shard'>[];
  bytes: number;
  crc32: number;
  skipped: SkippedSample[];
  /** Moments of the stored values of its training records, per modality. */
  moments: Record<string, { n: number; mean: number[]; m2: number[] }>;
}

const OP = 'pack';
const METHOD_MODALITIES = ['s1', 's2', 'naip'];
const SHARD_TARGET_BYTES = 256 * 1024 * 1024;
const sidecarFile = (shard: number) => `${shardFile(shard)}.done.json`;

export async function pack(options: PackOptions): Promise<PackReport> {
  const started = Date.now();
  const {
    source,
    out,
    splits = ['train', 'val', 'test'],
    workers = Math.min(4, availableParallelism()),
    onBadSample = 'raise',
    onProgress,
  } = checkOptions(OP, options);
  checkOneOf(OP, 'onBadSample', onBadSample, ['raise', 'skip']);
  if (checkInt(OP, 'workers', workers) < 1) throw invalidArg(OP, 'workers', 'a positive integer', workers);
  const dataset = typeof source === 'string' ? await openPath(source) : source;
  if (dataset.spec.kind === 'packed') throw invalidArg(OP, 'source', 'a dataset that is not a pack already', source);
  const margin = options.margin ?? 0;
  if (typeof margin !== 'number' || !(margin >= 0 && margin <= 1))
    throw invalidArg(OP, 'margin', 'a number in [0, 1]', margin);
  const chosen = chooseModalities(dataset, options, margin);
  const indices = dataset.samples.flatMap((s, i) => (splits.includes(s.split) ? [i] : []));
  if (indices.length === 0) throw invalidArg(OP, 'splits', 'splits holding samples', splits);
  await using pool = new WorkerPool<ReadRequest, Raster>(
    new URL('../worker.js', import.meta.url),
    workers,
    dataset.spec,
  );
  const read = (index: number) =>
    allInOrder(chosen.map((m) => pool.run({ index, modality: m.name, size: resizeOf(m, dataset) })));
  const typed = await chooseDtypes(dataset, chosen, indices, options.dtypes ?? {});
  const { modalities, recordBytes } = layOut(typed);
  // 'auto' chose an integer dtype from one sample's values: every other sample read at its grid must hold integers too
  const integral = new Set(
    chosen.flatMap((m, k) =>
      (options.dtypes?.[m.name] ?? 'auto') === 'auto' && typed[k].dtype !== 'float16' && !resizeOf(m, dataset)
        ? [m.name]
        : [],
    ),
  );
  const recordsPerShard = options.recordsPerShard ?? Math.max(1, Math.floor(SHARD_TARGET_BYTES / recordBytes));
  if (checkInt(OP, 'recordsPerShard', recordsPerShard) < 1)
    throw invalidArg(OP, 'recordsPerShard', 'a positive integer', recordsPerShard);
  const plan = JSON.stringify({ source: dataset.spec, modalities, recordsPerShard, splits, samples: indices.length });
  await checkOutFolder(out, plan);

  const shardCount = Math.ceil(indices.length / recordsPerShard);
  const sidecars: ShardSidecar[] = [];
  let done = 0,
    resumedShards = 0;
  for (let shard = 0; shard < shardCount; shard++) {
    const members = indices.slice(shard * recordsPerShard, (shard + 1) * recordsPerShard);
    let sidecar = await completeShard(out, shard, plan);
    if (sidecar) {
      resumedShards++;
      done += members.length;
      onProgress?.(done, indices.length);
    } else {
      sidecar = await writeShard(out, shard, plan, members, {
        dataset,
        modalities,
        recordBytes,
        onBadSample,
        integral,
        read,
        onSample: () => onProgress?.(++done, indices.length),
      });
    }
    sidecars.push(sidecar);
  }
  const index = indexOf(dataset, modalities, recordBytes, recordsPerShard, sidecars);
  await writeJsonAtomic(join(out, INDEX_FILE), index);
  await Promise.all(sidecars.map((_, shard) => rm(join(out, sidecarFile(shard)), { force: true })));
  return {
    out,
    records: index.records.length,
    shards: index.shards.length,
    resumedShards,
    skipped: index.skipped,
    bytes: index.shards.reduce((n, s) => n + s.bytes, 0),
    seconds: (Date.now() - started) / 1000,
  };
}

type Chosen = ModalityInfo & { outputSize?: [number, number] };

function chooseModalities(dataset: Dataset, options: PackOptions, margin: number): Chosen[] {
  const all = dataset.modalities.map((m) => m.name);
  const method = METHOD_MODALITIES.filter((m) => all.includes(m));
  const names = options.modalities ?? (method.length > 0 ? method : all);
  if (!Array.isArray(names) || names.length === 0)
    throw invalidArg(OP, 'modalities', 'a non-empty list of modality names', names);
  const sizes = options.sizes ?? {};
  for (const name of [...Object.keys(sizes), ...Object.keys(options.dtypes ?? {})])
    if (!names.includes(name))
      throw invalidArg(OP, 'sizes/dtypes', `keys among the packed modalities (${names})`, name);
  return names.map((name) => {
    const info = dataset.modalities.find((m) => m.name === name);
    if (!info)
      throw invalidArg(OP, 'modalities', `names among ${dataset.modalities.map((m) => m.name).join(', ')}`, name);
    const size = sizes[name] ?? info.size;
    if (!(Array.isArray(size) && size.length === 2 && size.every((n) => Number.isInteger(n) && n > 0)))
      throw invalidArg(OP, `sizes.${name}`, '[height, width] of positive integers', size);
    const stored = size.map((n) => Math.round(n * (1 + margin))) as [number, number];
    return margin === 0
      ? { ...info, size: [size[0], size[1]] }
      : { ...info, size: stored, outputSize: [size[0], size[1]] };
  });
}

function resizeOf(m: Chosen, dataset: Dataset): [number, number] | undefined {
  const native = dataset.modalities.find((d) => d.name === m.name)!.size;
  return native[0] === m.size[0] && native[1] === m.size[1] ? undefined : m.size;
}

/** The dtype 'auto' picks from a raster's values (see PackOptions.dtypes). */
function autoDtype(data: Float32Array): PackDtype {
  let integral = true,
    low = Infinity,
    high = -Infinity;
  for (const v of data) {
    if (integral && !Number.isInteger(v)) integral = false;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  if (integral && low >= 0 && high <= 255) return 'uint8';
  if (integral && low >= DTYPE_RANGE.int16[0] && high <= DTYPE_RANGE.int16[1]) return 'int16';
  return 'float16';
}

async function chooseDtypes(
  dataset: Dataset,
  chosen: Chosen[],
  indices: number[],
  dtypes: Record<string, PackDtype | 'auto'>,
): Promise<(Chosen & { dtype: PackDtype })[]> {
  return Promise.all(
    chosen.map(async (m) => {
      const wanted = dtypes[m.name] ?? 'auto';
      if (wanted !== 'auto') {
        checkOneOf(OP, `dtypes.${m.name}`, wanted, [...PACK_DTYPES]);
        return { ...m, dtype: wanted };
      }
      // The first sample that reads, at its native grid: what the source's values are before any resizing.
      for (const index of indices) {
        const raster = await dataset.read(index, m.name).catch(() => undefined);
        if (raster) return { ...m, dtype: autoDtype(raster.data) };
      }
      throw new FileError(String(dataset.spec.kind), `no sample's ${m.name} could be read`);
    }),
  );
}

/** `out` must be new, empty, or hold the unfinished pack of the same plan; anything else is refused, never overwritten. */
async function checkOutFolder(out: string, plan: string): Promise<void> {
  const names: string[] = await readdir(out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new FileError(out, `cannot read the output folder: ${e.message}`);
  });
  if (names.includes(INDEX_FILE)) throw new FileError(out, 'holds a finished pack already: choose another folder');
  for (const name of names.filter((n) => n.endsWith('.done.json'))) {
    const sidecar = await readSidecar(join(out, name));
    if (sidecar && sidecar.plan !== plan)
      throw new FileError(
        out,
        'holds an unfinished pack made with other options (source, modalities, sizes, dtypes or shard size): finish it with those, or choose another folder',
      );
  }
  const foreign = names.filter((n) => !/^shard-\d{5}\.bin(\.done\.json|\.tmp-.*)?$/.test(n));
  if (foreign.length > 0)
    throw new FileError(out, `is not empty (${foreign.slice(0, 3).join(', ')}): choose a new folder`);
}

async function readSidecar(path: string): Promise<ShardSidecar | undefined> {
  return readFile(path, 'utf8')
    .then((text) => JSON.parse(text) as ShardSidecar)
    .catch(() => undefined);
}

/** The sidecar of shard `shard` when the shard is complete: written for this plan, its file of the size and CRC recorded. */
async function completeShard(out: string, shard: number, plan: string): Promise<ShardSidecar | undefined> {
  const sidecar = await readSidecar(join(out, sidecarFile(shard)));
  if (!sidecar || sidecar.plan !== plan) return undefined;
  const path = join(out, shardFile(shard));
  const size = await stat(path).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== sidecar.bytes) return undefined;
  return native.crc32(await readFile(path)) === sidecar.crc32 ? sidecar : undefined;
}

interface ShardContext {
  dataset: Dataset;
  modalities: PackedModality[];
  recordBytes: number;
  onBadSample: 'raise' | 'skip';
  /** Modalities whose values must be integers (see pack). */
  integral: Set<string>;
  read: (index: number) => Promise<Raster[]>;
  onSample: () => void;
}

async function writeShard(
  out: string,
  shard: number,
  plan: string,
  members: number[],
  context: ShardContext,
): Promise<ShardSidecar> {
  const { dataset, onBadSample } = context;
  // Each sample encoded as it arrives, so a shard holds its records' bytes, not their decoded rasters; a read that
  // fails is a bad sample, an encoding that fails (a value outside the dtype) fails the pack.
  const arrived = await Promise.all(
    members.map((index) =>
      context
        .read(index)
        .finally(context.onSample)
        .then(
          (rasters) => ({ index, ...encodeRecord(dataset.samples[index], rasters, context) }),
          (error: Error & { path?: string }) => ({ index, error }),
        ),
    ),
  );
  const skipped: SkippedSample[] = [];
  const good = arrived.flatMap((a) => {
    if (!('error' in a)) return [a];
    if (onBadSample === 'raise') throw a.error;
    skipped.push({ id: dataset.samples[a.index].id, file: a.error.path, message: a.error.message });
    return [];
  });
  const moments = Object.fromEntries(context.modalities.map((m) => [m.name, new Moments(m.bands.length)]));
  good.forEach((g) => g.moments && Object.entries(g.moments).forEach(([m, v]) => moments[m].merge(v))); // in slot order
  const chunks = good.map((g) => g.bytes);
  await writeFileAtomic(join(out, shardFile(shard)), chunks);
  const sidecar: ShardSidecar = {
    plan,
    records: good.map((g, slot) => ({ ...dataset.samples[g.index], slot, crc32: native.crc32(g.bytes) })),
    bytes: good.length * context.recordBytes,
    crc32: chunks.reduce((crc, chunk) => native.crc32(chunk, crc), native.crc32(new Uint8Array(0))),
    skipped,
    moments: Object.fromEntries(Object.entries(moments).map(([m, v]) => [m, v.toJSON()])),
  };
  await writeJsonAtomic(join(out, sidecarFile(shard)), sidecar);
  return sidecar;
}

/** One sample's record, and for a training sample the moments of its stored values per modality. */
function encodeRecord(
  sample: SampleRecord,
  rasters: Raster[],
  { modalities, recordBytes, integral }: ShardContext,
): { bytes: Uint8Array; moments?: Record<string, Moments> } {
  const bytes = new Uint8Array(recordBytes);
  const moments = sample.split === 'train' ? ({} as Record<string, Moments>) : undefined;
  modalities.forEach((m, k) => {
    const stored = encode(rasters[k], m, sample.id, integral.has(m.name));
    bytes.set(stored.bytes, m.offset);
    if (moments) (moments[m.name] = new Moments(m.bands.length)).add(stored.decoded);
  });
  return { bytes, moments };
}

/** A raster's bytes in the modality's dtype (rounded for integer dtypes), and the values those bytes hold. */
function encode(
  raster: Raster,
  m: PackedModality,
  id: string,
  integral: boolean,
): { bytes: Uint8Array; decoded: Raster } {
  const [low, high] = DTYPE_RANGE[m.dtype];
  return tidy(() => {
    const x = fromBuffer(raster.data, raster.shape);
    if (integral && (x.round().sub(x).abs().max().item() as number) > 0)
      throw new ArgumentError(
        `${OP}: ${id} (${m.name}) holds values that are not integers, where the first sample's were (dtype 'auto' chose ${m.dtype}); pack ${m.name} as float16 or float32 (--dtype ${m.name}=float32)`,
      );
    const min = x.min().item() as number,
      max = x.max().item() as number;
    if (min < low || max > high)
      throw new ArgumentError(
        `${OP}: ${id} (${m.name}) holds values in [${min}, ${max}], outside ${m.dtype}'s range [${low}, ${high}]; pack ${m.name} as float32 (dtypes: {${m.name}: 'float32'}, --dtype ${m.name}=float32)`,
      );
    const stored = (m.dtype === 'uint8' || m.dtype === 'int16' ? x.round() : x).to(m.dtype).contiguous();
    return {
      bytes: stored.view('uint8').toTypedArray() as Uint8Array,
      decoded: { shape: raster.shape, data: stored.float().toTypedArray() as Float32Array },
    };
  });
}

function indexOf(
  dataset: Dataset,
  modalities: PackedModality[],
  recordBytes: number,
  recordsPerShard: number,
  sidecars: ShardSidecar[],
): PackIndex {
  const moments = Object.fromEntries(modalities.map((m) => [m.name, new Moments(m.bands.length)]));
  sidecars.forEach((s) => modalities.forEach((m) => moments[m.name].merge(s.moments[m.name])));
  return {
    format: PACK_FORMAT,
    version: PACK_VERSION,
    source: dataset.spec,
    modalities,
    recordBytes,
    recordsPerShard,
    shards: sidecars.map((s, shard) => ({
      file: shardFile(shard),
      records: s.records.length,
      bytes: s.bytes,
      crc32: s.crc32,
    })),
    records: sidecars.flatMap((s, shard) => s.records.map((r) => ({ ...r, shard }))),
    // (none where the pack holds no training sample: a run on it then computes them as from any dataset)
    stats: Object.fromEntries(
      modalities.flatMap((m) => (moments[m.name].n > 0 ? [[m.name, moments[m.name].stats()]] : [])),
    ),
    skipped: sidecars.flatMap((s) => s.skipped),
  };
}
