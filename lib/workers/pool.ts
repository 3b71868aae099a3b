/**
 * `WorkerPool<Request, Reply>`: a fixed set of worker threads running one script (which answers through
 * `serveRequests`, lib/workers/serve.ts), a queue, and a batching policy that decides which queued requests a free
 * worker gets together: one at a time for the data loader's reads, up to `maxBatch` of one kind within `maxDelayMs`
 * for inference. `run(request)` resolves with the worker's reply or rejects with its error, rebuilt in its class
 * (errors cross as data: lib/errors.ts). A full queue refuses at once (QueueFullError). A worker that dies fails the
 * requests it held with a WorkerExitError (an InternalError) and is replaced; one that dies before it is ready fails the pool. Idle
 * workers keep Node alive only while requests are outstanding, so a forgotten pool never hangs a process.
 */
import { Worker } from 'node:worker_threads';

import { type ErrorData, fromErrorData, InternalError, QueueFullError, WorkerExitError } from '../errors.js';

/** How queued requests are grouped for a worker. */
export interface BatchingPolicy<Request> {
  /** Requests a worker takes at once (default 1). */
  maxBatch?: number;
  /** How long the oldest request may wait for others to fill a batch (default 0: go at once). */
  maxDelayMs?: number;
  /** Requests are batched only with others of the same group (default: all one group). */
  groupOf?: (request: Request) => string;
  /** Requests waiting beyond this many are refused with QueueFullError (default: no bound). */
  maxQueue?: number;
}

/** One request's outcome, as a worker posts it. */
export type Settled<Reply> = { ok: true; value: Reply } | { ok: false; error: ErrorData };

/** What a worker posts: that it is ready (with what it wants to say) or could not start, or a batch's outcomes. */
export type WorkerMessage<Reply> =
  | { ready: unknown }
  | { unready: ErrorData }
  | { id: number; replies: Settled<Reply>[] }
  | { id: number; failure: ErrorData };

interface Pending<Request, Reply> {
  request: Request;
  enqueued: number;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
}

interface Slot<Request, Reply> {
  worker: Worker;
  batch?: { id: number; items: Pending<Request, Reply>[]; done: () => void; settled: Promise<void> };
}

export class WorkerPool<Request, Reply> {
  readonly #script: URL;
  readonly #workerData: unknown;
  readonly #policy: Required<Omit<BatchingPolicy<Request>, 'groupOf'>> & Pick<BatchingPolicy<Request>, 'groupOf'>;
  readonly #slots: Slot<Request, Reply>[] = [];
  readonly #queue: Pending<Request, Reply>[] = [];
  readonly #ready: Promise<unknown>[] = [];
  #nextId = 0;
  #timer?: NodeJS.Timeout;
  #closed = false;
  #failure?: Error;
  /** Called with each batch's size as it is handed to a worker (metrics). */
  onBatch?: (size: number) => void;

  /** Starts `size` workers of `script`, each given `workerData`; `ready()` resolves once all of them are. */
  constructor(script: URL, size: number, workerData: unknown, policy: BatchingPolicy<Request> = {}) {
    this.#script = script;
    this.#workerData = workerData;
    const { maxBatch = 1, maxDelayMs = 0, maxQueue = Infinity, groupOf } = policy;
    this.#policy = { maxBatch, maxDelayMs, maxQueue, groupOf };
    for (let i = 0; i < size; i++) this.#slots.push(this.#start());
  }

