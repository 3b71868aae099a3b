/**
 * A data worker: opens the dataset described by workerData once, then reads one modality of one sample per message
 * and posts the raster back, its pixels transferred rather than copied.
 */
import { parentPort, workerData } from 'node:worker_threads';

import type { Dataset, DatasetSpec } from './dataset.js';
import { openDataset } from './open.js';
import type { Reply } from './pool.js';

export interface ReadRequest {
  index: number;
  modality: string;
}

const dataset: Promise<Dataset> = openDataset(workerData as DatasetSpec);

async function answer({ index, modality }: ReadRequest): Promise<void> {
  try {
    const raster = await (await dataset).read(index, modality);
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
