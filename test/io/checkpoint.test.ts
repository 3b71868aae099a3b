import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { io, nn, optim, torch } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { maxRelErr, values } from '../helpers/reference.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'mmssl-checkpoint-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;

const hex = (t: torch.Tensor) => Buffer.from(native.toBytes(t.handle)).toString('hex');

function python(...args: string[]) {
  return JSON.parse(
    execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'safetensors_reference.py'), ...args], {
      encoding: 'utf8',
    }),
  );
}

/** A small model, optimizer and schedule (each call builds fresh objects, with the same initial weights). */
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

function dispose(...runs: ReturnType<typeof setup>[]): void {
  for (const run of runs) {
    run.optimizer.dispose();
    run.model.dispose();
  }
}

/** A state tree as comparable data: tensors as dtype, shape and bytes, numbers as text (so -0 and NaN compare). */
function describe(value: unknown): unknown {
  if (value instanceof torch.Tensor) return { tensor: value.dtype, shape: [...value.shape], hex: hex(value) };
  if (value instanceof Map) return { map: [...value].map(([k, v]) => [k, describe(v)]) };
  if (Array.isArray(value)) return value.map(describe);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (value === undefined) return '<undefined>';
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, describe(v)]));
  return value;
}

/** `value` with every tensor cloned (what a loadStateDict must keep, since the loaded tensors are freed after). */
function copyTree(value: unknown): unknown {
  if (value instanceof torch.Tensor) return value.clone();
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, copyTree(v)]));
  if (Array.isArray(value)) return value.map(copyTree);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyTree(v)]));
  return value;
}

/**
 * A plain stateful object over real tensors, standing in for any optimizer or scheduler: its state is a tree of
 * every kind a state dict may hold (Maps with number keys, nested arrays, tensors of several dtypes, NaN, ±Infinity,
 * -0, undefined, null, booleans, keys with dots and slashes).
 */
class TreeState {
  constructor(public state: unknown) {}
  stateDict(): unknown {
    return this.state;
  }
  loadStateDict(state: unknown): void {
    this.state = copyTree(state);
  }
}

function richTree(): unknown {
  return torch.tidy(() => ({
    state: new Map<number, unknown>([
      [0, { exp_avg: torch.randn([3, 2]), step: 7 }],
      [5, { buf: torch.tensor([1, -2], { dtype: 'int64' }) }],
    ]),
    groups: [{ lr: 0.1, betas: [0.9, 0.999], nesterov: false, name: 'backbone', maximize: undefined }],
    best: Infinity,
    worst: -Infinity,
    nan: NaN,
    zero: -0,
    nothing: null,
    nested: { deep: [[torch.tensor([true, false])]], half: torch.randn([4]).to('bfloat16') },
    'key/with.dots': 1,
  }));
}

test.serial(
  'a resumed run continues exactly: model, optimizer, schedule, step, epoch, extra and RNG restored',
  async (t) => {
    const before = torch.memoryStats().tensors;
    const straight = setup();
    for (let i = 0; i < 10; i++) trainStep(straight);

    const first = setup();
    for (let i = 0; i < 5; i++) trainStep(first);
    const path = join(dir, 'resume.safetensors');
    const extra = {
      sampler: new Map([
        ['seed', 3],
        ['position', 40],
      ]),
      best: -Infinity,
      history: [0.5, NaN],
    };
    await io.saveCheckpoint(path, {
      ...first,
      step: 5,
      epoch: 2,
      extra,
      metadata: { architecture: 'mlp', inChannels: 6 },
    });
    const drawnAfterSave = torch.tidy(() => hex(torch.rand([16])));
    torch.rand([100]).dispose(); // move the generator on: the checkpoint must bring it back

    const resumed = setup();
    const loaded = await io.loadCheckpoint(path, resumed);
    const drawnAfterLoad = torch.tidy(() => hex(torch.rand([16])));
    t.is(drawnAfterLoad, drawnAfterSave);
    t.deepEqual(
      describe(loaded),
      describe({ step: 5, epoch: 2, extra, metadata: { architecture: 'mlp', inChannels: 6, version } }),
    );
    t.is(resumed.scheduler.lastEpoch, 5);
    const optimizerState = (run: ReturnType<typeof setup>) => torch.tidy(() => describe(run.optimizer.stateDict()));
    t.deepEqual(optimizerState(resumed), optimizerState(first));

    await io.loadCheckpoint(path, resumed); // back to the state saved, generator included
    for (let i = 5; i < 10; i++) trainStep(resumed);
    t.deepEqual(describe(resumed.model.stateDict()), describe(straight.model.stateDict()));
    t.deepEqual(optimizerState(resumed), optimizerState(straight));
    t.is(resumed.optimizer.paramGroups[0].lr, straight.optimizer.paramGroups[0].lr);
    dispose(straight, first, resumed);
    t.is(torch.memoryStats().tensors, before);
  },
);

