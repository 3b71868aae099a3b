/**
 * A fixed pool of worker threads running one script, with a task queue: `run(message)` resolves with the worker's
 * reply. Workers keep the process alive only while tasks are outstanding, so a forgotten pool never hangs Node;
 * `close()` (or `await using`) ends them.
 */
import { Worker } from 'node:worker_threads';

import { FileError } from '../errors.js';

interface Task {
  message: unknown;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** Settles (never rejects) when the task does. */
  settled: Promise<void>;
}

interface Slot {
  worker: Worker;
  task?: Task;
}

/** What a worker posts back: a result, or an error as plain data (errors do not survive structured cloning whole). */
export type Reply = { ok: true; value: unknown } | { ok: false; error: { name: string; message: string; code?: string; path?: string } };

/** A worker's error as the FileError it was (with its code and path), or the error itself. */
export function asFileError(error: unknown): Error {
  const e = error as Error & { path?: string; code?: string };
  return e.code === 'ERR_MMSSL_IO' && e.path ? new FileError(e.path, e.message.replace(`${e.path}: `, '')) : e;
}

export class WorkerPool {
  readonly #slots: Slot[];
  readonly #queue: Task[] = [];
  #closed = false;
  #failure?: Error;

  constructor(script: URL, size: number, workerData: unknown) {
    this.#slots = Array.from({ length: size }, () => this.#start(script, workerData));
  }

  get size(): number {
    return this.#slots.length;
  }

  #start(script: URL, workerData: unknown): Slot {
    const slot: Slot = { worker: new Worker(script, { workerData }) };
    slot.worker.unref();
    slot.worker.on('message', (reply: Reply) => this.#finish(slot, reply));
    slot.worker.on('error', (error) => this.#fail(error));
    slot.worker.on('exit', (code) => {
      if (!this.#closed) this.#fail(new Error(`data worker exited unexpectedly with code ${code}`));
    });
    return slot;
  }

  /** Queues `message` for the next free worker. */
  run<T>(message: unknown): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error('the worker pool is closed'));
    let task!: Task;
    const result = new Promise<T>((resolve, reject) => {
      task = { message, resolve: resolve as (value: unknown) => void, reject, settled: Promise.resolve() };
    });
    task.settled = result.then(() => undefined, () => undefined);
    this.#queue.push(task);
    this.#dispatch();
    return result;
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (slot.task || this.#queue.length === 0) continue;
      slot.task = this.#queue.shift()!;
      slot.worker.ref();
      slot.worker.postMessage(slot.task.message);
    }
  }

  #finish(slot: Slot, reply: Reply): void {
    const task = slot.task!;
    slot.task = undefined;
    slot.worker.unref();
    if (reply.ok) task.resolve(reply.value);
    else task.reject(Object.assign(new Error(reply.error.message), reply.error));
    this.#dispatch();
  }

  /** A worker crashed: every task, running or queued, fails with the cause, and so does every later one. */
  #fail(error: Error): void {
    this.#failure ??= error;
    const tasks = [...this.#slots.flatMap((s) => (s.task ? [s.task] : [])), ...this.#queue.splice(0)];
    this.#slots.forEach((s) => { s.task = undefined; });
    tasks.forEach((t) => t.reject(error));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.splice(0).forEach((t) => t.reject(new Error('the worker pool was closed')));
    // Running reads finish first: a worker terminated inside LibTorch could be left stuck, its exit never reported,
    // and close() would never settle. Each is ref'd until it exits, so that the exit keeps Node alive till reported.
    await Promise.all(this.#slots.flatMap((s) => (s.task ? [s.task.settled] : [])));
    await Promise.all(this.#slots.map((s) => {
      s.worker.ref();
      return s.worker.terminate();
    }));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
