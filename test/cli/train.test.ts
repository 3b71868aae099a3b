// `mmssl pretrain`, `finetune`, `table1` and `embed` as users run them: a tiny pipeline through the bin, options from
// a YAML file under the command line's, and mistakes that end with exit code 1 and one line, never a stack trace.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { synthesize } from '../../lib/data/synth/index.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'cli', 'main.js');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-cli-train-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const ready = synthesize({ out: data, perClass: 4, seed: 6, holdout: { val: 0.25, test: 0.25 } });
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
  '--on-bad-sample',
  'skip',
];

function mmssl(...args: string[]) {
  const { status, stdout, stderr, error } = spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (error) throw error;
  return { status, stdout, stderr };
}
const STACK = /^\s+at /m;

test.serial(
  'pretrain (options from YAML, the command line over them, the k-NN monitor), finetune from the run, embed, evaluate, report',
  async (t) => {
    await ready;
    const config = join(scratch, 'pretrain.yaml');
    writeFileSync(config, 'epochs: 5\nembeddingDim: 16\nhiddenDim: 32\noptimizer:\n  name: adam\n  lr: 0.001\n');
    const run = join(scratch, 'run');
    const pre = mmssl(
      'pretrain',
      '--data',
      data,
      '--modalities',
      's1,s2',
      '--config',
      config,
      '--epochs',
      '1',
      '--out',
      run,
      ...TINY,
    );
    t.is(pre.status, 0, pre.stderr);
    t.regex(pre.stdout, /1 epochs, \d+ steps, checkpoint/);
    t.regex(
      pre.stderr,
      /epoch 1\/1: loss \d+\.\d+, [\d.]+ locations\/s, embedding std s1 [\d.]+ s2 [\d.]+/,
      'a line per epoch when stderr is not a terminal',
    );
    const saved = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    t.like(saved, {
      epochs: 1,
      embeddingDim: 16,
      hiddenDim: 32,
      alexnetHidden: 32,
      optimizer: { name: 'adam', lr: 0.001 },
      modalities: ['s1', 's2'],
    });

    const ft = join(scratch, 'ft');
    const fine = mmssl(
      'finetune',
      '--data',
      data,
      '--init',
      run,
      '--modalities',
      's2',
      '--epochs',
      '1',
      '--lr',
      '0.001',
      '--out',
      ft,
      ...TINY,
    );
    t.is(fine.status, 0, fine.stderr);
    t.regex(fine.stdout, /validation \(\d+ samples\)\ntrue \\ predicted/);
    t.regex(fine.stdout, /accuracy \d+\.\d\d%\s+macro F1 \d+\.\d\d%/);
    t.true(existsSync(join(ft, 'model.safetensors')) && existsSync(join(ft, 'report.json')));

    const emb = mmssl(
      'embed',
      '--init',
      ft,
      '--data',
      data,
      '--out',
      join(scratch, 'emb', 'x'),
      '--workers',
      '1',
      '--on-bad-sample',
      'skip',
    );
    t.is(emb.status, 0, emb.stderr);
    t.regex(
      emb.stdout,
      /^1 sample skipped: .*sentinel-2-10m\.npy: \d+ NaN.*\(all in .*x\.index\.json\)$/m,
      'embed names what it skipped (an S2 model: the sample with NaN in S2)',
    );
    t.true(
      existsSync(join(scratch, 'emb', 'x.npy')) &&
        existsSync(join(scratch, 'emb', 'x.probabilities.npy')) &&
        existsSync(join(scratch, 'emb', 'x.index.json')),
    );
    t.regex(
      pre.stderr,
      /epoch 1\/1: 20-NN accuracy \d+\.\d% \(val \d+ against \d+ train, [\d.]+ s\)/,
      'the k-NN monitor after the first epoch',
    );

    const evaluation = mmssl('evaluate', '--init', run, '--data', data, '--split', 'val', '--workers', '1');
    t.is(evaluation.status, 0, evaluation.stderr);
    t.regex(evaluation.stdout, /s1 -> s2 +\| +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ \|/);
    t.true(existsSync(join(run, 'evaluation-val.json')));
    const report = mmssl('report', run, ft, '--out', join(scratch, 'report.html'), '--no-maps');
    t.is(report.status, 0, report.stderr);
    t.regex(report.stdout, /report\.html: \d+ sections, \d+ charts/);
  },
);

