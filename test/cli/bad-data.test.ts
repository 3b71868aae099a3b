// What the commands do with data that is partly broken or read-only, and with runs that are refused or restarted:
// a bad sample stops a command unless it is told to skip, and then every skipped sample is reported and listed;
// a read-only dataset is used as it is; a refused run leaves no folder; a restart after a crash starts clean.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { encodeNpy } from '../../lib/data/formats/npy.js';
import { openMeterML } from '../../lib/data/meterml.js';
import { synthesize } from '../../lib/data/synth/index.js';
import type { SkipRecord } from '../../lib/runs/skipped.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'cli', 'main.js');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-bad-data-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const TINY = [
  '--alexnet-hidden',
  '32',
  '--size',
  'naip=64x64',
  '--batch-size',
  '4',
  '--threads',
  '1',
  '--workers',
  '1',
];
const PRE = [...TINY, '--embedding-dim', '16'];
const env = (cache = join(scratch, 'cache')) => ({ ...process.env, MMSSL_CACHE_DIR: cache });

function mmssl(args: string[], cache?: string) {
  const { status, stdout, stderr, error } = spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8',
    timeout: 300_000,
    env: env(cache),
  });
  if (error) throw error;
  return { status, stdout, stderr };
}

/** 14 training locations, 5 of them broken three ways: truncated .npy files, a PNG of random bytes, NaN in Sentinel-2. */
const clean = join(scratch, 'clean'),
  broken = join(scratch, 'broken');
const ready = (async () => {
  await synthesize({ out: clean, perClass: 4, seed: 9, holdout: { val: 0.25, test: 0.25 }, defects: false });
  cpSync(clean, broken, { recursive: true });
  const dataset = await openMeterML(broken);
  const train = dataset.samples.filter((s) => s.split === 'train' && !s.negative).map((s) => s.id);
  const [a, b, c, d, e] = train;
  truncateSync(join(broken, a, 'sentinel-1.npy'), 100);
  truncateSync(join(broken, b, 'sentinel-2-10m.npy'), 60);
  writeFileSync(
    join(broken, c, 'naip.png'),
    Uint8Array.from({ length: 5000 }, (_, i) => (i * 7919 + 13) & 255),
  );
  for (const id of [d, e]) {
    writeFileSync(
      join(broken, id, 'sentinel-2-10m.npy'),
      encodeNpy({
        dtype: 'float32',
        shape: [72, 72, 4],
        data: Float32Array.from({ length: 72 * 72 * 4 }, (_, i) => (i % 97 === 0 ? Number.NaN : 1000 + (i % 300))),
      }),
    );
  }
  return { trainCount: dataset.samples.filter((s) => s.split === 'train').length, broken: [a, b, c, d, e] };
})();

const records = (path: string) =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as SkipRecord);

test.serial(
  'a broken sample stops pre-training by default, naming its file, before the run folder is made',
  async (t) => {
    const { trainCount, broken: bad } = await ready;
    t.is(trainCount, 14);
    const out = join(scratch, 'raise');
    const run = mmssl([
      'pretrain',
      '--data',
      broken,
      '--modalities',
      's1,s2,naip',
      '--epochs',
      '1',
      '--out',
      out,
      ...PRE,
    ]);
    t.is(run.status, 1, run.stderr);
    t.regex(
      run.stderr,
      new RegExp(
        `^mmssl: .*(${bad.map((id) => id.replace(/[.]/g, '\\.')).join('|')})/(sentinel-1\\.npy|sentinel-2-10m\\.npy|naip\\.png)`,
        'm',
      ),
    );
    t.false(existsSync(out), 'no run folder');
  },
);

