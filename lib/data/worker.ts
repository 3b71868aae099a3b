/**
 * A data worker: opens the dataset described by workerData once, then reads one modality of one sample per message,
 * resizes it if asked (antialiased bilinear, LibTorch's: the addon is context-aware), and posts the raster back, its
 * pixels transferred rather than copied. Resizing here, beside the decoding, keeps full-resolution NAIP tiles off
 * the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';

import type { Dataset, DatasetSpec } from './dataset.js';
import { openDataset } from './open.js';
import { resized } from './pixels.js';
import type { Reply } from './pool.js';

export interface ReadRequest {
  index: number;
  modality: string;
  /** Output [H, W], when it differs from the modality's grid. */
  size?: [number, number];
}

const dataset: Promise<Dataset> = openDataset(workerData as DatasetSpec);

async function answer({ index, modality, size }: ReadRequest): Promise<void> {
  try {
    const raw = await (await dataset).read(index, modality);
    const raster = size ? resized(raw, size) : raw;
    // Transfer only a buffer the raster owns whole: a view into a larger one would detach its neighbours.
    const owned = raster.data.byteOffset === 0 && raster.data.byteLength === raster.data.buffer.byteLength;
    const data = owned ? raster.data : raster.data.slice();
    const reply: Reply = { ok: true, value: { ...raster, data } };
    parentPort!.postMessage(reply, [data.buffer as ArrayBuffer]);
  } catch (e) {
    const { name = 'Error', message = String(e), code, path } = e as { name?: string; message?: string; code?: string; path?: string };
    parentPort!.postMessage({ ok: false, error: { name, message, code, path } } satisfies Reply);
  }
}

parentPort!.on('message', (request: ReadRequest) => void answer(request));
