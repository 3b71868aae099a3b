// `mmssl synth`, run as users run it: the compiled bin in a child process. Success writes a dataset openMeterML opens;
// help mentions the options; mistakes end with exit code 1 and a one-line message, never a stack trace.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { openMeterML } from '../../lib/data/meterml.js';
import type { SynthReport } from '../../lib/data/synth/index.js';

// the compiled test is dist/test/cli/synth.test.js; the bin is dist/lib/cli/main.js
const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'cli', 'main.js');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-cli-synth-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

function mmssl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr, error } = spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (error) throw error;
  return { status, stdout, stderr };
}

const STACK = /^\s+at /m;

/** A fresh, empty parent folder per case, so what a failed run leaves behind shows. */
function parent(name: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

test('the bin exists where the test expects it', (t) => {
  t.true(existsSync(main), main);
});

test('synth writes a dataset, says where and how many locations, and openMeterML opens it', async (t) => {
  const out = join(parent('ok'), 'dataset');
  const { status, stdout, stderr } = mmssl('synth', '--out', out, '--per-class', '3', '--seed', '4');
  t.is(status, 0, stderr);
  t.is(stderr, '', 'no progress bar when stderr is not a terminal');
  t.true(stdout.includes(out), stdout);
  t.regex(stdout, /\b21 locations\b/);
  t.regex(stdout, /train 7, val 7, test 7/);
  t.regex(stdout, /2 broken on purpose/);
  const report: SynthReport = JSON.parse(readFileSync(join(out, 'synth_report.json'), 'utf8'));
  t.like(report, { out, seed: 4, locations: 21, splits: { train: 7, val: 7, test: 7 } });
  t.is(report.defects.length, 2);
  const dataset = await openMeterML(out);
  t.is(dataset.samples.length, 21);
  t.deepEqual(
    dataset.samples.map((s) => s.split),
    [...Array(7).fill('train'), ...Array(7).fill('val'), ...Array(7).fill('test')],
  );
  const raster = await dataset.read(
    dataset.samples.findIndex((s) => s.split === 'val'),
    'naip',
  );
  t.deepEqual(raster.shape, [4, 720, 720]);
  t.deepEqual(readdirSync(dirname(out)), ['dataset'], 'no partial folder left');
});

test('synth --no-defects --format meterml into an existing empty folder writes no broken sample', async (t) => {
  const out = join(parent('clean'), 'dataset');
  mkdirSync(out);
  const { status, stdout, stderr } = mmssl(
    'synth',
    '--out',
    out,
    '--per-class',
    '3',
    '--format',
    'meterml',
    '--no-defects',
  );
  t.is(status, 0, stderr);
  t.regex(stdout, /\b21 locations\b.*\b0 broken on purpose/);
  const report: SynthReport = JSON.parse(readFileSync(join(out, 'synth_report.json'), 'utf8'));
  t.deepEqual(report.defects, []);
  t.is(report.seed, 0, 'seed defaults to 0');
  const dataset = await openMeterML(out);
  for (let i = 0; i < dataset.samples.length; i++) await dataset.read(i, 's1');
  t.pass();
});

test('--help and synth --help exit 0 and list the options', (t) => {
  const top = mmssl('--help');
  t.is(top.status, 0);
  t.regex(top.stdout, /Usage: mmssl/);
  t.regex(top.stdout, /\bsynth\b/);
  const synth = mmssl('synth', '--help');
  t.is(synth.status, 0);
  for (const option of ['--out', '--per-class', '--seed', '--format', '--no-defects'])
    t.true(synth.stdout.includes(option), option);
  t.is(synth.stderr, '');
});

const bad: [string, (dir: string) => string[], RegExp][] = [
  [
    '--per-class 2',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', '2'],
    /^error: option '--per-class <n>' argument '2' is invalid\. an integer >= 3 is expected\./,
  ],
  [
    '--per-class abc',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', 'abc'],
    /^error: option '--per-class <n>' argument 'abc' is invalid/,
  ],
  [
    '--per-class 3.5',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', '3.5'],
    /^error: option '--per-class <n>' argument '3\.5' is invalid/,
  ],
  [
    '--seed -1',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', '3', '--seed', '-1'],
    /^error: option '--seed <s>' argument '-1' is invalid/,
  ],
  [
    '--format tiff',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', '3', '--format', 'tiff'],
    /^error: option '--format <format>' argument 'tiff' is invalid\. Allowed choices are meterml/,
  ],
  ['missing --out', () => ['synth', '--per-class', '3'], /^error: required option '--out <dir>' not specified/],
  [
    'missing --per-class',
    (d) => ['synth', '--out', join(d, 'o')],
    /^error: required option '--per-class <n>' not specified/,
  ],
  [
    'unknown option',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', '3', '--bogus'],
    /^error: unknown option '--bogus'/,
  ],
  ['unknown command', () => ['frobnicate'], /^error: unknown command 'frobnicate'/],
  // a value commander accepts but synthesize refuses: mmssl's own message
  [
    '--seed too large',
    (d) => ['synth', '--out', join(d, 'o'), '--per-class', '3', '--seed', '99999999999999999999'],
    /^mmssl: synthesize: seed must be an integer/,
  ],
];

for (const [name, args, message] of bad) {
  test(`bad command line: ${name} → exit 1, a message, no stack trace, nothing written`, (t) => {
    const dir = parent(`bad-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    const { status, stdout, stderr } = mmssl(...args(dir));
    t.is(status, 1, stderr);
    t.regex(stderr, message);
    t.notRegex(stderr, STACK);
    t.is(stdout, '');
    t.deepEqual(readdirSync(dir), []);
  });
}

test("an existing non-empty --out, or a file, is mmssl's one-line error naming it, and stays as it was", (t) => {
  const dir = parent('existing');
  const out = join(dir, 'full');
  mkdirSync(out);
  writeFileSync(join(out, 'keep.txt'), 'mine');
  const full = mmssl('synth', '--out', out, '--per-class', '3');
  t.is(full.status, 1);
  t.is(full.stderr, `mmssl: ${out}: exists and is not empty: synth writes a new dataset\n`);
  t.notRegex(full.stderr, STACK);
  t.deepEqual(readdirSync(out), ['keep.txt']);
  const file = join(dir, 'file');
  writeFileSync(file, 'a file');
  const asFile = mmssl('synth', '--out', file, '--per-class', '3');
  t.is(asFile.status, 1);
  t.regex(asFile.stderr, /^mmssl: .*file: exists and is not a folder\n$/);
  t.true(asFile.stderr.includes(file));
  t.is(readFileSync(file, 'utf8'), 'a file');
  t.deepEqual(readdirSync(dir).sort(), ['file', 'full']);
});

test('--out with a trailing slash (as shell completion writes it) works', async (t) => {
  const dir = parent('slash'),
    out = join(dir, 'dataset');
  const { status, stdout, stderr } = mmssl('synth', '--out', `${out}/`, '--per-class', '3');
  t.is(status, 0, stderr);
  t.notRegex(stderr, STACK);
  t.regex(stdout, /\b21 locations\b/);
  t.deepEqual(readdirSync(dir), ['dataset']);
  t.is((await openMeterML(out)).samples.length, 21);
});
