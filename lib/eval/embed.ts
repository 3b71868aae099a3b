/**
 * Embeddings for every sample of a dataset, from a pre-training run (its backbones' features) or a fine-tuned model
 * (the same, plus class probabilities): fused (the modalities' features concatenated, what the classifier sees) or
 * one array per modality. Written as .npy (float32, [samples, width]) with an index (JSON: ids, splits, labels, and
 * which columns hold which modality), each file atomically.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { invalidArg } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { softmax } from '../nn/functional.js';
import { noGrad } from '../torch/autograd.js';
import type { Precision } from '../torch/amp.js';
import type { Device } from '../torch/device.js';
import { tidy } from '../torch/scope.js';
import { type BadSamplePolicy, bandCounts, type Dataset, type SkippedSample, type Split } from '../data/dataset.js';
import { encodeNpy } from '../data/formats/npy.js';
import { DataLoader, firstViews } from '../data/loader.js';
import { openManifest } from '../data/manifest.js';
import { openPath } from '../data/open.js';
import { loadRun } from '../runs/load.js';

export interface EmbedOptions {
  /** A pre-training run folder, or a fine-tuning output folder. */
  init: string;
  /** A dataset (folder or manifest), or GeoTIFF files of one modality, a sample each (split 'test', no label). */
  data: string | readonly string[];
  /** Output path without extension: <out>.npy (or <out>.<modality>.npy), <out>.index.json. */
  out: string;
  /** Default: the run's modalities. */
  modalities?: readonly string[];
  /** One array per modality instead of the fused one. */
  perModality?: boolean;
  /** The splits embedded (default all three). */
  splits?: readonly Split[];
  batchSize?: number;
  device?: Device;
  /** Inference at this precision (default '32'; see lib/torch/amp.ts). */
  precision?: Precision;
  workers?: number;
  /** A sample that cannot be read: 'raise' (default) stops with its error; 'skip' leaves it out (listed in the index). */
  onBadSample?: BadSamplePolicy;
  onProgress?: (done: number, total: number) => void;
}

export interface EmbedIndex {
  ids: string[];
  splits: string[];
  labels: number[];
  /** Column ranges [start, end) per modality in the fused array (or each per-modality array's width). */
  columns: Record<string, [number, number]>;
  files: string[];
  classNames?: string[];
  /** The samples left out (onBadSample 'skip'), with why: no row of the arrays is theirs. */
  skipped: SkippedSample[];
}

/** Writes the embeddings (and probabilities, from a fine-tuned model) of every sample; returns the index. */
export async function embed(options: EmbedOptions): Promise<EmbedIndex> {
  const {
    init,
    data,
    out,
    perModality = false,
    splits = ['train', 'val', 'test'],
    batchSize = 64,
    device = 'cpu',
    precision = '32',
    workers = 2,
    onBadSample = 'raise',
    onProgress,
  } = options;
  const { dataset, cleanup } = await openData(data, options.modalities);
  const run = await loadRun(init, { modalities: options.modalities, device, precision }).catch(async (e: unknown) => {
    await cleanup();
    throw e;
  });
  try {
    const { modalities } = run;
    const bands = bandCounts('embed', modalities, dataset);
    const differing = modalities.find((m) => bands[m] !== run.channels[m]);
    if (differing)
      throw invalidArg(
        'embed',
        'data',
        `${run.channels[differing]} bands of ${differing}, as the run was trained on`,
        `${bands[differing]} bands`,
      );
    const config = { sizes: run.sizes, memoryFormat: run.memoryFormat };
    await using loader = new DataLoader(dataset, {
      modalities: modalities.map((name) => ({ name, size: config.sizes[name] })),
      batchSize,
      splits,
      shuffle: false,
      normalization: run.normalization,
      workers,
      device,
      onBadSample,
    });
    const rows: Record<string, Float32Array[]> = Object.fromEntries(
      [...modalities, 'probabilities'].map((m) => [m, []]),
    );
    const index: EmbedIndex = {
      ids: [],
      splits: [],
      labels: [],
      columns: {},
      files: [],
      classNames: run.classNames,
      skipped: [],
    };
    const total = loader.batches(0).length;
    let done = 0;
    for await (const batch of loader.epoch(0)) {
      using b = batch;
      tidy(() =>
        noGrad(() => {
          const inputs = firstViews(b, modalities, config.memoryFormat);
          for (const m of modalities) rows[m].push(run.features(m, inputs[m]).cpu().toTypedArray() as Float32Array);
          if (run.logits) rows.probabilities.push(softmax(run.logits(inputs), 1).cpu().toTypedArray() as Float32Array);
        }),
      );
      const records = b.ids.map((id) => dataset.samples.find((s) => s.id === id)!);
      index.ids.push(...b.ids);
      index.splits.push(...records.map((r) => r.split));
      index.labels.push(...records.map((r) => r.label));
      onProgress?.(++done, total);
    }
    index.skipped = loader.skipped.map(({ id, file, message }) => ({ id, file, message }));
    await writeArrays(out, modalities, rows, index, perModality);
    return index;
  } finally {
    run.dispose();
    await cleanup();
  }
}

