// `mmssl pretrain --nproc 2` as users run it: the same global batch on 2 processes trains the same model as on one
// (float64, so the gap is the ranks' summation order, not rounding amplified by an untrained network), Ctrl-C stops
// every rank after the same step and --resume continues exactly, a rank that dies stops the launcher with its reason.
import test from 'ava';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { synthesize } from '../../lib/data/synth/index.js';
import { loadFile } from '../../lib/io/safetensors.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'cli', 'main.js');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-ddp-pretrain-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
// 14 training locations, two of them broken: skipped samples leave the ranks uneven shares of some batches
const ready = synthesize({ out: data, perClass: 4, seed: 1 });
const config = join(scratch, 'config.json');
writeFileSync(
  config,
  JSON.stringify({
    backbones: { s1: 'resnet18', s2: 'resnet18' },
    sizes: { s1: [32, 32], s2: [32, 32] },
    epochs: 2,
    batchSize: 4,
    statsSamples: 50,
    workers: 1,
    dtype: 'float64',
    embeddingDim: 16,
    hiddenDim: 32,
    onBadSample: 'skip',
    knn: { every: 0 }, // the monitor's 'auto' schedule follows measured times, which runs do not repeat
    logEvery: 1, // a line per step, to compare step by step
    syncDebug: 'error', // a read of the device inside a step (loss, monitors, collectives) fails the run
  }),
);
const args = (out: string, ...more: string[]) => [
  main,
  'pretrain',
  '--data',
  data,
  '--modalities',
  's1,s2',
  '--config',
  config,
  '--out',
  out,
  ...more,
];
const env = { ...process.env, MMSSL_NUM_THREADS: '1' };

function mmssl(argv: string[]) {
  const { status, stdout, stderr } = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: 300_000, env });
  return { status, stdout, stderr };
}
const losses = (run: string) =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { loss?: number | null })
    .filter((m) => 'loss' in m)
    .map((m) => m.loss as number); // null where a step's loss was NaN

/** Per tensor of the checkpoints' models: |a - b| / |b| (norms over the tensor), the worst. */
async function worstModelGap(a: string, b: string): Promise<{ gap: number; key: string; tensors: number }> {
  const [x, y] = await Promise.all([a, b].map((run) => loadFile(join(run, 'checkpoint.safetensors'))));
  let worst = { gap: 0, key: '', tensors: 0 };
  for (const [key, t] of x) {
    if (!key.startsWith('model/')) continue;
    worst.tensors++;
    const u = Array.from(t.toTypedArray() as ArrayLike<number | bigint>, Number),
      v = Array.from(y.get(key)!.toTypedArray() as ArrayLike<number | bigint>, Number);
    const diff = Math.sqrt(u.reduce((sum, e, i) => sum + (e - v[i]) ** 2, 0)),
      norm = Math.sqrt(v.reduce((sum, e) => sum + e * e, 0));
    const gap = norm === 0 ? diff : diff / norm;
    if (gap > worst.gap) worst = { ...worst, gap, key };
  }
  [...x.values(), ...y.values()].forEach((t) => t.dispose());
  return worst;
}

test.serial(
  '2 processes train the model 1 process trains on the same global batch; rank 0 alone writes the run',
  async (t) => {
    await ready;
    const one = join(scratch, 'one'),
      two = join(scratch, 'two');
    const a = mmssl(args(one, '--nproc', '1'));
    t.is(a.status, 0, a.stderr);
    const b = mmssl(args(two, '--nproc', '2'));
    t.is(b.status, 0, b.stderr);
    t.regex(b.stdout, /2 epochs, \d+ steps/);
    const [la, lb] = [losses(one), losses(two)];
    t.true(
      la.length >= 4 && la.length === lb.length,
      `${la.length} and ${lb.length} metric lines: one per step, from rank 0 alone`,
    );
    t.true(
      la.every((l, i) => Math.abs(l - lb[i]) <= 1e-9 * Math.abs(l)),
      `losses ${la} vs ${lb}`,
    );
    const gap = await worstModelGap(two, one);
    t.true(
      gap.tensors > 200 && gap.gap <= 1e-5,
      `worst relative gap ${gap.gap} (${gap.key}) over ${gap.tensors} tensors`,
    );
  },
);

test.serial(
  'Ctrl-C stops every rank after the same step; --resume on 2 processes ends where the uninterrupted run did',
  async (t) => {
    await ready;
    const run = join(scratch, 'interrupted');
    const child = spawn(process.execPath, args(run, '--nproc', '2'), { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    // after the second step's metrics line: mid-epoch
    const watch = setInterval(() => {
      if (
        existsSync(join(run, 'metrics.jsonl')) &&
        readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n').length > 2
      ) {
        clearInterval(watch);
        child.kill('SIGINT');
      }
    }, 20);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearInterval(watch);
    t.is(code, 130, `every rank stopped as asked: the launcher exits 130 (${stderr})`);
    t.notRegex(stderr, /stopping the others/);
    t.regex(stdout, /stopped after \d+ steps/);
    const resumed = mmssl(args(run, '--nproc', '2', '--resume'));
    t.is(resumed.status, 0, resumed.stderr);
    const two = join(scratch, 'two');
    if (!existsSync(join(two, 'checkpoint.safetensors'))) t.is(mmssl(args(two, '--nproc', '2')).status, 0);
    t.deepEqual(losses(run), losses(two));
    const gap = await worstModelGap(run, two);
    t.is(gap.gap, 0, `worst gap ${gap.gap} at ${gap.key}`);
  },
);

test.serial(
  'a rank that dies stops the others: the launcher exits non-zero naming it, the last checkpoint loads',
  async (t) => {
    await ready;
    const run = join(scratch, 'killed');
    writeFileSync(
      join(scratch, 'long.json'),
      JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')), epochs: 50 }),
    );
    const argv = [
      main,
      'pretrain',
      '--data',
      data,
      '--modalities',
      's1,s2',
      '--config',
      join(scratch, 'long.json'),
      '--out',
      run,
      '--nproc',
      '2',
    ];
    const started = Date.now();
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const watch = setInterval(() => {
      if (!existsSync(join(run, 'checkpoint.safetensors'))) return;
      clearInterval(watch);
      // rank 1: the launcher's child whose environment says RANK=1
      const pids = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map(Number);
      const rank1 = pids.find((pid) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes('RANK=1'));
      if (rank1) process.kill(rank1, 'SIGKILL');
    }, 20);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearInterval(watch);
    t.not(code, 0);
    t.regex(stderr, /rank 1 of 2 was killed by SIGKILL; stopping the others/);
    t.true(Date.now() - started < 120_000);
    const { tensors } = await loadFile(join(run, 'checkpoint.safetensors')).then((m) => ({ tensors: m.size }));
    t.true(tensors > 100, 'the checkpoint rank 0 wrote last is whole');
  },
);
