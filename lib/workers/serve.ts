/**
 * The worker side of `WorkerPool` (lib/workers/pool.ts): `serveRequests(answer)` answers each batch of requests the
 * pool posts, one outcome per request (`settle`), errors as data (lib/errors.ts), after posting that the worker is
 * ready. A batch whose answer throws fails as a whole.
 */
import { parentPort, type TransferListItem } from 'node:worker_threads';

import { toErrorData } from '../errors.js';
import type { Settled, WorkerMessage } from './pool.js';

/** What `answer` returns: the outcomes, and buffers to transfer rather than copy. */
export interface Answer<Reply> {
  replies: Settled<Reply>[];
  transfer?: TransferListItem[];
}

/** The outcome of `run()`: its value, or its error as data. */
export async function settle<T>(run: () => T | Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (e) {
    return { ok: false, error: toErrorData(e) };
  }
}

/**
 * Answers the pool's batches with `answer` once `ready` (what this worker says on starting: loading a model, opening
 * a dataset) has resolved; if it rejects, the pool is told why (its ready() rejects with that error) and nothing is
 * answered.
 */
export async function serveRequests<Request, Reply>(
  answer: (requests: Request[]) => Promise<Answer<Reply>>,
  ready: unknown = null,
): Promise<void> {
  const port = parentPort!;
  const post = (message: WorkerMessage<Reply>, transfer?: TransferListItem[]) => port.postMessage(message, transfer);
  let said: unknown;
  try {
    said = await ready;
  } catch (e) {
    return post({ unready: toErrorData(e) });
  }
  port.on('message', ({ id, requests }: { id: number; requests: Request[] }) => {
    answer(requests).then(
      ({ replies, transfer }) => post({ id, replies }, transfer),
      (e: unknown) => post({ id, failure: toErrorData(e) }),
    );
  });
  post({ ready: said });
}