test.serial(
  '--on-bad-sample skip (or onBadSample in a config file): every skipped sample reported per epoch, listed with its reason, counted',
  async (t) => {
    const { broken: bad } = await ready;
    const out = join(scratch, 'skip');
    const config = join(scratch, 'skip.yaml');
    writeFileSync(config, 'onBadSample: skip\nhiddenDim: 32\n');
    const run = mmssl([
      'pretrain',
      '--data',
      broken,
      '--modalities',
      's1,s2,naip',
      '--epochs',
      '2',
      '--config',
      config,
      '--knn-every',
      '0',
      '--out',
      out,
      ...PRE,
    ]);
    t.is(run.status, 0, run.stderr);
    t.like(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), { onBadSample: 'skip' });
    // stdout: a line per epoch, the first naming those the band statistics left out too; the summary counts them
    const epochLines = run.stdout.split('\n').filter((l) => /^epoch \d\/2: \d+ samples? skipped: /.test(l));
    t.is(epochLines.length, 2, run.stdout);
    t.regex(
      epochLines[0],
      /^epoch 1\/2: 5 samples skipped: /,
      'a sample the statistics and training both left out is one sample',
    );
    t.true(epochLines.every((l) => l.includes(join(out, 'skipped.jsonl'))));
    t.regex(
      run.stdout,
      new RegExp(
        `2 epochs, \\d+ steps, checkpoint .*; 5 samples skipped \\(${join(out, 'skipped.jsonl').replace(/[.]/g, '\\.')}\\)`,
      ),
    );
    // skipped.jsonl: each broken sample with its file and reason, once per phase
    const logged = records(join(out, 'skipped.jsonl'));
    const stats = logged.filter((r) => r.phase === 'stats');
    t.deepEqual(
      stats.map((r) => r.id).sort(),
      [...bad].sort(),
      'the band statistics read every training sample and skipped the 5',
    );
    t.true(
      logged.every((r) => r.message.length > 0 && typeof r.file === 'string' && r.file.startsWith(broken)),
      'each with its file',
    );
    t.true(
      logged
        .filter((r) => r.phase === 'train')
        .every((r) => bad.includes(r.id) && r.epoch !== undefined && r.batch !== undefined),
    );
    t.is(
      new Set(logged.map((r) => `${r.phase} ${r.id}`)).size,
      logged.length,
      'once per phase, though skipped every epoch',
    );
    // metrics.jsonl: the count per step; an epoch's last step has seen all of its skips
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { epoch: number; batch: number; batches: number; skipped: number });
    t.true(steps.every((m) => Number.isInteger(m.skipped) && m.skipped >= 0));
    const trainedSkips = logged.filter((r) => r.phase === 'train').length;
    t.true(
      trainedSkips > 0 && steps.filter((m) => m.batch === m.batches - 1).every((m) => m.skipped >= 1),
      'the epochs met broken samples too',
    );

    // fine-tuning and embedding follow the same policy
    const ft = join(scratch, 'skip-ft');
    const refused = mmssl([
      'finetune',
      '--data',
      broken,
      '--init',
      out,
      '--modalities',
      's2,naip',
      '--epochs',
      '1',
      '--out',
      ft,
      ...TINY,
    ]);
    t.is(refused.status, 1, 'finetune raises by default');
    const fine = mmssl([
      'finetune',
      '--data',
      broken,
      '--init',
      out,
      '--modalities',
      's2,naip',
      '--epochs',
      '1',
      '--on-bad-sample',
      'skip',
      '--out',
      ft,
      ...TINY,
    ]);
    t.is(fine.status, 0, fine.stderr);
    t.regex(fine.stdout, /^epoch 1\/1: \d+ samples? skipped: /m);
    t.regex(fine.stdout, /labelled samples; \d+ samples skipped \(.*skipped\.jsonl\)\)/);
    t.true(records(join(ft, 'skipped.jsonl')).every((r) => bad.includes(r.id)));
    const emb = mmssl([
      'embed',
      '--init',
      out,
      '--data',
      broken,
      '--out',
      join(scratch, 'emb', 'all'),
      '--workers',
      '1',
      '--on-bad-sample',
      'skip',
    ]);
    t.is(emb.status, 0, emb.stderr);
    const index = JSON.parse(readFileSync(join(scratch, 'emb', 'all.index.json'), 'utf8')) as {
      ids: string[];
      skipped: { id: string; message: string }[];
    };
    t.deepEqual(
      index.skipped.map((s) => s.id).sort(),
      [...bad].sort(),
      'the index lists the samples it has no row for',
    );
    t.is(index.ids.length + index.skipped.length, 28);
  },
);

/** Whether this machine lets a test mount a read-only view in a private mount namespace (root and unshare). */
const canMountReadOnly = process.getuid?.() === 0 && spawnSync('unshare', ['-m', 'true']).status === 0;