test.serial(
  'any state tree round-trips: Maps, arrays, tensors of every kind, NaN, ±Infinity, -0, undefined',
  async (t) => {
    const before = torch.memoryStats().tensors;
    using model = new nn.Linear(2, 2);
    const saved = new TreeState(richTree());
    const path = join(dir, 'tree.safetensors');
    await io.saveCheckpoint(path, {
      model,
      optimizer: saved,
      scheduler: new TreeState({ last_epoch: 3 }),
      step: 0,
      epoch: 0,
    });
    const optimizer = new TreeState(null);
    const scheduler = new TreeState(null);
    const { extra } = await io.loadCheckpoint(path, { model, optimizer, scheduler });
    t.deepEqual(describe(optimizer.state), describe(saved.state));
    t.deepEqual(scheduler.state, { last_epoch: 3 });
    t.is(extra, undefined);
    // the file is plain safetensors: each tensor under its path, the rest JSON in the metadata
    const seen = python('describe', path);
    t.deepEqual(Object.keys(seen.tensors).sort(), [
      'model/bias',
      'model/weight',
      'optimizer/nested/deep/0/0',
      'optimizer/nested/half',
      'optimizer/state/0/exp_avg',
      'optimizer/state/5/buf',
      'rng/cpu',
    ]);
    t.is(seen.tensors['model/weight'].hex, hex(model.weight));
    t.is(seen.metadata.format, 'pt');
    t.is(JSON.parse(seen.metadata.checkpoint).state.optimizer['key/with.dots'], 1);
    const tensorsIn = (v: unknown): torch.Tensor[] =>
      v instanceof torch.Tensor
        ? [v]
        : v instanceof Map
          ? [...v.values()].flatMap(tensorsIn)
          : v !== null && typeof v === 'object'
            ? Object.values(v).flatMap(tensorsIn)
            : [];
    [saved.state, optimizer.state].flatMap(tensorsIn).forEach((x) => x.dispose());
    model.dispose();
    t.is(torch.memoryStats().tensors, before);
  },
);