/** The dataset: opened from its path, or a manifest written to a temporary folder for loose files. */
async function openData(
  data: EmbedOptions['data'],
  modalities: readonly string[] | undefined,
): Promise<{ dataset: Dataset; cleanup: () => Promise<void> }> {
  if (typeof data === 'string') return { dataset: await openPath(data), cleanup: async () => undefined };
  if (!Array.isArray(data) || data.length === 0 || !data.every((f) => typeof f === 'string' && /\.tiff?$/i.test(f))) {
    throw invalidArg('embed', 'data', 'a dataset path or a non-empty list of .tif files', data);
  }
  if (!modalities || modalities.length !== 1)
    throw invalidArg('embed', 'modalities', 'exactly one modality, the one the files hold', modalities);
  const folder = await mkdtemp(join(tmpdir(), 'mmssl-embed-'));
  const features = data.map((file) => ({
    type: 'Feature',
    geometry: null,
    properties: { id: file, split: 'test', [modalities[0]]: resolve(file) },
  }));
  const manifest = join(folder, 'manifest.geojson');
  await writeFile(manifest, JSON.stringify({ type: 'FeatureCollection', features }));
  const cleanup = () => rm(folder, { recursive: true, force: true });
  return {
    dataset: await openManifest(manifest).catch(async (e: unknown) => {
      await cleanup();
      throw e;
    }),
    cleanup,
  };
}

const concat = (parts: Float32Array[]) => {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
};

async function writeArrays(
  out: string,
  modalities: string[],
  rows: Record<string, Float32Array[]>,
  index: EmbedIndex,
  perModality: boolean,
): Promise<void> {
  const n = index.ids.length;
  const widths = modalities.map((m) => concat(rows[m]).length / Math.max(1, n));
  const save = async (file: string, data: Float32Array, width: number) => {
    await writeFileAtomic(file, [encodeNpy({ dtype: 'float32', shape: [n, width], data })]);
    index.files.push(file);
  };
  if (perModality) {
    for (const [k, m] of modalities.entries()) {
      index.columns[m] = [0, widths[k]];
      await save(`${out}.${m}.npy`, concat(rows[m]), widths[k]);
    }
  } else {
    // fused: per sample, the modalities' features side by side
    const width = widths.reduce((a, b) => a + b, 0),
      fused = new Float32Array(n * width),
      all = modalities.map((m) => concat(rows[m]));
    let start = 0;
    modalities.forEach((m, k) => {
      index.columns[m] = [start, start + widths[k]];
      for (let i = 0; i < n; i++) fused.set(all[k].subarray(i * widths[k], (i + 1) * widths[k]), i * width + start);
      start += widths[k];
    });
    await save(`${out}.npy`, fused, width);
  }
  if (rows.probabilities.length > 0)
    await save(`${out}.probabilities.npy`, concat(rows.probabilities), index.classNames!.length);
  await writeFileAtomic(`${out}.index.json`, [new TextEncoder().encode(`${JSON.stringify(index)}\n`)]);
}
