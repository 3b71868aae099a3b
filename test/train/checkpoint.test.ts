import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { nn, optim, safetensors, torch, train } from '../../lib/index.js';
import { maxRelErr, values } from '../helpers/reference.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'mmssl-checkpoint-'));

/** A small model, optimizer and schedule, trained `steps` steps on fixed data (each call builds fresh objects). */
function setup() {
  torch.manualSeed(1);
  const model = new nn.Sequential(new nn.Linear(6, 8), new nn.BatchNorm1d(8), new nn.ReLU(), new nn.Linear(8, 3));
  const optimizer = new optim.AdamW(model.parameters(), { lr: 0.01 });
  const scheduler = new optim.lrScheduler.WarmupCosineLR(optimizer, { warmupSteps: 3, totalSteps: 20 });
  return { model, optimizer, scheduler };
}

/** One training step on a random batch (drawn from LibTorch's generator, so resumed runs must restore it). */
function trainStep({ model, optimizer, scheduler }: ReturnType<typeof setup>): void {
  torch.tidy(() => {
    optimizer.zeroGrad();
    const x = torch.randn([5, 6]);
    nn.functional.crossEntropy(model.forward(x) as torch.Tensor, torch.randint(0, 3, [5])).backward();
    optimizer.step();
    scheduler.step();
  });
}

const weights = (m: nn.Module) => [...m.stateDict().values()].flatMap((t) => values(t));

/** Whether two modules' state dicts are equal key for key and bit for bit (NaN-free). */
function sameState(a: nn.Module, b: nn.Module): boolean {
  const [x, y] = [a.stateDict(), b.stateDict()];
  return x.size === y.size && [...x].every(([k, t]) => y.has(k) && t.allclose(y.get(k)!, { rtol: 0, atol: 0 }));
}

test.serial('a resumed run continues exactly: model, optimizer, schedule, step, epoch, extra and RNG restored', async (t) => {
  const before = torch.memoryStats().tensors;
  const straight = setup();
  for (let i = 0; i < 10; i++) trainStep(straight);

  const first = setup();
  for (let i = 0; i < 5; i++) trainStep(first);
  const path = join(dir, 'resume.safetensors');
  await train.saveCheckpoint(path, { ...first, step: 5, epoch: 2, extra: { sampler: [1, 2, 3] }, metadata: { architecture: 'mlp' } });
  torch.rand([100]).dispose();   // disturb the generator: the checkpoint must bring it back

  const resumed = setup();
  const loaded = await train.loadCheckpoint(path, resumed);
  t.like(loaded, { step: 5, epoch: 2, extra: { sampler: [1, 2, 3] }, metadata: { architecture: 'mlp' } });
  t.is(resumed.scheduler.lastEpoch, 5);
  for (let i = 5; i < 10; i++) trainStep(resumed);
  t.true(sameState(resumed.model, straight.model));
  t.deepEqual(resumed.optimizer.paramGroups[0].lr, straight.optimizer.paramGroups[0].lr);
  for (const run of [straight, first, resumed]) {
    run.optimizer.dispose();
    run.model.dispose();
  }
  t.is(torch.memoryStats().tensors, before);
});

test('loading a checkpoint into a model it does not fit names the file and the keys, and changes nothing', async (t) => {
  const run = setup();
  const path = join(dir, 'mismatch.safetensors');
  await train.saveCheckpoint(path, { ...run, step: 1, epoch: 0 });
  const other = new nn.Sequential(new nn.Linear(6, 9), new nn.BatchNorm1d(9), new nn.ReLU(), new nn.Linear(9, 3));
  const snapshot = weights(other);
  const error = await t.throwsAsync(train.loadCheckpoint(path, { model: other }), { code: 'ERR_MMSSL_STATE_DICT' });
  t.true(error?.message.startsWith(path), error?.message);
  t.regex(error?.message ?? '', /0\.weight/);
  t.deepEqual(weights(other), snapshot);
  await t.throwsAsync(train.loadCheckpoint(join(dir, 'absent.safetensors'), { model: other }), { code: 'ERR_MMSSL_IO' });
  const plain = join(dir, 'plain.safetensors');
  await safetensors.saveFile(run.model.stateDict(), plain);
  await t.throwsAsync(train.loadCheckpoint(plain, { model: run.model }), { code: 'ERR_MMSSL_IO', message: /no 'checkpoint' metadata/ });
  [run.model, other].forEach((m) => m.dispose());
  run.optimizer.dispose();
});

