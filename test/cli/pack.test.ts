// `mmssl pack` from the command line: a METER-ML folder packed with its broken samples skipped, what it stored said
// on stdout, a finished pack never overwritten, bad flags refused by name with no stack trace; the pack trains.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { PackIndex } from '../../lib/data/packed/format.js';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, '..', '..', 'lib', 'cli', 'main.js');
const fixture = join(here, '..', '..', '..', 'test', 'fixtures', 'data', 'meterml');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-cli-pack-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

function mmssl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const { status, stdout, stderr, error } = spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (error) throw error;
  return { status, stdout, stderr };
}

test.serial('pack a METER-ML folder, skipping its broken samples; the pack is listed, kept, and trains', (t) => {
  const data = join(scratch, 'meterml');
  cpSync(fixture, data, { recursive: true });
  const out = join(scratch, 'pack');
  const first = mmssl(
    'pack',
    '--data',
    data,
    '--out',
    out,
    '--size',
    'naip=32x32',
    '--on-bad-sample',
    'skip',
    '--records-per-shard',
    '4',
  );
  t.is(first.status, 0, first.stderr);
  const index = JSON.parse(readFileSync(join(out, 'pack.json'), 'utf8')) as PackIndex;
  t.regex(
    first.stdout,
    new RegExp(
      `${index.records.length} locations \\(s1 \\w+ 72x72, s2 \\w+ 72x72, naip uint8 32x32\\) in ${index.shards.length} shards`,
    ),
  );
  t.true(index.skipped.length > 0);
  t.regex(first.stdout, /samples? skipped/);
  const again = mmssl('pack', '--data', data, '--out', out);
  t.is(again.status, 1);
  t.regex(again.stderr, /holds a finished pack already/);
  t.notRegex(again.stderr, /^\s+at /m);
  const run = join(scratch, 'run');
  const trained = mmssl(
    'pretrain',
    '--data',
    out,
    '--out',
    run,
    '--modalities',
    's1,s2',
    '--epochs',
    '1',
    '--batch-size',
    '2',
    '--alexnet-hidden',
    '16',
    '--workers',
    '1',
  );
  t.is(trained.status, 0, trained.stderr);
  t.true(existsSync(join(run, 'checkpoint.safetensors')));
});

for (const [flags, message] of [
  [['--dtype', 'naip=int4'], /--dtype/],
  [['--margin', '-1'], /--margin/],
  [['--records-per-shard', '0'], /--records-per-shard/],
] as const)
  test(`bad flag ${flags.join(' ')}: exit 1, the flag named, nothing written`, (t) => {
    const out = join(scratch, `bad-${flags[0]}`);
    const result = mmssl('pack', '--data', fixture, '--out', out, ...flags);
    t.is(result.status, 1);
    t.regex(result.stderr, message);
    t.notRegex(result.stderr, /^\s+at /m);
    t.false(existsSync(out));
  });