  /** What each worker said when it became ready; rejects with the error of a worker that failed to start. */
  ready(): Promise<unknown[]> {
    return Promise.all(this.#ready);
  }

  get size(): number {
    return this.#slots.length;
  }

  get stats(): { queueDepth: number; running: number; workers: number } {
    return {
      queueDepth: this.#queue.length,
      running: this.#slots.filter((s) => s.batch).length,
      workers: this.#slots.length,
    };
  }

  #start(): Slot<Request, Reply> {
    const slot: Slot<Request, Reply> = { worker: new Worker(this.#script, { workerData: this.#workerData }) };
    let ready = false;
    const started = new Promise<unknown>((resolve, reject) => {
      slot.worker.on('message', (message: WorkerMessage<Reply>) => {
        if ('ready' in message) {
          ready = true;
          if (!slot.batch) slot.worker.unref(); // starting kept Node alive; idle, it no longer does
          resolve(message.ready);
          this.#dispatch();
        } else if ('unready' in message) {
          const error = fromErrorData(message.unready);
          reject(error);
          this.#died(slot, error, false);
          void slot.worker.terminate();
        } else {
          this.#finish(slot, message);
        }
      });
      const died = (error: Error) => {
        if (this.#closed || !this.#slots.includes(slot)) return;
        if (!ready) reject(error);
        this.#died(slot, error, ready);
      };
      slot.worker.on('error', died);
      slot.worker.on('exit', (code) =>
        died(
          new WorkerExitError(
            `a worker of ${this.#script.pathname.split('/').pop()} exited unexpectedly with code ${code}`,
          ),
        ),
      );
    });
    started.catch(() => undefined); // awaited through ready(): no unhandled rejection when nobody asks
    this.#ready.push(started);
    return slot;
  }

  /** Queues `request`; resolves with its reply. */
  run(request: Request): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new InternalError('the worker pool is closed'));
    if (this.#queue.length >= this.#policy.maxQueue) return Promise.reject(new QueueFullError(this.#queue.length));
    return new Promise<Reply>((resolve, reject) => {
      this.#queue.push({ request, enqueued: performance.now(), resolve, reject });
      this.#dispatch();
    });
  }

  /** The next batch: up to maxBatch queued requests of the oldest one's group, in queue order. */
  #takeBatch(): Pending<Request, Reply>[] {
    const { maxBatch, groupOf } = this.#policy;
    const group = groupOf?.(this.#queue[0].request);
    const batch: Pending<Request, Reply>[] = [];
    for (let i = 0; i < this.#queue.length && batch.length < maxBatch;) {
      if (group === undefined || groupOf!(this.#queue[i].request) === group) batch.push(...this.#queue.splice(i, 1));
      else i++;
    }
    return batch;
  }

  /** Hands batches to free workers: a full batch at once, a partial one once its oldest request has waited enough. */
  #dispatch(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const { maxBatch, maxDelayMs, groupOf } = this.#policy;
    for (const slot of this.#slots) {
      if (slot.batch || this.#queue.length === 0) continue;
      const waited = performance.now() - this.#queue[0].enqueued;
      const first = groupOf?.(this.#queue[0].request);
      const available =
        first === undefined ? this.#queue.length : this.#queue.filter((p) => groupOf!(p.request) === first).length;
      if (available < maxBatch && waited < maxDelayMs) break;
      const items = this.#takeBatch();
      let done!: () => void;
      const settled = new Promise<void>((resolve) => {
        done = resolve;
      });
      slot.batch = { id: this.#nextId++, items, done, settled };
      slot.worker.ref();
      this.onBatch?.(items.length);
      slot.worker.postMessage({ id: slot.batch.id, requests: items.map((p) => p.request) });
    }
    if (this.#queue.length > 0 && this.#slots.some((s) => !s.batch)) {
      this.#timer = setTimeout(
        () => this.#dispatch(),
        Math.max(0, maxDelayMs - (performance.now() - this.#queue[0].enqueued)),
      );
    }
  }

  #finish(
    slot: Slot<Request, Reply>,
    message: { id: number; replies: Settled<Reply>[] } | { id: number; failure: ErrorData },
  ): void {
    const batch = slot.batch;
    if (!batch || batch.id !== message.id) return;
    slot.batch = undefined;
    batch.done();
    slot.worker.unref();
    batch.items.forEach((p, i) => {
      if ('failure' in message) return p.reject(fromErrorData(message.failure));
      const reply = message.replies[i];
      if (reply.ok) p.resolve(reply.value);
      else p.reject(fromErrorData(reply.error));
    });
    this.#dispatch();
  }

  /** A worker died: its requests fail; it is replaced, unless it never became ready (then nothing would work). */
  #died(slot: Slot<Request, Reply>, error: Error, wasReady: boolean): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0) return; // 'error' and 'exit' both report one death
    slot.batch?.items.forEach((p) => p.reject(error));
    slot.batch?.done();
    slot.batch = undefined;
    if (!wasReady) {
      this.#failure ??= error;
      this.#slots.splice(index, 1);
      if (this.#slots.length === 0) this.#queue.splice(0).forEach((p) => p.reject(error));
      return;
    }
    this.#slots[index] = this.#start();
  }

  /** The batches workers run now (each dispatches the next queued one as it finishes). */
  #running(): Promise<void>[] {
    return this.#slots.flatMap((s) => (s.batch ? [s.batch.settled] : []));
  }

  /**
   * Ends the workers. With `drain`, the queued requests are answered first; otherwise they are refused and only the
   * running ones finish (a worker terminated inside LibTorch could be left stuck, its exit never reported).
   */
  async close(options: { drain?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    if (!options.drain) this.#queue.splice(0).forEach((p) => p.reject(new InternalError('the worker pool was closed')));
    for (let running = this.#running(); running.length > 0; running = this.#running()) await Promise.race(running);
    this.#closed = true;
    clearTimeout(this.#timer);
    // Each is ref'd until it exits, so that the exit keeps Node alive until reported.
    await Promise.all(
      this.#slots.map((s) => {
        s.worker.ref();
        return s.worker.terminate();
      }),
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Like Promise.all, but waits for every promise and rejects with the first failure in the order given, not the first
 * in time: a sample with several unreadable files reports the same one whichever worker answers first.
 */
export async function allInOrder<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