for (const arch of ['resnet18', 'alexnet'] as const) {
  // serial: AlexNet's weights are 244 MB, held here and in Python at once
  test.serial(`our ${arch} weights file loads strictly into torchvision, which then computes our outputs`, async (t) => {
    const build = { resnet18: nn.models.resnet18, alexnet: nn.models.alexnet }[arch];
    const [channels, classes, size] = [4, 6, arch === 'alexnet' ? 72 : 64];
    torch.manualSeed(3);
    using model = build({ inChannels: channels, numClasses: classes });
    const path = join(dir, `${arch}.safetensors`);
    await train.saveWeights(model, path, { metadata: { architecture: arch, inChannels: channels, bands: ['B4', 'B3', 'B2', 'B8'] } });
    const inputs = join(dir, `${arch}-input.safetensors`);
    using x = torch.randn([2, channels, size, size]);
    await safetensors.saveFile({ x }, inputs);
    const theirs: number[] = JSON.parse(execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'safetensors_reference.py'),
      'torchvision', arch, path, String(channels), String(classes), inputs], { encoding: 'utf8' }));
    using ours = torch.noGrad(() => model.eval().forward(x) as torch.Tensor);
    t.true(maxRelErr(values(ours), theirs, 1e-5) < 1e-4);
    using copy = build({ inChannels: channels, numClasses: classes });
    t.like(await train.loadWeights(copy, path), { architecture: arch, inChannels: channels, bands: ['B4', 'B3', 'B2', 'B8'] });
    t.true(sameState(copy, model));
  });
}

test('the kill test: SIGKILL at any moment, the last checkpoint always loads and its step never goes back', async (t) => {
  const path = join(dir, 'killed.safetensors');
  const writer = join(root, 'dist', 'test', 'fixtures', 'checkpoint-writer.js');
  let lastSaved = 0;
  let killedMidWrite = 0;
  const model = new nn.Linear(1000, 1000);
  for (let kill = 0; kill < 24; kill++) {
    const child = spawn(process.execPath, [writer, path], { stdio: ['pipe', 'pipe', 'ignore'] });
    let lines: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => { lines = lines.concat(chunk.toString().trim().split('\n')); });
    // early kills land during start-up or the first write; later ones anywhere in the write loop
    await new Promise((resolve) => setTimeout(resolve, kill < 4 ? kill * 40 : 300 + Math.random() * 500));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const saved = lines.filter((l) => l.startsWith('saved ')).map((l) => Number(l.slice(6)));
    if (lines.at(-1)?.startsWith('writing ')) killedMidWrite += 1;
    if (saved.length > 0) lastSaved = saved.at(-1)!;
    if (lastSaved === 0) continue;   // killed before its first checkpoint
    const { step } = await train.loadCheckpoint(path, { model });
    t.true(step >= lastSaved, `kill ${kill}: the file holds step ${step}, the writer had saved ${lastSaved}`);
    t.deepEqual(new Set(values(model.weight)), new Set([step]), `kill ${kill}: step ${step}'s weights`);
    lastSaved = step;
  }
  t.true(lastSaved > 0, 'the writer saved at least once');
  t.true(killedMidWrite >= 3, `only ${killedMidWrite} kills landed during a write`);
  // the next write sweeps what the killed writers left behind
  await safetensors.saveFile({ w: model.weight }, path);
  t.deepEqual(readdirSync(dir).filter((f) => f.startsWith('killed.safetensors.tmp-')), []);
  model.dispose();
});

test('a weights file from PyTorch (no mmssl metadata) loads with empty metadata; corrupt metadata is a FileError', async (t) => {
  using model = new nn.Linear(2, 2);
  const path = join(dir, 'bare.safetensors');
  await safetensors.saveFile(model.stateDict(), path);
  t.deepEqual(await train.loadWeights(model, path), {});
  await safetensors.saveFile(model.stateDict(), path, { metadata: { mmssl: '{not json' } });
  await t.throwsAsync(train.loadWeights(model, path), { code: 'ERR_MMSSL_IO', message: /corrupt 'mmssl' metadata/ });
  writeFileSync(path, 'garbage');
  await t.throwsAsync(train.loadWeights(model, path), { code: 'ERR_MMSSL_IO' });
});
