/**
 * The packed dataset format, version 1: a folder holding `pack.json` (the index) and shards `shard-NNNNN.bin` of
 * fixed-size records, one per location. A record holds each modality at its packed size, bands first, in the
 * modality's stored dtype (little-endian), each segment starting at a multiple of 8 bytes. The index holds, per
 * record, the sample's metadata (id, split, classes, label, Negative flag), its shard and slot, and the CRC-32 of its
 * bytes; per shard its size and CRC-32; per modality the bands, size, dtype and where its segment lies; the per-band
 * statistics of the training split, computed from the stored values.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { FileError } from '../../errors.js';
import type { DatasetSpec, ModalityInfo, SampleRecord, SkippedSample } from '../dataset.js';
import type { NormalizationStats } from '../stats.js';

export const PACK_FORMAT = 'mmssl-pack';
export const PACK_VERSION = 1;
export const INDEX_FILE = 'pack.json';

/**
 * How a modality's values are stored: uint8 and int16 hold the resized values rounded (for sources of that range:
 * 8-bit imagery, integer reflectances), float16 keeps 11 significant bits, float32 is exact.
 */
export type PackDtype = 'uint8' | 'int16' | 'float16' | 'float32';
export const PACK_DTYPES: readonly PackDtype[] = ['uint8', 'int16', 'float16', 'float32'];

export const DTYPE_BYTES: Record<PackDtype, number> = { uint8: 1, int16: 2, float16: 2, float32: 4 };
/** The values each dtype holds; a value outside fails the pack rather than being clipped. */
export const DTYPE_RANGE: Record<PackDtype, [number, number]> = {
  uint8: [0, 255],
  int16: [-32768, 32767],
  float16: [-65504, 65504],
  float32: [-3.4028234663852886e38, 3.4028234663852886e38],
};

export interface PackedModality extends ModalityInfo {
  dtype: PackDtype;
  // outputSize (ModalityInfo's): with a margin, the size training reads at, the pack storing it larger (`size`), so
  // crops are taken from stored pixels instead of upsampled
  /** Where the modality's segment starts in a record, in bytes. */
  offset: number;
  /** The segment's length: bands x height x width x the dtype's size. */
  bytes: number;
}

export interface PackedRecord extends SampleRecord {
  shard: number;
  /** The record's position in its shard. */
  slot: number;
  crc32: number;
}

export interface ShardInfo {
  file: string;
  records: number;
  bytes: number;
  crc32: number;
}

export interface PackIndex {
  format: typeof PACK_FORMAT;
  version: typeof PACK_VERSION;
  /** The dataset packed, as it was opened. */
  source: DatasetSpec;
  modalities: PackedModality[];
  recordBytes: number;
  recordsPerShard: number;
  shards: ShardInfo[];
  records: PackedRecord[];
  /** Per-band mean and std of the training split, from the stored values. */
  stats: NormalizationStats;
  /** The samples left out, and why (the pack's report). */
  skipped: SkippedSample[];
}

export const shardFile = (shard: number) => `shard-${String(shard).padStart(5, '0')}.bin`;

/** Segments laid out one after the other, each 8-byte aligned (so every dtype can be viewed in place). */
export function layOut(modalities: readonly (ModalityInfo & { dtype: PackDtype })[]): {
  modalities: PackedModality[];
  recordBytes: number;
} {
  let offset = 0;
  const out = modalities.map((m) => {
    const bytes = m.bands.length * m.size[0] * m.size[1] * DTYPE_BYTES[m.dtype];
    const segment = { ...m, offset, bytes };
    offset += Math.ceil(bytes / 8) * 8;
    return segment;
  });
  return { modalities: out, recordBytes: offset };
}

/** The index of the pack in `root`, checked to be one this version reads; a FileError naming what is wrong. */
export function readIndex(root: string): PackIndex {
  const path = join(root, INDEX_FILE);
  let index: PackIndex;
  try {
    index = JSON.parse(readFileSync(path, 'utf8')) as PackIndex;
  } catch (e) {
    throw new FileError(path, `cannot read the pack's index: ${(e as Error).message}`);
  }
  if (index?.format !== PACK_FORMAT) throw new FileError(path, `not an mmssl pack (format '${index?.format}')`);
  if (index.version !== PACK_VERSION)
    throw new FileError(path, `pack format version ${index.version}; this mmssl reads version ${PACK_VERSION}`);
  const { modalities, recordBytes } = layOut(index.modalities);
  if (
    recordBytes !== index.recordBytes ||
    modalities.some((m, k) => m.offset !== index.modalities[k].offset || m.bytes !== index.modalities[k].bytes)
  )
    throw new FileError(path, "the record layout does not match the modalities' sizes and dtypes");
  const shard = index.shards.findIndex((s, k) => s.file !== shardFile(k) || s.bytes !== s.records * recordBytes);
  if (shard >= 0) throw new FileError(path, `shard ${shard}'s entry does not match its records and the record size`);
  const record = index.records.findIndex(
    (r) =>
      !Number.isInteger(r.shard) ||
      !Number.isInteger(r.slot) ||
      !(r.slot >= 0 && r.slot < index.shards[r.shard]?.records),
  );
  if (record >= 0)
    throw new FileError(path, `record ${record} (${index.records[record].id}) points outside the shards`);
  return index;
}
