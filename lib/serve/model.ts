/**
 * Inference for services: `loadEncoder` / `loadClassifier` load a run once into a pool of worker threads (each with
 * its own addon instance and model), then `embed` and `classify` answer per-modality inputs (files' bytes in the
 * METER-ML and GeoTIFF formats, or numbers with a shape) with the run's own normalisation and sizes, in eval mode
 * without autograd. The event loop never runs model work: requests are queued, collected into batches (up to
 * `maxBatch`, or whatever arrived within `maxDelayMs` of the oldest) and handed to the next free worker; a full queue
 * refuses at once (QueueFullError) rather than growing.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

import { checkInt, checkOptions, invalidArg, MmsslError } from '../errors.js';
import { describeRun, type RunDescription } from '../train/run.js';
import { InputError, type ModalityInput } from './inputs.js';
import type { BatchRequest, ItemReply, Kind, WorkerConfig } from './worker.js';

export { InputError } from './inputs.js';
export type { ModalityInput } from './inputs.js';

/** The queue is full: answer 503 and let the client retry. */
export class QueueFullError extends MmsslError {
  constructor(depth: number) {
    super('ERR_MMSSL_BUSY', `the inference queue is full (${depth} requests waiting): retry later`);
  }
}

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

interface Pending {
  kind: Kind;
  inputs: Record<string, ModalityInput>;
  enqueued: number;
  resolve: (reply: ItemReply) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

const OP = 'loadEncoder';
type PoolOptions = Required<Omit<InferenceOptions, 'modalities' | 'threadsPerWorker'>>;

export class InferenceModel {
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  readonly #inFlight = new Map<number, { batch: Pending[]; slot: Slot }>();
  readonly #options: PoolOptions;
  #nextId = 0;
  #timer?: NodeJS.Timeout;
  #closed = false;
  /** Called with each batch's size as it is handed to a worker (metrics). */
  onBatch?: (size: number) => void;

  private constructor(readonly description: RunDescription & { modalities: string[] }, readonly columns: Record<string, [number, number]>, options: PoolOptions) {
    this.#options = options;
  }

