/**
 * bench:accumulate — a pre-training step at a global batch of B locations embedded in K chunks (GradCache,
 * `accumulate: K`) against the plain step at the same batch: peak extra resident memory of one step and its median
 * time. Both are ours: the plain step is what accumulation has to be measured against (gradient accumulation over K
 * smaller batches would cost less but is a different loss, with 1/K of the negatives). The step is bench:step's
 * (3 modalities x 2 views, channels-last). Each measurement runs in a process of its own, one at a time; memory with
 * glibc returning freed blocks at once (MEASURING_ENV), time with mmssl's defaults.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { torch } from '../../lib/index.js';
import { costRow, MEASURING_ENV, medianMs, peakExtraBytes, report } from './harness.js';
import { benchModel, benchStep } from './pretraining.js';

const BATCH = Number(process.env.BENCH_ACCUMULATE_BATCH ?? 256);
const CHUNKS = Number(process.env.BENCH_ACCUMULATE_CHUNKS ?? 8);
const REPEATS = Number(process.env.BENCH_ACCUMULATE_REPEATS ?? 3);
type Mode = 'time' | 'memory';

/** In a child process: milliseconds ('time') or peak extra bytes ('memory') of one step, after a warm-up step. */
function measure(chunks: number, mode: Mode): number {
  using model = benchModel();
  using bench = benchStep(model, BATCH, { memoryFormat: 'channelsLast', accumulate: chunks });
  bench.step();
  return mode === 'time' ? medianMs(bench.step, REPEATS) : peakExtraBytes(bench.step);
}

function child(chunks: number, mode: Mode): number {
  const args = [fileURLToPath(import.meta.url), '--child', String(chunks), mode];
  const env = { ...process.env, ...(mode === 'memory' ? MEASURING_ENV : {}) };
  return Number(execFileSync(process.execPath, args, { encoding: 'utf8', env }));
}

function main(): void {
  const [plain, chunked] = [1, CHUNKS].map((k) => ({ memory: child(k, 'memory'), time: child(k, 'time') }));
  const c = `batch ${BATCH} locations (${6 * BATCH} views), ${CHUNKS} chunks, ${torch.getNumThreads()} threads`;
  const baseline = "mmssl's plain step at the same batch (accumulate 1)";
  report('accumulate', [
    costRow(c, 'peak memory', 'MiB', chunked.memory / 2 ** 20, plain.memory / 2 ** 20, baseline),
    costRow(c, 'time', 's', chunked.time / 1000, plain.time / 1000, baseline),
  ]);
}

const at = process.argv.indexOf('--child');
if (at >= 0) process.stdout.write(String(measure(Number(process.argv[at + 1]), process.argv[at + 2] as Mode)));
else main();
