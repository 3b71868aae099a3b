/**
 * A packed dataset (see format.ts) opened for reading: a `Dataset` like any other (one raster at a time, in workers
 * too), and a batch reader for the loader: a batch's records read with pread straight into one uint8 tensor off the
 * JS thread, each record's CRC-32 checked, then every modality decoded from its dtype in one tensor op.
 */
import { closeSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { FileError } from '../../errors.js';
import { native } from '../../native.js';
import { empty, tensor } from '../../torch/creation.js';
import { tidy } from '../../torch/scope.js';
import type { Tensor } from '../../torch/tensor.js';
import type { Dataset, DatasetSpec, Raster } from '../dataset.js';
import type { NormalizationStats } from '../stats.js';
import { INDEX_FILE, type PackIndex, type PackedModality, type PackedRecord, readIndex, shardFile } from './format.js';

/** A batch's records as read: the bytes of those that checked out, and a FileError for each one that did not. */
export interface RecordBatch {
  /** uint8 [good, recordBytes]; dispose it. */
  bytes: Tensor;
  /** The dataset indices of the rows of `bytes`, in the order asked. */
  indices: number[];
  failed: { index: number; error: FileError }[];
}

/** The shard files of datasets that were collected without `close()`, closed then. */
const openFiles = new FinalizationRegistry<(number | undefined)[]>((fds) =>
  fds.forEach((fd) => fd !== undefined && closeSync(fd)),
);

export class PackedDataset implements Dataset {
  readonly spec: DatasetSpec;
  readonly index: PackIndex;
  readonly modalities: readonly PackedModality[];
  readonly samples: readonly PackedRecord[];
  readonly root: string;
  readonly #fds: (number | undefined)[];

  constructor(root: string) {
    this.root = root;
    this.spec = { kind: 'packed', root };
    this.index = readIndex(root);
    this.modalities = this.index.modalities;
    this.samples = this.index.records;
    this.#fds = this.index.shards.map(() => undefined);
    openFiles.register(this, this.#fds, this);
    this.index.shards.forEach((s) => {
      const path = join(root, s.file);
      const size = statSizeOf(path);
      if (size !== s.bytes)
        throw new FileError(path, `${size === undefined ? 'missing' : `${size} bytes`}; the index says ${s.bytes}`);
    });
  }

  /** The per-band statistics of the training split stored with the pack. */
  get stats(): NormalizationStats {
    return this.index.stats;
  }

  modality(name: string): PackedModality {
    const m = this.modalities.find((d) => d.name === name);
    if (!m) throw new FileError(join(this.root, INDEX_FILE), `holds no modality '${name}'`);
    return m;
  }

  #fd(shard: number): number {
    return (this.#fds[shard] ??= openSync(join(this.root, this.index.shards[shard].file), 'r'));
  }

  #where(index: number): string {
    const r = this.samples[index];
    return `${join(this.root, shardFile(r.shard))} (record ${r.slot}, ${r.id})`;
  }

  /** Reads the records of `indices` (dataset indices) into one tensor, checking each record's CRC-32. */
  async readRecords(indices: readonly number[]): Promise<RecordBatch> {
    const { recordBytes } = this.index;
    const bytes = empty([indices.length, recordBytes], { dtype: 'uint8' });
    const records = indices.map((i) => this.samples[i]);
    let crcs: number[];
    try {
      crcs = await native.readRecords(
        bytes.handle,
        records.map((r) => this.#fd(r.shard)),
        records.map((r) => r.slot * recordBytes),
      );
    } catch (e) {
      bytes.dispose();
      throw new FileError(this.root, (e as Error).message);
    }
    const failed = indices.flatMap((index, i) =>
      crcs[i] === records[i].crc32
        ? []
        : [
            {
              index,
              error: new FileError(
                this.#where(index),
                crcs[i] < 0
                  ? 'the shard ends inside this record (truncated)'
                  : 'checksum mismatch: the record is corrupted',
              ),
            },
          ],
    );
    if (failed.length === 0) return { bytes, indices: [...indices], failed };
    const good = indices.flatMap((_, i) => (crcs[i] === records[i].crc32 ? [i] : []));
    const kept = tidy(() => bytes.indexSelect(0, tensor(good, { dtype: 'int64' })));
    bytes.dispose();
    return { bytes: kept, indices: good.map((i) => indices[i]), failed };
  }

  /** One modality of every row of `bytes` (from readRecords) as float32 [rows, C, H, W]. */
  decode(bytes: Tensor, name: string): Tensor {
    const m = this.modality(name);
    return tidy(() =>
      bytes
        .narrow(1, m.offset, m.bytes)
        .view(m.dtype)
        .reshape([bytes.shape[0], m.bands.length, ...m.size])
        .float(),
    );
  }

  async read(index: number, modality: string): Promise<Raster> {
    const { bytes, failed } = await this.readRecords([index]);
    using b = bytes;
    if (failed.length > 0) throw failed[0].error;
    const m = this.modality(modality);
    using x = this.decode(b, modality);
    return { shape: [m.bands.length, ...m.size], data: x.toTypedArray() as Float32Array };
  }

  /** Closes the shard files now (reading again reopens them); otherwise they close when the dataset is collected. */
  close(): void {
    this.#fds.forEach((fd, k) => {
      if (fd !== undefined) closeSync(fd);
      this.#fds[k] = undefined;
    });
  }
}

function statSizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

export function openPacked(root: string): PackedDataset {
  return new PackedDataset(root);
}
