import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { io, nn, torch } from '../../lib/index.js';
import { values } from '../helpers/reference.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'mmssl-atomic-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** The temporary files of `name` in `dir`: `<name>.tmp-<pid>-<random>`. */
const temps = (name: string) => readdirSync(dir).filter((f) => f.startsWith(`${name}.tmp-`));

test('stale temporaries are swept, live ones kept; concurrent writers each leave a whole file and no temporary', async (t) => {
  const path = join(dir, 'atomic.safetensors');
  const xs = Array.from({ length: 8 }, (_, i) => torch.full([1000], i));
  await io.safetensors.saveFile({ x: xs[0] }, path);
  const stale = `${path}.tmp-999999999-deadbeef`; // a writer that no longer exists (no such pid)
  writeFileSync(stale, 'partial');
  const mine = `${path}.tmp-${process.pid}-0000`; // this process's own temporaries may be in use: never swept
  writeFileSync(mine, 'partial');
  const other = join(dir, 'other.safetensors.tmp-999999999-deadbeef'); // another target's: not this write's business
  writeFileSync(other, 'partial');
  await io.safetensors.saveFile({ x: xs[1] }, path);
  t.false(existsSync(stale));
  t.deepEqual(temps('atomic.safetensors'), [`atomic.safetensors.tmp-${process.pid}-0000`]);
  t.true(existsSync(other));
  writeFileSync(stale, 'partial');
  io.safetensors.saveFileSync({ x: xs[1] }, path);
  t.false(existsSync(stale));
  await Promise.all(xs.map((x) => io.safetensors.saveFile({ x }, path)));
  const [x] = io.safetensors.loadFileSync(path).values();
  const written = values(x);
  t.true(
    written.length === 1000 && written.every((v) => v === written[0]) && written[0] >= 0 && written[0] < 8,
    "one writer's whole file",
  );
  t.deepEqual(temps('atomic.safetensors'), [`atomic.safetensors.tmp-${process.pid}-0000`]);
  [x, ...xs].forEach((y) => y.dispose());
});

/**
 * The writer (test/fixtures/checkpoint-writer.ts) resumes from the checkpoint, then saves a checkpoint of about 8 MB
 * after every step, saying "writing N" before and "saved N" after each save. It is killed 20 times, one process after
 * another: twice during start-up (at once, and while it loads the checkpoint), then alternately the moment its
 * temporary file appears (inside a write) and a random moment after its first save. After every kill the
 * checkpoint must load and hold step N's weights for a step N no older than the last one reported saved, and at most
 * one temporary file may exist (each save sweeps those killed writers left).
 */
test('a missing output directory is created; a path that cannot be a directory is a FileError naming the file', async (t) => {
  using x = torch.arange(6);
  const nested = join(dir, 'run', 'a', 'weights.safetensors');
  await io.safetensors.saveFile({ x }, nested);
  io.safetensors.saveFileSync({ x }, join(dir, 'run', 'b', 'weights.safetensors'));
  t.deepEqual(readdirSync(join(dir, 'run')).sort(), ['a', 'b']);
  t.deepEqual(values(io.safetensors.loadFileSync(nested).get('x')!), [0, 1, 2, 3, 4, 5]);
  const blocked = join(dir, 'run', 'a', 'weights.safetensors', 'inner.safetensors'); // its "directory" is a file
  await t.throwsAsync(io.safetensors.saveFile({ x }, blocked), {
    code: 'ERR_MMSSL_IO',
    message: /inner\.safetensors: cannot write/,
  });
  t.throws(() => io.safetensors.saveFileSync({ x }, blocked), {
    code: 'ERR_MMSSL_IO',
    message: /inner\.safetensors: cannot write/,
  });
});

test('the kill test: SIGKILL at any moment, the last checkpoint always loads and its step never goes back', async (t) => {
  const path = join(dir, 'killed.safetensors');
  const writer = join(root, 'dist', 'test', 'fixtures', 'checkpoint-writer.js');
  const seen = { lastSaved: 0, killedInSave: 0, tempsLeft: 0 };
  using model = new nn.Linear(1000, 1000);
  for (let kill = 0; kill < 20; kill++) {
    const child = spawn(process.execPath, [writer, path], { stdio: ['pipe', 'pipe', 'ignore'] });
    const closed = new Promise((resolve) => child.once('close', resolve)); // after the last of its output
    let output = '';
    const savedOnce = new Promise((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('saved ')) resolve(undefined);
      }),
    );
    const ownTemp = `killed.safetensors.tmp-${child.pid}-`;
    const writing = new Promise((resolve) => {
      const watcher = watch(dir, (_, name) => {
        if (name?.startsWith(ownTemp)) resolve(undefined);
      });
      void closed.then(() => watcher.close());
    });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    if (kill < 2) await sleep(kill * 300);
    else if (kill % 2 === 0) await Promise.race([writing, closed]);
    else await Promise.race([savedOnce.then(() => sleep(Math.random() * 150)), closed]);
    child.kill('SIGKILL');
    await closed;
    const lines = output.trim().split('\n');
    const saved = lines.filter((l) => l.startsWith('saved ')).map((l) => Number(l.slice(6)));
    if (lines.at(-1)?.startsWith('writing ')) seen.killedInSave += 1;
    const left = temps('killed.safetensors');
    t.true(left.length <= 1, `kill ${kill}: temporaries accumulate: ${left}`);
    if (left.some((f) => f.startsWith(ownTemp))) seen.tempsLeft += 1;
    if (saved.length > 0) seen.lastSaved = saved.at(-1)!;
    if (seen.lastSaved === 0) continue; // killed before its first checkpoint
    const { step } = await io.loadCheckpoint(path, { model });
    t.true(step >= seen.lastSaved, `kill ${kill}: the file holds step ${step}, the writer had saved ${seen.lastSaved}`);
    t.deepEqual(new Set(values(model.weight)), new Set([step]), `kill ${kill}: step ${step}'s weights`);
    seen.lastSaved = step;
  }
  t.log(seen);
  t.true(seen.lastSaved >= 9, 'the writers saved, and resumed from what they saved');
  t.true(seen.killedInSave >= 9, `only ${seen.killedInSave} kills landed during a save`);
  t.true(seen.tempsLeft >= 6, `only ${seen.tempsLeft} kills left a half-written temporary file`);
  using w = torch.ones([1]);
  await io.safetensors.saveFile({ w }, path); // the next save sweeps what the last killed writer left
  t.deepEqual(temps('killed.safetensors'), []);
});
