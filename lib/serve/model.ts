/**
 * Inference for services: `loadEncoder` / `loadClassifier` load a run once into a pool of worker threads (each with
 * its own addon instance and model), then `embed` and `classify` answer per-modality inputs (files' bytes in the
 * METER-ML and GeoTIFF formats, or numbers with a shape) with the run's own normalisation and sizes, in eval mode
 * without autograd. The event loop never runs model work: requests are queued, collected into batches (up to
 * `maxBatch`, or whatever arrived within `maxDelayMs` of the oldest) and handed to the next free worker; a full queue
 * refuses at once (QueueFullError) rather than growing.
 */
import { availableParallelism } from 'node:os';

import { checkInt, checkOptions, InputError, invalidArg } from '../errors.js';
import { describeRun, type RunDescription } from '../runs/load.js';
import { WorkerPool } from '../workers/pool.js';
import type { ModalityInput } from './inputs.js';
import { checkPrecision, type Precision } from '../torch/amp.js';
import type { InferenceReply, InferenceRequest, Kind, WorkerConfig } from './worker.js';

export type { ModalityInput } from './inputs.js';

export interface InferenceOptions {
  /** Worker threads, each with the model (default 1). */
  workers?: number;
  /** LibTorch threads per worker (default: the cores shared among the workers). */
  threadsPerWorker?: number;
  /** Largest batch a worker runs at once (default 16). */
  maxBatch?: number;
  /** How long the oldest request may wait for others to batch with (default 5 ms). */
  maxDelayMs?: number;
  /** Requests waiting beyond this many are refused with QueueFullError (default 256). */
  maxQueue?: number;
  /** Load only these modalities' backbones (embed only). Default: all of the run's. */
  modalities?: string[];
  /** Inference at this precision (default '32'; see lib/torch/amp.ts), in each worker's thread. */
  precision?: Precision;
}

export interface Embedding {
  /** The modalities' backbone features side by side (what the classifier sees). */
  embedding: Float32Array;
  /** [start, end) of each modality's features in `embedding`. */
  columns: Record<string, [number, number]>;
}

export interface Classification {
  /** Class probabilities, in `classNames` order. */
  probabilities: Float32Array;
  classNames: string[];
  /** The most probable class. */
  label: string;
}

export interface InferenceStats {
  queueDepth: number;
  /** Batches being run by the workers now. */
  running: number;
  workers: number;
}

const OP = 'loadEncoder';

export class InferenceModel {
  readonly #pool: WorkerPool<InferenceRequest, InferenceReply>;

  private constructor(
    readonly description: RunDescription & { modalities: string[] },
    readonly columns: Record<string, [number, number]>,
    pool: WorkerPool<InferenceRequest, InferenceReply>,
  ) {
    this.#pool = pool;
  }

  /** Called with each batch's size as it is handed to a worker (metrics). */
  set onBatch(observe: ((size: number) => void) | undefined) {
    this.#pool.onBatch = observe;
  }

  /** Loads the run in `init` into the workers; resolves once every worker is ready. */
  static async load(init: string, options: InferenceOptions = {}): Promise<InferenceModel> {
    const {
      workers = 1,
      maxBatch = 16,
      maxDelayMs = 5,
      maxQueue = 256,
      modalities,
      threadsPerWorker,
      precision = '32',
    } = checkOptions(OP, options);
    checkPrecision(OP, precision, 'cpu');
    for (const [name, value, min] of [
      ['workers', workers, 1],
      ['maxBatch', maxBatch, 1],
      ['maxDelayMs', maxDelayMs, 0],
      ['maxQueue', maxQueue, 1],
    ] as const) {
      if (checkInt(OP, name, value) < min) throw invalidArg(OP, name, `an integer >= ${min}`, value);
    }
    const description = await describeRun(init);
    const absent = (modalities ?? []).filter((m) => !description.modalities.includes(m));
    if (absent.length > 0)
      throw invalidArg(OP, 'modalities', `among the run's (${description.modalities.join(', ')})`, absent.join(', '));
    const threads = threadsPerWorker ?? Math.max(1, Math.floor(availableParallelism() / workers));
    const config: WorkerConfig = { init, modalities, threads, precision };
    const pool = new WorkerPool<InferenceRequest, InferenceReply>(
      new URL('./worker.js', import.meta.url),
      workers,
      config,
      { maxBatch, maxDelayMs, maxQueue, groupOf: (r) => r.kind },
    );
    const ready = (await pool.ready().catch(async (e: unknown) => {
      await pool.close();
      throw e;
    })) as { featureDims: Record<string, number> }[];
    const chosen = modalities ?? description.modalities;
    let at = 0;
    const columns = Object.fromEntries(
      chosen.map((m) => [m, [at, (at += ready[0].featureDims[m])] as [number, number]]),
    );
    return new InferenceModel({ ...description, modalities: chosen }, columns, pool);
  }

  get stats(): InferenceStats {
    return this.#pool.stats;
  }

  /** The modalities' backbone features for one location's inputs. */
  async embed(inputs: Record<string, ModalityInput>): Promise<Embedding> {
    const reply = (await this.#submit('embed', inputs)) as { embedding: Float32Array };
    return { embedding: reply.embedding, columns: this.columns };
  }

  /** Class probabilities for one location's inputs (a fine-tuned run loaded with all its modalities). */
  async classify(inputs: Record<string, ModalityInput>): Promise<Classification> {
    const classNames = this.description.classNames;
    if (!classNames || this.description.modalities.length !== Object.keys(this.description.channels).length) {
      throw new InputError('model', 'this model does not classify: load a fine-tuned run, with all its modalities');
    }
    const { probabilities } = (await this.#submit('classify', inputs)) as { probabilities: Float32Array };
    const best = probabilities.reduce((b, p, i, all) => (p > all[b] ? i : b), 0);
    return { probabilities, classNames, label: classNames[best] };
  }

  #submit(kind: Kind, inputs: Record<string, ModalityInput>): Promise<InferenceReply> {
    if (inputs === null || typeof inputs !== 'object')
      return Promise.reject(new InputError('inputs', 'expected an object of inputs per modality'));
    return this.#pool.run({ kind, inputs });
  }

  /** Finishes the requests queued and running, then ends the workers. */
  async close(): Promise<void> {
    await this.#pool.close({ drain: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Loads any run (pre-trained or fine-tuned) for `embed`. */
export function loadEncoder(init: string, options: InferenceOptions = {}): Promise<InferenceModel> {
  return InferenceModel.load(init, options);
}

/** Loads a fine-tuned run for `classify` (and `embed`); a pre-training run is refused. */
export async function loadClassifier(
  init: string,
  options: Omit<InferenceOptions, 'modalities'> = {},
): Promise<InferenceModel> {
  const description = await describeRun(init);
  if (description.kind !== 'finetune')
    throw invalidArg('loadClassifier', 'init', 'a fine-tuned run (mmssl finetune --out)', init);
  return InferenceModel.load(init, options);
}
