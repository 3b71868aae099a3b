// The addon is context-aware: each worker thread loads its own instance, with its own tensor table.
import test from 'ava';
import { Worker } from 'node:worker_threads';

import { torch } from '../lib/index.js';
import { sampleError } from '../lib/data/loader.js';
import { FileError, WorkerExitError } from '../lib/errors.js';
import { WorkerPool } from '../lib/workers/pool.js';

const script = new URL('./fixtures/worker.js', import.meta.url);

function run(workerData: object): Promise<{ loss: number; weights: number[][]; live: number; threads: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { workerData });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

test('several worker threads train at once, each with its own addon instance', async (t) => {
  const results = await Promise.all([1, 2, 3].map((seed) => run({ seed, steps: 200 })));
  for (const r of results) {
    t.true(r.loss < 1e-4, `loss ${r.loss}`);
    r.weights[0].forEach((w, i) => t.true(Math.abs(w - [1, -2, 0.5][i]) < 1e-2));
    t.is(r.live, 3, 'only w, x and y are live in the worker');
    t.true(r.threads >= 1);
  }
  using x = torch.ones([2]);
  t.is(x.sum().item(), 2, 'the main thread still works');
});

test('terminating a busy worker leaves the process and other workers healthy', async (t) => {
  const busy = new Worker(script, { workerData: { seed: 4, steps: 1e9 } });
  await new Promise((r) => setTimeout(r, 300));
  await busy.terminate();
  const r = await run({ seed: 5, steps: 50 });
  t.true(Number.isFinite(r.loss));
  using y = torch.arange(4);
  t.deepEqual(y.toArray(), [0, 1, 2, 3]);
});

test('a pool worker that dies mid-request fails that request with a WorkerExitError, and a new worker serves the rest', async (t) => {
  const pool = new WorkerPool<string, string>(new URL('./fixtures/exiting-worker.js', import.meta.url), 1, null);
  t.teardown(() => pool.close());
  await pool.ready();
  const error = await t.throwsAsync(pool.run('exit'), { instanceOf: WorkerExitError, code: 'ERR_MMSSL_INTERNAL' });
  t.regex(error!.message, /exited unexpectedly with code 3/);
  t.is(await pool.run('after'), 'after');
  // The loader makes the death the sample's FileError, which onBadSample 'skip' skips like any unreadable file.
  const asSample = sampleError(error, 'site-7 (naip)') as FileError;
  t.true(asSample instanceof FileError);
  t.is(asSample.path, 'site-7 (naip)');
  t.regex(asSample.message, /^site-7 \(naip\): killed the worker decoding it \(a worker of exiting-worker\.js exited/);
  const other = new Error('not a death');
  t.is(sampleError(other, 'x'), other);
});