test.serial(
  'a load that a later part refuses changes nothing: model, schedule and generator keep their state',
  async (t) => {
    const live = torch.memoryStats().tensors;
    const run = setup();
    trainStep(run);
    const path = join(dir, 'refused.safetensors');
    await io.saveCheckpoint(path, { ...run, step: 1, epoch: 0 });
    const other = setup();
    trainStep(other);
    trainStep(other);
    // an optimizer over only some of the parameters: the model and the schedule load first, then it refuses
    const partial = new optim.AdamW(other.model.parameters().slice(0, 2), { lr: 0.01 });
    const before = describe({
      model: other.model.stateDict(),
      lastEpoch: other.scheduler.lastEpoch,
      rng: torch.tidy(() => hex(torch.getRngState())),
    });
    const error = await t.throwsAsync(
      io.loadCheckpoint(path, { model: other.model, scheduler: other.scheduler, optimizer: partial }),
      { code: 'ERR_MMSSL_STATE_DICT' },
    );
    t.true(error?.message.startsWith(`${path}: `), error?.message);
    t.regex(error?.message ?? '', /has 6 parameters, the optimizer's group 2/);
    t.deepEqual(
      describe({
        model: other.model.stateDict(),
        lastEpoch: other.scheduler.lastEpoch,
        rng: torch.tidy(() => hex(torch.getRngState())),
      }),
      before,
    );
    partial.dispose();
    dispose(run, other);
    t.is(torch.memoryStats().tensors, live, 'the copies kept to restore from are freed');
  },
);

test('loading a checkpoint into a model it does not fit names the file and the keys, and changes nothing', async (t) => {
  const run = setup();
  const path = join(dir, 'mismatch.safetensors');
  await io.saveCheckpoint(path, { ...run, step: 1, epoch: 0 });
  const other = new nn.Sequential(new nn.Linear(6, 9), new nn.BatchNorm1d(9), new nn.ReLU(), new nn.Linear(9, 3));
  const snapshot = describe(other.stateDict());
  const error = await t.throwsAsync(io.loadCheckpoint(path, { model: other }), { code: 'ERR_MMSSL_STATE_DICT' });
  t.true(error?.message.startsWith(`${path}: `), error?.message);
  t.regex(error?.message ?? '', /0\.weight: \[8, 6\] in the state dict, \[9, 6\] in the module/);
  t.deepEqual(describe(other.stateDict()), snapshot);
  other.dispose();
  dispose(run);
});

test.serial(
  'corrupt or foreign checkpoints are FileErrors or StateDictErrors naming the file, before anything changes',
  async (t) => {
    const live = torch.memoryStats().tensors;
    const run = setup();
    const path = join(dir, 'valid.safetensors');
    await io.saveCheckpoint(path, { model: run.model, step: 3, epoch: 1 });
    const { tensors, metadata } = await io.safetensors.loadFileWithMetadata(path);
    const record = JSON.parse(metadata.checkpoint);
    const snapshot = describe(run.model.stateDict());
    const variant = async (name: string, meta: Record<string, string>, dict: Map<string, torch.Tensor> = tensors) => {
      const file = join(dir, `${name}.safetensors`);
      await io.safetensors.saveFile(dict, file, { metadata: meta });
      return file;
    };
    const withRecord = (r: unknown) => ({ ...metadata, checkpoint: JSON.stringify(r) });
    const shortRng = new Map([...tensors].map(([k, v]) => [k, k === 'rng/cpu' ? v.narrow(0, 0, 10) : v]));
    const cases: [string, string, string, RegExp][] = [
      [
        'weights only',
        await variant('plain', { format: 'pt' }),
        'ERR_MMSSL_IO',
        /no 'checkpoint' metadata: not written by mmssl's saveCheckpoint/,
      ],
      [
        'not JSON',
        await variant('not-json', { ...metadata, checkpoint: '{' }),
        'ERR_MMSSL_IO',
        /corrupt 'checkpoint' metadata/,
      ],
      [
        'no step',
        await variant('no-step', withRecord({ ...record, step: 'three' })),
        'ERR_MMSSL_IO',
        /expected \{step, epoch, extra, state\}/,
      ],
      [
        'a missing tensor',
        await variant('missing-tensor', metadata, new Map([...tensors].filter(([k]) => k !== 'model/0.bias'))),
        'ERR_MMSSL_IO',
        /refers to a tensor "model\/0.bias" the file lacks/,
      ],
      [
        'an unknown tag',
        await variant('tag', withRecord({ ...record, extra: { $: 'date' } })),
        'ERR_MMSSL_IO',
        /an unknown tagged value "date"/,
      ],
      [
        'a short RNG state',
        await variant('short-rng', metadata, shortRng),
        'ERR_MMSSL_STATE_DICT',
        /the cpu generator's state must be \d+ uint8 values/,
      ],
      [
        'bad mmssl metadata',
        await variant('bad-mmssl', { ...metadata, mmssl: '{"inChannels": -1}' }),
        'ERR_MMSSL_IO',
        /corrupt 'mmssl' metadata: inChannels must be a positive integer/,
      ],
    ];
    for (const [name, file, code, message] of cases) {
      const error = await t.throwsAsync(io.loadCheckpoint(file, { model: run.model }), { code, message }, name);
      t.true(error?.message.startsWith(`${file}: `), `${name}: ${error?.message}`);
      t.deepEqual(describe(run.model.stateDict()), snapshot, name);
    }
    await t.throwsAsync(io.loadCheckpoint(path, { model: run.model, optimizer: run.optimizer }), {
      code: 'ERR_MMSSL_IO',
      message: /the checkpoint holds no optimizer state/,
    });
    await t.throwsAsync(io.loadCheckpoint(join(dir, 'absent.safetensors'), { model: run.model }), {
      code: 'ERR_MMSSL_IO',
      message: /absent\.safetensors: cannot read: ENOENT/,
    });
    tensors.forEach((x) => x.dispose());
    shortRng.get('rng/cpu')!.dispose();
    dispose(run);
    t.is(torch.memoryStats().tensors, live);
  },
);

test('bad arguments to saveCheckpoint say which, and write nothing', async (t) => {
  using model = new nn.Linear(2, 2);
  using x = torch.ones([1]);
  const path = join(dir, 'bad-args.safetensors');
  const cases: [Partial<io.TrainingState>, RegExp][] = [
    [{ step: -1 }, /step must be a non-negative integer/],
    [{ epoch: 1.5 }, /epoch must be an integer/],
    [{ extra: { weights: [x] } }, /the state at 'extra\/weights\/0' must be JSON \(tensors belong in a state dict\)/],
    [{ extra: { when: new Date(0) } }, /the state at 'extra\/when' must be a Tensor, Map, array, plain object/],
    [{ optimizer: new TreeState({ $: 'x' }) }, /the state at 'optimizer' must be an object without the key '\$'/],
    [
      { optimizer: new TreeState({ 'a/b': x, a: { b: x } }) },
      /the state at 'optimizer\/a\/b' must be at a path no other tensor has/,
    ],
    [{ optimizer: {} as never }, /optimizer must be an object with stateDict\(\) and loadStateDict\(\)/],
    [
      { metadata: { inChannels: 4, bands: ['B4', 'B3'] } },
      /metadata\.bands must be an array of 4 \(inChannels\) band names/,
    ],
    [
      { metadata: { normalization: { mean: [0, 0], std: [1, 0] } } },
      /metadata\.normalization\.std must be an array of positive numbers/,
    ],
  ];
  for (const [change, message] of cases) {
    await t.throwsAsync(
      io.saveCheckpoint(path, { model, step: 0, epoch: 0, ...change }),
      { code: 'ERR_MMSSL_ARG', message },
      String(message),
    );
  }
  t.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith('bad-args')),
    [],
  );
  await t.throwsAsync(io.loadCheckpoint(path, { model: null as never }), {
    code: 'ERR_MMSSL_ARG',
    message: /model must be an object with stateDict\(\)/,
  });
});