test.serial('Ctrl-C stops after the current step with a checkpoint that --resume continues from', async (t) => {
  await ready;
  const run = join(scratch, 'interrupted');
  const args = [
    main,
    'pretrain',
    '--data',
    data,
    '--modalities',
    's1,s2',
    '--epochs',
    '20',
    '--embedding-dim',
    '16',
    '--out',
    run,
    ...TINY,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '',
    stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
    if (/epoch 1\/20/.test(stderr) && !child.killed) child.kill('SIGINT'); // mid-run, after the first epoch's line
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.is(code, 130, `a stopped run exits 130, as an interrupted program does: ${stderr}`);
  t.regex(stderr, /stopping after this step/);
  t.regex(stdout, /stopped after \d+ steps \(epoch \d+ of 20\); continue with --resume/);
  t.true(existsSync(join(run, 'checkpoint.safetensors')));
  const steps = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').length;
  const resumed = mmssl(
    'pretrain',
    '--out',
    run,
    '--resume',
    '--epochs',
    '2',
    '--data',
    data,
    '--modalities',
    's1,s2',
    '--embedding-dim',
    '16',
    ...TINY,
  );
  t.is(resumed.status, 1, 'a resumed run keeps its configuration: --epochs 2 differs');
  t.regex(resumed.stderr, /configured differently \(epochs\)/);
  const again = mmssl('pretrain', '--out', run, '--resume');
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, /20 epochs, \d+ steps/);
  t.true(readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').length > steps);
});

test.serial(
  'Ctrl-C during a step: no further step starts, even when the next batch is already read; the exit status is 130',
  async (t) => {
    await ready;
    const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'interrupt.js');
    for (const at of [1, 3]) {
      const { status, stdout, stderr } = spawnSync(
        process.execPath,
        [fixture, data, join(scratch, `interrupt-${at}`), String(at)],
        { encoding: 'utf8', timeout: 300_000 },
      );
      t.is(status, 130, stderr);
      t.deepEqual(JSON.parse(stdout), { steps: at, interrupted: true, exitCode: 130 }, `SIGINT in step ${at}`);
    }
  },
);

test('mistakes: exit code 1, one line naming what is wrong, no stack trace, no run folder', async (t) => {
  await ready;
  const cases: [string[], RegExp][] = [
    [
      ['pretrain', '--data', data, '--modalities', 's2', '--no-augment', '--out', join(scratch, 'bad1')],
      /^mmssl: viewLayout: pre-training s2 alone needs augmentations/,
    ],
    [
      ['pretrain', '--data', data, '--modalities', 's1,radar', '--out', join(scratch, 'bad2')],
      /^mmssl: pretrain: modalities must be names among the dataset's/,
    ],
    [
      ['pretrain', '--data', data, '--modalities', 's1', '--epochs', '0', '--out', join(scratch, 'bad3')],
      /error: option '--epochs <n>' argument '0' is invalid/,
    ],
    [
      ['pretrain', '--data', data, '--modalities', 's1', '--size', 'naip=big', '--out', join(scratch, 'bad4')],
      /\[height, width\] \(positive integers\) is expected, got string 'big'/,
    ],
    [
      ['pretrain', '--data', join(scratch, 'nowhere'), '--modalities', 's1', '--out', join(scratch, 'bad5')],
      /^mmssl: .*nowhere/,
    ],
    [
      [
        'finetune',
        '--data',
        data,
        '--init',
        join(scratch, 'nothing'),
        '--modalities',
        's2',
        '--out',
        join(scratch, 'bad6'),
      ],
      /^mmssl: .*--init must be a pre-training run folder/,
    ],
    [
      ['finetune', '--data', data, '--modalities', 's2', '--label-fraction', '1.5', '--out', join(scratch, 'bad7')],
      /a number in \(0, 1\] is expected/,
    ],
    [
      ['table1', '--data', data, '--rows', 'S9', '--out', join(scratch, 'bad8')],
      /^mmssl: table1: rows must be names among none, S1/,
    ],
  ];
  for (const [args, message] of cases) {
    const { status, stderr } = mmssl(...args);
    t.is(status, 1, `${args.join(' ')}: ${stderr}`);
    t.regex(stderr, message, args.join(' '));
    t.notRegex(stderr, STACK, args.join(' '));
  }
  for (const n of [1, 2, 3, 4, 5]) t.false(existsSync(join(scratch, `bad${n}`)), `bad${n} left nothing`);
  const config = join(scratch, 'typo.json');
  writeFileSync(config, JSON.stringify({ epoch: 3 }));
  const typo = mmssl(
    'pretrain',
    '--data',
    data,
    '--modalities',
    's1',
    '--config',
    config,
    '--out',
    join(scratch, 'bad9'),
  );
  t.is(typo.status, 1);
  t.regex(
    typo.stderr,
    /^mmssl: pretrain config: key in \S*typo\.json must be one of .*got string 'epoch'/,
    'the key and the file named',
  );
});

test('each command explains itself', (t) => {
  for (const [command, option] of [
    ['pretrain', '--resume'],
    ['finetune', '--linear-probe'],
    ['table1', '--scale'],
    ['embed', '--per-modality'],
    ['serve', '--max-batch'],
    ['evaluate', '--split'],
    ['report', '--no-maps'],
    ['finetune', '--modality-dropout'],
    ['table1', '--protocol'],
    ['pretrain', '--knn-every'],
  ]) {
    const { status, stdout } = mmssl(command, '--help');
    t.is(status, 0);
    t.true(stdout.includes(option), `${command} --help mentions ${option}`);
  }
});

test('the built command is executable, as `npx mmssl` (the README) runs it', (t) => {
  const { status, stdout, stderr, error } = spawnSync(main, ['--help'], { encoding: 'utf8' });
  t.is(status, 0, error ? `${error.message} (npm run build:ts makes it executable)` : stderr);
  t.regex(stdout, /Usage: mmssl/);
});
