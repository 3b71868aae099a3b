/**
 * A data worker (lib/workers/pool.ts): opens the dataset described by workerData once, then reads one modality of one
 * sample per request, resizes it if asked (antialiased bilinear, LibTorch's: the addon is context-aware), and posts
 * the raster back, its pixels transferred rather than copied. Resizing here, beside the decoding, keeps
 * full-resolution NAIP tiles off the main thread.
 */
import { workerData } from 'node:worker_threads';

import { serveRequests, settle } from '../workers/serve.js';
import type { Dataset, DatasetSpec, Raster } from './dataset.js';
import { openDataset } from './open.js';
import { resized } from './pixels.js';

export interface ReadRequest {
  index: number;
  modality: string;
  /** Output [H, W], when it differs from the modality's grid. */
  size?: [number, number];
}

async function read(dataset: Dataset, { index, modality, size }: ReadRequest): Promise<Raster> {
  const raw = await dataset.read(index, modality);
  const raster = size ? resized(raw, size) : raw;
  // Transfer only a buffer the raster owns whole: a view into a larger one would detach its neighbours.
  const owned = raster.data.byteOffset === 0 && raster.data.byteLength === raster.data.buffer.byteLength;
  return owned ? raster : { ...raster, data: raster.data.slice() };
}

const dataset = await openDataset(workerData as DatasetSpec).catch((e: unknown) => e as Error);
await serveRequests<ReadRequest, Raster>(
  async (requests) => {
    const replies = await Promise.all(requests.map((r) => settle(() => read(dataset as Dataset, r))));
    return { replies, transfer: replies.flatMap((r) => (r.ok ? [r.value.data.buffer as ArrayBuffer] : [])) };
  },
  dataset instanceof Error ? Promise.reject(dataset) : null,
);