(canMountReadOnly ? test.serial : test.serial.skip)(
  'a read-only dataset (a bind mount remounted read-only) is pre-trained on; the dataset is left as it was',
  async (t) => {
    await ready;
    const view = join(scratch, 'readonly');
    rmSync(view, { recursive: true, force: true });
    const before = readdirSync(clean, { recursive: true }).sort();
    const out = join(scratch, 'ro-run');
    const script = 'mkdir -p "$2" && mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@"';
    const args = [
      '-m',
      'sh',
      '-c',
      script,
      'sh',
      clean,
      view,
      process.execPath,
      main,
      'pretrain',
      '--data',
      view,
      '--modalities',
      's1,s2',
      '--epochs',
      '1',
      '--knn-every',
      '0',
      '--out',
      out,
      ...PRE,
    ];
    const run = spawnSync('unshare', args, { encoding: 'utf8', timeout: 300_000, env: env(join(scratch, 'ro-cache')) });
    t.is(run.status, 0, run.stderr);
    t.notRegex(run.stderr, /EROFS|read-only/i);
    t.deepEqual(readdirSync(clean, { recursive: true }).sort(), before, 'nothing was written into the dataset');
    t.true(existsSync(join(out, 'band-stats.json')), 'the statistics are kept in the run folder');
    t.true(
      readdirSync(join(scratch, 'ro-cache')).some((f) => f.startsWith('band-stats-')),
      'and in the user cache',
    );
  },
);

test.serial(
  'refused runs leave no folder: a batch larger than the split, an unknown device, CUDA on a machine without it',
  async (t) => {
    await ready;
    const cases: [string[], RegExp][] = [
      [['--batch-size', '500'], /batchSize must be at most the training split's 14 locations/],
      [['--device', 'tpu'], /--device <device>' argument 'tpu' is invalid. 'cpu', 'cuda' or 'cuda:N' is expected/],
      [['--device', 'cuda'], /device 'cuda' is not available/],
    ];
    for (const [extra, message] of cases) {
      const out = join(scratch, `refused-${extra[1]}`);
      const run = mmssl([
        'pretrain',
        '--data',
        clean,
        '--modalities',
        's1,s2',
        '--epochs',
        '1',
        '--out',
        out,
        ...PRE,
        ...extra,
      ]);
      t.is(run.status, 1, `${extra.join(' ')}: ${run.stderr}`);
      t.regex(run.stderr, message, extra.join(' '));
      t.false(existsSync(out), `${extra.join(' ')} left no folder`);
      const ft = mmssl([
        'finetune',
        '--data',
        clean,
        '--modalities',
        's2',
        '--epochs',
        '1',
        '--out',
        `${out}-ft`,
        ...TINY,
        ...extra.filter((a) => a !== '500' && a !== '--batch-size'),
      ]);
      if (extra[0] === '--device') {
        t.is(ft.status, 1, `finetune ${extra.join(' ')}`);
        t.false(existsSync(`${out}-ft`), `finetune ${extra.join(' ')} left no folder`);
      }
    }
  },
);

test.serial(
  'a fresh start in the folder of a run that died before its first checkpoint starts clean: no step twice in metrics.jsonl',
  async (t) => {
    await ready;
    const out = join(scratch, 'restarted');
    const first = mmssl([
      'pretrain',
      '--data',
      clean,
      '--modalities',
      's1,s2',
      '--epochs',
      '1',
      '--knn-every',
      '0',
      '--out',
      out,
      ...PRE,
    ]);
    t.is(first.status, 0, first.stderr);
    // what a run killed before its first checkpoint leaves: its configuration, environment and first metrics
    rmSync(join(out, 'checkpoint.safetensors'));
    const again = mmssl([
      'pretrain',
      '--data',
      clean,
      '--modalities',
      's1,s2',
      '--epochs',
      '1',
      '--knn-every',
      '0',
      '--out',
      out,
      ...PRE,
    ]);
    t.is(again.status, 0, again.stderr);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { step: number }).step);
    t.true(steps.length > 0, 'metrics were written');
    t.deepEqual(
      steps,
      [...new Set(steps)].sort((a, b) => a - b),
      `steps ${steps.join(', ')}: increasing, none twice`,
    );
    const held = mmssl(['pretrain', '--data', clean, '--modalities', 's1,s2', '--epochs', '1', '--out', out, ...PRE]);
    t.is(held.status, 1, 'a folder holding a checkpoint is refused');
    t.regex(held.stderr, /holds a run already: resume it \(--resume\)/);
  },
);
