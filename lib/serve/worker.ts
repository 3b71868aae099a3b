/**
 * An inference worker thread (lib/serve/model.ts): loads the run once, then answers batches of requests. Each item
 * is decoded, checked and resampled here (lib/serve/inputs.ts), off the main thread; items whose inputs have the
 * same shapes go through the model together, in eval mode without autograd.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { softmax } from '../nn/functional.js';
import { MIN_INPUT_SIZE } from '../nn/models/multimodal.js';
import { noGrad } from '../torch/autograd.js';
import { cat, fromBuffer } from '../torch/creation.js';
import { setNumThreads } from '../torch/runtime.js';
import { tidy } from '../torch/scope.js';
import type { Raster } from '../data/dataset.js';
import { standardize } from '../data/stats.js';
import { loadRun } from '../train/run.js';
import { InputError, type ModalityInput, prepareInput } from './inputs.js';

export interface WorkerConfig {
  init: string;
  modalities?: string[];
  threads: number;
}

export type Kind = 'embed' | 'classify';
export interface BatchRequest {
  kind: Kind;
  items: Record<string, ModalityInput>[];
}
export type ItemReply =
  | { ok: true; embedding?: Float32Array; probabilities?: Float32Array }
  | { ok: false; error: { field?: string; message: string } };

const config = workerData as WorkerConfig;
setNumThreads(config.threads);
const run = await loadRun(config.init, { modalities: config.modalities });

/** The model's inputs for items of one shape: per modality, standardised and stacked. */
function batchOf(rasters: Record<string, Raster>[]): Record<string, ReturnType<typeof cat>> {
  return Object.fromEntries(run.modalities.map((m) => {
    const [c, h, w] = rasters[0][m].shape;
    const x = cat(rasters.map((r) => fromBuffer(r[m].data, [1, c, h, w])));
    return [m, standardize(x, run.normalization[m]).contiguous({ memoryFormat: run.memoryFormat })];
  }));
}

async function answer({ kind, items }: BatchRequest): Promise<ItemReply[]> {
  const replies: ItemReply[] = new Array(items.length);
  const prepared = await Promise.all(items.map(async (inputs, i) => {
    try {
      const unknown = Object.keys(inputs).find((m) => !run.modalities.includes(m));
      if (unknown) throw new InputError(unknown, `not a modality of this model (${run.modalities.join(', ')})`);
      const missing = run.modalities.find((m) => inputs[m] === undefined);
      if (missing) throw new InputError(missing, 'missing: the model needs every one of its modalities');
      const entries = await Promise.all(run.modalities.map(async (m) => [m, await prepareInput(m, inputs[m], { channels: run.channels[m], size: run.sizes[m], minSize: MIN_INPUT_SIZE[run.backbones[m]] })] as const));
      return Object.fromEntries(entries) as Record<string, Raster>;
    } catch (e) {
      replies[i] = { ok: false, error: { field: (e as InputError).field, message: (e as Error).message } };
      return undefined;
    }
  }));
  // Items of the same shapes share a forward pass.
  const groups = new Map<string, number[]>();
  prepared.forEach((r, i) => {
    if (!r) return;
    const key = run.modalities.map((m) => r[m].shape.join('x')).join('|');
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  for (const indices of groups.values()) {
    const out = tidy(() => noGrad(() => {
      const inputs = batchOf(indices.map((i) => prepared[i]!));
      if (kind === 'classify') return { probabilities: softmax(run.logits!(inputs), 1).toTypedArray() as Float32Array };
      return { embedding: cat(run.modalities.map((m) => run.features(m, inputs[m])), 1).toTypedArray() as Float32Array };
    }));
    const values = out.probabilities ?? out.embedding!;
    const width = values.length / indices.length;
    indices.forEach((i, k) => {
      const row = values.slice(k * width, (k + 1) * width);
      replies[i] = kind === 'classify' ? { ok: true, probabilities: row } : { ok: true, embedding: row };
    });
  }
  return replies;
}

parentPort!.on('message', (message: { id: number; request: BatchRequest }) => {
  answer(message.request).then(
    (replies) => parentPort!.postMessage({ id: message.id, replies }),
    (e: unknown) => parentPort!.postMessage({ id: message.id, failure: (e as Error).message }),
  );
});
parentPort!.postMessage({ ready: { featureDims: run.featureDims } });