test('our resnet18 and alexnet weights files load strictly into torchvision, which then computes our outputs', async (t) => {
  const [channels, classes] = [4, 6];
  const description = {
    inChannels: channels,
    bands: ['B4', 'B3', 'B2', 'B8'],
    normalization: { mean: [0.1, 0.2, 0.3, 0.4], std: [1, 2, 3, 4] },
    dataset: 'naip',
  };
  const inputs = join(dir, 'torchvision-input.safetensors');
  using x = torch.randn([2, channels, 72, 72]);
  await io.safetensors.saveFile({ x }, inputs);
  const archs = Object.entries({ resnet18: nn.models.resnet18, alexnet: nn.models.alexnet });
  const models = archs.map(([, build]) => build({ inChannels: channels, numClasses: classes }));
  const paths = archs.map(([arch]) => join(dir, `${arch}.safetensors`));
  for (const [i, [arch]] of archs.entries())
    await io.saveWeights(models[i], paths[i], { metadata: { architecture: arch, ...description } });
  const theirs = python(
    'torchvision',
    String(channels),
    String(classes),
    inputs,
    ...archs.flatMap(([arch], i) => [arch, paths[i]]),
  );
  for (const [i, [arch, build]] of archs.entries()) {
    using ours = torch.noGrad(() => models[i].eval().forward(x) as torch.Tensor);
    t.true(maxRelErr(values(ours), theirs[arch].outputs, 1e-5) < 1e-4, arch);
    const metadata = { architecture: arch, ...description, version };
    t.deepEqual(theirs[arch].metadata, { format: 'pt', mmssl: JSON.stringify(metadata) }, arch);
    using copy = build({ inChannels: channels, numClasses: classes }); // other weights (the generator moved on)
    t.deepEqual(await io.loadWeights(copy, paths[i]), { metadata, missingKeys: [], unexpectedKeys: [] }, arch);
    t.deepEqual(describe(copy.stateDict()), describe(models[i].stateDict()), arch);
    models[i].dispose();
  }
});

test("weights files: PyTorch's load with empty metadata, strict: false reports the keys, the wrong files are refused", async (t) => {
  using model = new nn.Sequential(new nn.Linear(2, 3), new nn.ReLU(), new nn.Linear(3, 1));
  const path = join(dir, 'bare.safetensors');
  await io.safetensors.saveFile(model.stateDict(), path);
  t.deepEqual(await io.loadWeights(model, path), { metadata: {}, missingKeys: [], unexpectedKeys: [] });
  using first = new nn.Sequential(new nn.Linear(2, 3));
  await io.saveWeights(first, path);
  const loose = await io.loadWeights(model, path, { strict: false });
  t.deepEqual(loose, { metadata: { version }, missingKeys: ['2.weight', '2.bias'], unexpectedKeys: [] });
  t.deepEqual(describe(model.stateDict().get('0.weight')), describe(first.stateDict().get('0.weight')));
  const error = await t.throwsAsync(io.loadWeights(model, path), {
    code: 'ERR_MMSSL_STATE_DICT',
    message: /missing keys: 2\.weight; 2\.bias/,
  });
  t.true(error?.message.startsWith(`${path}: `));
  t.deepEqual(error && (error as unknown as { missingKeys: string[] }).missingKeys, ['2.weight', '2.bias']);
  await io.safetensors.saveFile(model.stateDict(), path, { metadata: { mmssl: '{not json' } });
  await t.throwsAsync(io.loadWeights(model, path), { code: 'ERR_MMSSL_IO', message: /corrupt 'mmssl' metadata/ });
  await io.saveCheckpoint(path, { model, step: 0, epoch: 0 });
  await t.throwsAsync(io.loadWeights(model, path), {
    code: 'ERR_MMSSL_IO',
    message: /a training checkpoint, not a weights file: use loadCheckpoint/,
  });
  writeFileSync(path, 'garbage');
  await t.throwsAsync(io.loadWeights(model, path), {
    code: 'ERR_MMSSL_IO',
    message: /bare\.safetensors: not a safetensors file: 7 bytes/,
  });
  await t.throwsAsync(io.saveWeights(model, path, { metadata: { architecture: 18 as never } }), {
    code: 'ERR_MMSSL_ARG',
    message: /metadata\.architecture must be a string/,
  });
});