  /** Loads the run in `init` into the workers; resolves once every worker is ready. */
  static async load(init: string, options: InferenceOptions = {}): Promise<InferenceModel> {
    const { workers = 1, maxBatch = 16, maxDelayMs = 5, maxQueue = 256, modalities, threadsPerWorker } = checkOptions(OP, options);
    for (const [name, value, min] of [['workers', workers, 1], ['maxBatch', maxBatch, 1], ['maxDelayMs', maxDelayMs, 0], ['maxQueue', maxQueue, 1]] as const) {
      if (checkInt(OP, name, value) < min) throw invalidArg(OP, name, `an integer >= ${min}`, value);
    }
    const description = await describeRun(init);
    const absent = (modalities ?? []).filter((m) => !description.modalities.includes(m));
    if (absent.length > 0) throw invalidArg(OP, 'modalities', `among the run's (${description.modalities.join(', ')})`, absent.join(', '));
    const threads = threadsPerWorker ?? Math.max(1, Math.floor(availableParallelism() / workers));
    const config: WorkerConfig = { init, modalities, threads };
    const settled = await Promise.allSettled(Array.from({ length: workers }, () => startWorker(config)));
    const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map(({ worker }) => worker.terminate()));
      throw failed.reason;
    }
    const chosen = modalities ?? description.modalities;
    let at = 0;
    const columns = Object.fromEntries(chosen.map((m) => [m, [at, (at += started[0].featureDims[m])] as [number, number]]));
    const model = new InferenceModel({ ...description, modalities: chosen }, columns, { workers, maxBatch, maxDelayMs, maxQueue });
    for (const { worker } of started) model.#adopt(worker);
    return model;
  }

  #adopt(worker: Worker): void {
    const slot: Slot = { worker, busy: false };
    worker.on('message', (message: { id: number; replies?: ItemReply[]; failure?: string }) => this.#finish(message));
    worker.on('error', (e) => this.#failWorker(slot, e));
    worker.on('exit', (code) => { if (!this.#closed) this.#failWorker(slot, new Error(`inference worker exited with code ${code}`)); });
    this.#slots.push(slot);
  }

  get stats(): InferenceStats {
    return { queueDepth: this.#queue.length, running: this.#inFlight.size, workers: this.#slots.length };
  }

  /** The modalities' backbone features for one location's inputs. */
  async embed(inputs: Record<string, ModalityInput>): Promise<Embedding> {
    const reply = await this.#submit('embed', inputs);
    return { embedding: reply.embedding!, columns: this.columns };
  }

  /** Class probabilities for one location's inputs (a fine-tuned run loaded with all its modalities). */
  async classify(inputs: Record<string, ModalityInput>): Promise<Classification> {
    const classNames = this.description.classNames;
    if (!classNames || this.description.modalities.length !== this.#allModalities()) {
      throw new InputError('model', 'this model does not classify: load a fine-tuned run, with all its modalities');
    }
    const { probabilities } = await this.#submit('classify', inputs);
    const best = probabilities!.reduce((b, p, i, all) => (p > all[b] ? i : b), 0);
    return { probabilities: probabilities!, classNames, label: classNames[best] };
  }

  #allModalities(): number {
    return Object.keys(this.description.channels).length;
  }

  #submit(kind: Kind, inputs: Record<string, ModalityInput>): Promise<ItemReply & { ok: true }> {
    if (this.#closed) return Promise.reject(new Error('the inference model is closed'));
    if (inputs === null || typeof inputs !== 'object') return Promise.reject(new InputError('inputs', 'expected an object of inputs per modality'));
    if (this.#queue.length >= this.#options.maxQueue) return Promise.reject(new QueueFullError(this.#queue.length));
    return new Promise((resolve, reject) => {
      this.#queue.push({
        kind, inputs, enqueued: performance.now(), reject,
        resolve: (reply) => (reply.ok ? resolve(reply) : reject(reply.error.field ? new InputError(reply.error.field, reply.error.message.replace(`${reply.error.field}: `, '')) : new Error(reply.error.message))),
      });
      this.#dispatch();
    });
  }

  /** Hands batches to free workers: a full batch at once, a partial one once its oldest request has waited enough. */
  #dispatch(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const { maxBatch, maxDelayMs } = this.#options;
    for (const slot of this.#slots) {
      if (slot.busy || this.#queue.length === 0) continue;
      const waited = performance.now() - this.#queue[0].enqueued;
      const sameKind = this.#queue.filter((p) => p.kind === this.#queue[0].kind).length;
      if (sameKind < maxBatch && waited < maxDelayMs) break;
      const kind = this.#queue[0].kind;
      const batch: Pending[] = [];
      for (let i = 0; i < this.#queue.length && batch.length < maxBatch;) {
        if (this.#queue[i].kind === kind) batch.push(...this.#queue.splice(i, 1));
        else i++;
      }
      const id = this.#nextId++;
      slot.busy = true;
      this.#inFlight.set(id, { batch, slot });
      this.onBatch?.(batch.length);
      slot.worker.postMessage({ id, request: { kind, items: batch.map((p) => p.inputs) } satisfies BatchRequest });
    }
    if (this.#queue.length > 0 && this.#slots.some((s) => !s.busy)) {
      const wait = Math.max(0, maxDelayMs - (performance.now() - this.#queue[0].enqueued));
      this.#timer = setTimeout(() => this.#dispatch(), wait);
    }
  }

  #finish({ id, replies, failure }: { id: number; replies?: ItemReply[]; failure?: string }): void {
    const entry = this.#inFlight.get(id);
    if (!entry) return;
    this.#inFlight.delete(id);
    entry.slot.busy = false;
    entry.batch.forEach((p, i) => (replies ? p.resolve(replies[i]) : p.reject(new Error(`inference failed: ${failure}`))));
    this.#dispatch();
  }

  #failWorker(slot: Slot, error: Error): void {
    for (const [id, entry] of this.#inFlight) {
      if (entry.slot !== slot) continue;
      this.#inFlight.delete(id);
      entry.batch.forEach((p) => p.reject(error));
    }
    this.#slots.splice(this.#slots.indexOf(slot), 1);
    if (this.#slots.length === 0) this.#queue.splice(0).forEach((p) => p.reject(error));
  }

  /** Finishes the requests queued and running, then ends the workers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#queue.length > 0 || this.#inFlight.size > 0) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      this.#dispatch();
    }
    this.#closed = true;
    clearTimeout(this.#timer);
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A worker with the model loaded, and the widths of its modalities' features. */
function startWorker(config: WorkerConfig): Promise<{ worker: Worker; featureDims: Record<string, number> }> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: config });
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => { void worker.terminate(); reject(e); };
    worker.once('error', onError);
    worker.once('message', (message: { ready: { featureDims: Record<string, number> } }) => {
      worker.off('error', onError);
      resolve({ worker, featureDims: message.ready.featureDims });
    });
  });
}

/** Loads any run (pre-trained or fine-tuned) for `embed`. */
export function loadEncoder(init: string, options: InferenceOptions = {}): Promise<InferenceModel> {
  return InferenceModel.load(init, options);
}

/** Loads a fine-tuned run for `classify` (and `embed`); a pre-training run is refused. */
export async function loadClassifier(init: string, options: Omit<InferenceOptions, 'modalities'> = {}): Promise<InferenceModel> {
  const description = await describeRun(init);
  if (description.kind !== 'finetune') throw invalidArg('loadClassifier', 'init', 'a fine-tuned run (mmssl finetune --out)', init);
  return InferenceModel.load(init, options);
}
