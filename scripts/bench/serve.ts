/**
 * bench:serve — the classifier behind HTTP under load: `mmssl serve`'s server (a worker thread with the model,
 * dynamic batching) against the same model behind Python's ThreadingHTTPServer and PyTorch (scripts/bench/serve.py,
 * Debian's python3-torch, same threads, same weights), both answering POST /v1/classify with one location's
 * Sentinel-1 and Sentinel-2 values as JSON (2x72x72 and 4x72x72). The model: AlexNet per modality at torchvision's
 * width, fused, 6 classes (a fine-tuned run's layout, weights drawn from a seed). autocannon on loopback, a fixed
 * number of connections for a fixed time; the baseline runs first, alone. Reports requests/s and p50/p99 latency.
 * BENCH_SERVE_MAX_BATCH=1 turns our batching off, to show what it is worth.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import autocannon from 'autocannon';

import { nn, torch } from '../../lib/index.js';
import { freePort } from '../../lib/distributed/launch.js';
import { createServer } from '../../lib/serve/server.js';
import { resolveFinetuneConfig } from '../../lib/config/index.js';
import { RunFolder } from '../../lib/runs/folder.js';
import { saveFinetuned } from '../../lib/runs/load.js';
import { writeFileAtomic } from '../../lib/io/atomic.js';
import { costRow, PYTHON, pytorchVersion, rateRow, report } from './harness.js';

const SECONDS = Number(process.env.BENCH_SERVE_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_SERVE_CONNECTIONS ?? 8);
const THREADS = Number(process.env.BENCH_SERVE_THREADS ?? availableParallelism());
const CHANNELS = { s1: 2, s2: 4 };

/** A fine-tuned run folder: seeded weights, the release's value ranges as statistics. */
async function writeRun(out: string): Promise<void> {
  const config = resolveFinetuneConfig({ data: 'synthetic', modalities: Object.keys(CHANNELS) });
  torch.manualSeed(0);
  using model = new nn.models.FusionClassifier({ modalities: CHANNELS, numClasses: 6 });
  const normalization = {
    s1: { mean: [-12, -19], std: [3, 3] },
    s2: { mean: [1200, 1100, 1000, 2500], std: [500, 500, 500, 800] },
  };
  await writeFileAtomic(join(out, 'config.json'), [new TextEncoder().encode(JSON.stringify(config))]);
  await saveFinetuned(model, new RunFolder(out), config, normalization, { s1: [72, 72], s2: [72, 72] });
}

function body(): string {
  const values = (c: number, scale: number, offset: number) => ({
    data: Array.from({ length: c * 72 * 72 }, (_, i) => Math.round(offset + scale * Math.sin(i))),
    shape: [c, 72, 72],
  });
  return JSON.stringify({ inputs: { s1: values(2, 3, -15), s2: values(4, 500, 1500) } });
}

async function load(url: string, payload: string): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const result = await autocannon({
    url: `${url}/v1/classify`,
    method: 'POST',
    body: payload,
    headers: { 'content-type': 'application/json' },
    connections: CONNECTIONS,
    duration: SECONDS,
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.non2xx + result.errors,
  };
}

async function python(run: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(
    PYTHON,
    [new URL('../../../scripts/bench/serve.py', import.meta.url).pathname, run, String(port), String(THREADS)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`serve.py exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'mmssl-bench-serve-'));
  try {
    const run = join(scratch, 'run');
    await writeRun(run);
    const payload = body();
    const baseline = await python(run);
    const theirs = await load(baseline.url, payload).finally(() => baseline.child.kill());
    const server = await createServer({
      init: run,
      workers: 1,
      threadsPerWorker: THREADS,
      maxBatch: Number(process.env.BENCH_SERVE_MAX_BATCH ?? 16),
    });
    const url = await server.app.listen({ port: 0, host: '127.0.0.1' });
    const ours = await load(url, payload).finally(() => server.close());
    if (ours.errors + theirs.errors > 0)
      throw new Error(`failed requests: ours ${ours.errors}, baseline ${theirs.errors}`);
    const name = `PyTorch ${pytorchVersion()} behind ThreadingHTTPServer (serve.py)`;
    const c = `classify, JSON, ${CONNECTIONS} connections for ${SECONDS} s, ${THREADS} threads`;
    report('serve', [
      rateRow(c, 'throughput', 'requests/s', ours.rps, theirs.rps, name),
      costRow(c, 'latency p50', 'ms', ours.p50, theirs.p50, name),
      costRow(c, 'latency p99', 'ms', ours.p99, theirs.p99, name),
    ]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
