// PyTorch files (torch.save's zip format), against Python: torchvision's ResNet18 and AlexNet saved by PyTorch load
// into our models and compute PyTorch's outputs; our files load in Python with weights_only=True and compute ours;
// every storage dtype, shared storages with offsets and strides, Lightning and DataParallel prefixes; the legacy
// format and a pickle that would run a command are refused, and nothing runs; damaged archives are FileErrors.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { nn, torch } from '../../lib/index.js';
import { loadWeights, saveWeights } from '../../lib/io/checkpoint.js';
import { pickle, PyCall, PyGlobal, PyPersistent, PyTuple } from '../../lib/io/pickle.js';
import { loadBackboneWeights } from '../../lib/io/backbone_weights.js';
import { readTorchFile, writeTorchFile } from '../../lib/io/pytorch.js';
import { writeZip } from '../../lib/io/zip.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-pytorch-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'make_pytorch.py'), scratch], { stdio: 'inherit' });
const fixture = (name: string) => join(scratch, name);
const python = (script: string, ...args: string[]) =>
  execFileSync('/usr/bin/python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });

function maxDifference(a: torch.Tensor, b: torch.Tensor): number {
  return torch.tidy(() => a.sub(b).abs().max().item() as number);
}

const MODELS = [
  ['resnet18', () => nn.models.resnet18({ inChannels: 3 })],
  ['resnet18-13ch', () => nn.models.resnet18({ inChannels: 13 })],
  ['alexnet', () => nn.models.alexnet({ inChannels: 3 })],
] as const;

for (const [name, make] of MODELS)
  test(`torchvision's ${name} saved by torch.save loads strictly and computes PyTorch's outputs within 1e-5`, async (t) => {
    using model = make().eval();
    const report = await loadWeights(model, fixture(`${name}.pth`));
    t.deepEqual(report.missingKeys, []);
    const io = await readTorchFile(fixture(`${name}-io.pt`));
    const [x, y] = [io.tensors.get('x')!, io.tensors.get('y')!];
    const out = torch.noGrad(() => model.forward(x));
    const error = maxDifference(out, y) / torch.tidy(() => y.abs().max().item() as number);
    t.true(error < 1e-5, `relative error ${error}`);
    [x, y, out].forEach((v) => v.dispose());
  });

test('our PyTorch files load in Python with weights_only=True, with torchvision key names, and give our outputs', async (t) => {
  torch.manualSeed(3);
  using model = nn.models.resnet18({ inChannels: 4, numClasses: 6 }).eval();
  const path = fixture('ours.pt');
  await saveWeights(model, path, { format: 'pytorch' });
  using x = torch.randn([2, 4, 48, 48]);
  using ours = torch.noGrad(() => model.forward(x));
  await writeTorchFile(
    fixture('ours-io.pt'),
    new Map([
      ['x', x],
      ['y', ours],
    ]),
  );
  const result = python(
    `
import sys, torch, torchvision
m = torchvision.models.resnet18(num_classes=6)
m.conv1 = torch.nn.Conv2d(4, 64, 7, 2, 3, bias=False)
m.load_state_dict(torch.load(sys.argv[1], weights_only=True))
io = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    y = m.eval()(io['x'])
print((y - io['y']).abs().max().item() / io['y'].abs().max().item())`,
    path,
    fixture('ours-io.pt'),
  );
  t.true(Number(result) < 1e-5, result);
});

test('every storage dtype, and tensors viewing one storage at offsets and with strides, round-trip', async (t) => {
  const expected = JSON.parse(
    python(
      `
import sys, json, torch
d = torch.load(sys.argv[1], weights_only=True)
names = {torch.float32: 'float32', torch.float64: 'float64', torch.float16: 'float16', torch.bfloat16: 'bfloat16',
         torch.int64: 'int64', torch.int32: 'int32', torch.int16: 'int16', torch.int8: 'int8', torch.uint8: 'uint8',
         torch.bool: 'bool'}
print(json.dumps({k: [names[v.dtype], list(v.shape), v.float().flatten().tolist()] for k, v in d.items()}))`,
      fixture('dtypes.pt'),
    ),
  ) as Record<string, [torch.DType, number[], number[]]>;
  const shared = await readTorchFile(fixture('shared.pt'));
  const dtypes = await readTorchFile(fixture('dtypes.pt'));
  t.is(dtypes.tensors.size, Object.keys(expected).length);
  for (const [key, [dtype, shape, values]] of Object.entries(expected)) {
    const tensor = dtypes.tensors.get(key)!;
    t.is(tensor.dtype, dtype, key);
    t.deepEqual(tensor.shape, shape, key);
    t.deepEqual(
      torch.tidy(() => Array.from(tensor.float().flatten().toTypedArray() as Float32Array)),
      values,
      key,
    );
  }
  const base = Array.from({ length: 24 }, (_, i) => i);
  const of = (k: string) => shared.tensors.get(k)!.toArray();
  t.deepEqual(of('slice'), [base.slice(4, 8), base.slice(8, 12), base.slice(12, 16)]);
  t.deepEqual(
    of('transposed'),
    Array.from({ length: 6 }, (_, c) => Array.from({ length: 4 }, (_, r) => r * 6 + c)),
  );
  t.deepEqual(
    of('strided'),
    base.filter((i) => i % 3 === 1),
  );
  t.deepEqual(
    of('expanded'),
    [0, 1, 2, 3].map((v) => [v, v, v]),
  );
  // written back, Python reads the same values
  const path = fixture('dtypes-again.pt');
  await writeTorchFile(path, dtypes.tensors);
  t.is(
    python(
      `
import sys, torch
a, b = torch.load(sys.argv[1], weights_only=True), torch.load(sys.argv[2], weights_only=True)
print(all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys())`,
      fixture('dtypes.pt'),
      path,
    ).trim(),
    'True',
  );
  [...dtypes.tensors.values(), ...shared.tensors.values()].forEach((v) => v.dispose());
});

test("a Lightning checkpoint's state dict under its prefix, its other entries kept; DataParallel's 'module.'", async (t) => {
  const ckpt = await readTorchFile(fixture('lightning.ckpt'));
  t.deepEqual(ckpt.entries, { epoch: 3, global_step: 120, 'pytorch-lightning_version': '2.1.0' });
  t.true([...ckpt.tensors.keys()].every((k) => k.startsWith('backbone.')));
  ckpt.tensors.forEach((v) => v.dispose());
  for (const [file, prefix] of [
    ['lightning.ckpt', 'backbone.'],
    ['dataparallel.pth', 'module.'],
  ]) {
    using model = nn.models.resnet18();
    const report = await loadWeights(model, fixture(file), { prefix });
    t.deepEqual([report.missingKeys, report.unexpectedKeys], [[], []], file);
    using reference = nn.models.resnet18();
    await loadWeights(reference, fixture('resnet18.pth'));
    t.is(
      maxDifference(
        model.stateDict().get('layer4.1.conv2.weight')!,
        reference.stateDict().get('layer4.1.conv2.weight')!,
      ),
      0,
    );
  }
  using model = nn.models.resnet18();
  await t.throwsAsync(loadWeights(model, fixture('dataparallel.pth')), { code: 'ERR_MMSSL_STATE_DICT' });
});

test('a pickle that would run a command is refused naming its global, and nothing runs; the legacy format is refused with the conversion', async (t) => {
  await t.throwsAsync(readTorchFile(fixture('malicious.pt')), {
    code: 'ERR_MMSSL_IO',
    message: /refuses the global 'posix\.system'.*nothing was executed/,
  });
  t.false(existsSync(fixture('PWNED')));
  using model = nn.models.resnet18();
  await t.throwsAsync(loadWeights(model, fixture('legacy.pt')), {
    code: 'ERR_MMSSL_IO',
    message: /legacy format \(before 1\.6\).*torch\.save\(torch\.load\(path, weights_only=True\), new_path\)/,
  });
});

test('damaged archives: truncated, a flipped byte, a storage of the wrong size, an absurd size are FileErrors', async (t) => {
  const bytes = readFileSync(fixture('shared.pt'));
  const cases: [string, Uint8Array][] = [];
  for (const cut of [10, 100, Math.floor(bytes.length / 2), bytes.length - 30])
    cases.push([`cut at ${cut}`, bytes.subarray(0, cut)]);
  for (let i = 0; i < bytes.length; i += 37) {
    const flipped = Uint8Array.from(bytes);
    flipped[i] ^= 0x5a;
    cases.push([`byte ${i} flipped`, flipped]);
  }
  t.true(cases.length > 20);
  for (const [name, data] of cases) {
    const path = fixture(`damaged.pt`);
    writeFileSync(path, data);
    const result = await readTorchFile(path).then(
      (r) => (r.tensors.forEach((v) => v.dispose()), 'loaded'),
      (e: { code?: string }) => e.code,
    );
    // a flip inside a zip comment or padding can leave the file valid; anything else must be a FileError
    t.true(result === 'ERR_MMSSL_IO' || result === 'loaded', `${name}: ${result}`);
  }
  truncateSync(fixture('damaged.pt'), 0);
  await t.throwsAsync(readTorchFile(fixture('damaged.pt')), { code: 'ERR_MMSSL_IO' });
  // well-formed archives whose pickle declares what the storages do not hold
  const archive = async (numel: number, size: number[], stride: number[], offset: number) => {
    const tensor = new PyCall(new PyGlobal('torch._utils', '_rebuild_tensor_v2'), [
      new PyPersistent(PyTuple.from(['storage', new PyGlobal('torch', 'FloatStorage'), '0', 'cpu', numel])),
      offset,
      PyTuple.from(size),
      PyTuple.from(stride),
      false,
      new PyCall(new PyGlobal('collections', 'OrderedDict'), []),
    ]);
    const chunks = await writeZip([
      { name: 'a/data.pkl', data: pickle(new Map([['w', tensor]])) },
      { name: 'a/data/0', data: new Uint8Array(16) },
    ]);
    writeFileSync(fixture('declared.pt'), Buffer.concat(chunks));
    return readTorchFile(fixture('declared.pt'));
  };
  await t.throwsAsync(archive(1e15, [1e15], [1], 0), {
    code: 'ERR_MMSSL_IO',
    message: /storage 0 holds 16 bytes; its 1000000000000000 float32 values need 4000000000000000/,
  });
  await t.throwsAsync(archive(4, [10], [1], 0), { code: 'ERR_MMSSL_IO', message: /reach element 9 of a storage of 4/ });
  await t.throwsAsync(archive(4, [2, 2], [2, 1], 1), {
    code: 'ERR_MMSSL_IO',
    message: /reach element 4 of a storage of 4/,
  });
  const fine = await archive(4, [2, 2], [1, 2], 0);
  t.deepEqual(fine.tensors.get('w')!.toArray(), [
    [0, 0],
    [0, 0],
  ]);
});

test("ecosystem weights into a backbone: the prefix found, conv1 mapped by band name, the rest as timm's adapt_input_conv, the head left out", async (t) => {
  const ssl4eo = ['B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B10', 'B11', 'B12'];
  using file = nn.models.resnet18({ inChannels: 13 });
  await loadWeights(file, fixture('resnet18-13ch.pth'));
  const source = file.stateDict().get('conv1.weight')!;
  using backbone = nn.models.resnet18({ inChannels: 5, numClasses: 6 });
  const report = await loadBackboneWeights(backbone, ['R', 'G', 'B', 'NIR', 'SAR'], {
    file: fixture('resnet18-13ch.pth'),
    bands: ssl4eo,
  });
  t.is(report.prefix, '');
  t.deepEqual(
    report.bands.map((b) => b.from),
    ['B4', 'B3', 'B2', 'B8', "mean of the file's 13 bands"],
  );
  t.deepEqual(report.dropped, ['B1', 'B5', 'B6', 'B7', 'B8A', 'B9', 'B10', 'B11', 'B12']);
  t.deepEqual(report.missingKeys, ['fc.weight', 'fc.bias']);
  t.regex(report.table, /R +<- B4/);
  const conv1 = backbone.stateDict().get('conv1.weight')!;
  torch.tidy(() => {
    [3, 2, 1, 7].forEach((from, k) =>
      t.is(maxDifference(conv1.narrow(1, k, 1), source.narrow(1, from, 1)), 0, `band ${k}`),
    );
    t.true(maxDifference(conv1.narrow(1, 4, 1).squeeze(1), source.mean([1])) < 1e-7);
    const key = 'layer3.0.downsample.1.running_var';
    t.is(maxDifference(backbone.stateDict().get(key)!, file.stateDict().get(key)!), 0);
  });
  // prefixes detected; without band names, timm's rule (channels repeated, scaled by 3 / 4)
  for (const [name, prefix] of [
    ['lightning.ckpt', 'backbone.'],
    ['dataparallel.pth', 'module.'],
  ]) {
    using four = nn.models.resnet18({ inChannels: 4 });
    const r = await loadBackboneWeights(four, ['R', 'G', 'B', 'NIR'], { file: fixture(name) });
    t.is(r.prefix, prefix, name);
    using rgb = nn.models.resnet18();
    await loadWeights(rgb, fixture('resnet18.pth'));
    torch.tidy(() => {
      const [ours, theirs] = [four.stateDict().get('conv1.weight')!, rgb.stateDict().get('conv1.weight')!];
      t.true(maxDifference(ours.narrow(1, 3, 1), theirs.narrow(1, 0, 1).mul(0.75)) < 1e-7, name);
      t.true(maxDifference(ours.narrow(1, 1, 1), theirs.narrow(1, 1, 1).mul(0.75)) < 1e-7, name);
    });
  }
  using alex = nn.models.alexnet({ inChannels: 2 });
  await t.throwsAsync(loadBackboneWeights(alex, ['VV', 'VH'], { file: fixture('resnet18.pth') }), {
    code: 'ERR_MMSSL_IO',
    message: /holds none of the backbone's keys/,
  });
  await t.throwsAsync(
    loadBackboneWeights(backbone, ['R', 'G', 'B', 'NIR', 'SAR'], { file: fixture('resnet18-13ch.pth'), bands: ['B1'] }),
    {
      code: 'ERR_MMSSL_IO',
      message: /takes 13 bands; 1 band names were given/,
    },
  );
});
