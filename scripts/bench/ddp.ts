/**
 * bench:ddp — data-parallel pre-training on this machine: the step of bench:step (3 modalities x 2 views, AlexNet,
 * AlexNet, ResNet18, global batch 32) on 1 process with every core, and on 2 processes with half the cores each,
 * Gloo on loopback and global negatives; ours (scripts/bench/ddp-rank.ts) against PyTorch (scripts/bench/ddp.py:
 * DistributedDataParallel, torch.distributed.nn's all_gather), same initial weights, baselines first. PyTorch's
 * SyncBatchNorm refuses CPU tensors, so its BatchNorm is per process: ours is measured both with synchronised
 * BatchNorm (our default, more collectives) and per process like it. Also the share of the step distribution costs:
 * 1 - (the same per-rank step without a group) / (the distributed step), on both sides; and ours measured directly
 * (time waiting in collectives, on stderr).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

import { io } from '../../lib/index.js';
import { freePort } from '../../lib/distributed/launch.js';
import { costRow, PYTHON, pytorchVersion, rateRow, report } from './harness.js';
import { benchModel } from './pretraining.js';

const BATCH = Number(process.env.BENCH_DDP_BATCH ?? 32);
const REPEATS = Number(process.env.BENCH_DDP_REPEATS ?? 5);
const CORES = availableParallelism();

/** Runs `argv` as `nproc` ranks with `threads` each; resolves with rank 0's JSON line. */
async function ranks<T>(argv: string[], nproc: number, threads: number): Promise<T> {
  const port = String(await freePort());
  const outputs = await Promise.all(
    Array.from(
      { length: nproc },
      (_, rank) =>
        new Promise<string>((resolve, reject) => {
          const env = {
            ...process.env,
            RANK: String(rank),
            WORLD_SIZE: String(nproc),
            MASTER_ADDR: '127.0.0.1',
            MASTER_PORT: port,
            MMSSL_NUM_THREADS: String(threads),
            BENCH_THREADS: String(threads),
          };
          const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          child.stdout.on('data', (d) => {
            out += d;
          });
          child.on('exit', (code) =>
            code === 0 ? resolve(out) : reject(new Error(`${argv.join(' ')}: rank ${rank} exited with ${code}`)),
          );
        }),
    ),
  );
  return JSON.parse(outputs[0]) as T;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'mmssl-bench-ddp-'));
  try {
    const weights = join(scratch, 'initial.safetensors');
    {
      using model = benchModel();
      await io.safetensors.saveFile(model.stateDict(), weights);
    }
    const half = Math.max(1, Math.floor(CORES / 2)),
      share = BATCH / 2;
    const py = (batch: number, mode: string) => [
      PYTHON,
      new URL('../../../scripts/bench/ddp.py', import.meta.url).pathname,
      weights,
      String(batch),
      String(REPEATS),
      mode,
    ];
    const ours = (batch: number, mode: string, sync = 'sync') => [
      process.execPath,
      new URL('./ddp-rank.js', import.meta.url).pathname,
      weights,
      String(batch),
      String(REPEATS),
      mode,
      sync,
    ];
    type Timing = { ms: number; commWait?: number };
    const base = {
      one: await ranks<Timing>(py(BATCH, 'local'), 1, CORES),
      two: await ranks<Timing>(py(share, 'distributed'), 2, half),
      local: await ranks<Timing>(py(share, 'local'), 1, half),
    };
    const mine = {
      one: await ranks<Timing>(ours(BATCH, 'local'), 1, CORES),
      two: await ranks<Timing>(ours(share, 'distributed', 'nosync'), 2, half),
      synced: await ranks<Timing>(ours(share, 'distributed'), 2, half),
      local: await ranks<Timing>(ours(share, 'local'), 1, half),
    };
    const rate = (t: Timing) => BATCH / (t.ms / 1000);
    const overhead = (t: { two: Timing; local: Timing }) => Math.max(1e-3, 1 - t.local.ms / t.two.ms);
    const name = (what: string) => `PyTorch ${pytorchVersion()} ${what} (ddp.py)`;
    console.error(
      `bench:ddp: ours, 2 processes: ${(100 * mine.two.commWait!).toFixed(1)}% of the step waiting in collectives (rank 0, measured), ${(100 * mine.synced.commWait!).toFixed(1)}% with synchronised BatchNorm`,
    );
    report('ddp', [
      rateRow(
        `1 process, batch ${BATCH}, ${CORES} threads`,
        'pre-training step',
        'locations/s',
        rate(mine.one),
        rate(base.one),
        name('1 process'),
      ),
      rateRow(
        `2 processes x ${share}, ${half} thread(s) each, Gloo, global negatives, BatchNorm per process`,
        'pre-training step',
        'locations/s',
        rate(mine.two),
        rate(base.two),
        name('DistributedDataParallel, 2 processes'),
      ),
      rateRow(
        `2 processes x ${share}: ours with synchronised BatchNorm (the default; PyTorch's is GPU-only)`,
        'pre-training step',
        'locations/s',
        rate(mine.synced),
        rate(base.two),
        name('DistributedDataParallel, 2 processes, BatchNorm per process'),
      ),
      costRow(
        '2 processes: share of the step distribution costs, 1 - local/distributed step time',
        'distribution overhead',
        'share',
        overhead(mine),
        overhead(base),
        name('DistributedDataParallel'),
      ),
    ]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
