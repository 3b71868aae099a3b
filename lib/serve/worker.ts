/**
 * An inference worker thread (lib/serve/model.ts): loads the run once, then answers batches of requests. Each item
 * is decoded, checked and resampled here (lib/serve/inputs.ts), off the main thread; items whose inputs have the
 * same shapes go through the model together, in eval mode without autograd.
 */
import { workerData } from 'node:worker_threads';

import { softmax } from '../nn/functional.js';
import { MIN_INPUT_SIZE } from '../nn/models/multimodal.js';
import { noGrad } from '../torch/autograd.js';
import { cat, fromBuffer } from '../torch/creation.js';
import { setNumThreads } from '../torch/runtime.js';
import { tidy } from '../torch/scope.js';
import type { Raster } from '../data/dataset.js';
import { standardize } from '../data/stats.js';
import { loadRun } from '../runs/load.js';
import type { Precision } from '../torch/amp.js';
import { InputError } from '../errors.js';
import type { Settled } from '../workers/pool.js';
import { type Answer, serveRequests, settle } from '../workers/serve.js';
import { type ModalityInput, prepareInput } from './inputs.js';

export interface WorkerConfig {
  init: string;
  modalities?: string[];
  threads: number;
  precision: Precision;
}

export type Kind = 'embed' | 'classify';
/** One location's inputs, to embed or classify (a batch holds requests of one kind: the pool groups them so). */
export interface InferenceRequest {
  kind: Kind;
  inputs: Record<string, ModalityInput>;
}
export type InferenceReply = { embedding: Float32Array } | { probabilities: Float32Array };

const config = workerData as WorkerConfig;
setNumThreads(config.threads);
const run = await loadRun(config.init, { modalities: config.modalities, precision: config.precision });

/** The model's inputs for items of one shape: per modality, standardised and stacked. */
function batchOf(rasters: Record<string, Raster>[]): Record<string, ReturnType<typeof cat>> {
  return Object.fromEntries(
    run.modalities.map((m) => {
      const [c, h, w] = rasters[0][m].shape;
      const x = cat(rasters.map((r) => fromBuffer(r[m].data, [1, c, h, w])));
      return [m, standardize(x, run.normalization[m]).contiguous({ memoryFormat: run.memoryFormat })];
    }),
  );
}

/** Every modality of one request's inputs, decoded, checked and resampled; an InputError naming the field if not. */
async function prepare(inputs: Record<string, ModalityInput>): Promise<Record<string, Raster>> {
  const unknown = Object.keys(inputs).find((m) => !run.modalities.includes(m));
  if (unknown) throw new InputError(unknown, `not a modality of this model (${run.modalities.join(', ')})`);
  const missing = run.modalities.find((m) => inputs[m] === undefined);
  if (missing) throw new InputError(missing, 'missing: the model needs every one of its modalities');
  const entries = await Promise.all(
    run.modalities.map(
      async (m) =>
        [
          m,
          await prepareInput(m, inputs[m], {
            channels: run.channels[m],
            size: run.sizes[m],
            minSize: MIN_INPUT_SIZE[run.backbones[m]],
          }),
        ] as const,
    ),
  );
  return Object.fromEntries(entries) as Record<string, Raster>;
}

async function answer(requests: InferenceRequest[]): Promise<Answer<InferenceReply>> {
  const kind = requests[0].kind;
  const prepared = await Promise.all(requests.map((r) => settle(() => prepare(r.inputs))));
  const replies: Settled<InferenceReply>[] = new Array(requests.length);
  // Items of the same shapes share a forward pass.
  const groups = new Map<string, number[]>();
  prepared.forEach((p, i) => {
    if (!p.ok) return void (replies[i] = p);
    const key = run.modalities.map((m) => p.value[m].shape.join('x')).join('|');
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  for (const indices of groups.values()) {
    const values = tidy(() =>
      noGrad(() => {
        const inputs = batchOf(indices.map((i) => (prepared[i] as { value: Record<string, Raster> }).value));
        const out =
          kind === 'classify'
            ? softmax(run.logits!(inputs), 1)
            : cat(
                run.modalities.map((m) => run.features(m, inputs[m])),
                1,
              );
        return out.toTypedArray() as Float32Array;
      }),
    );
    const width = values.length / indices.length;
    indices.forEach((i, k) => {
      const row = values.slice(k * width, (k + 1) * width);
      replies[i] = { ok: true, value: kind === 'classify' ? { probabilities: row } : { embedding: row } };
    });
  }
  return { replies };
}

await serveRequests(answer, { featureDims: run.featureDims });
