// The native layer's surface as TypeScript sees it: the `Binding` interface (lib/native.ts) and the addon's exports are
// the same set, the dtype lists agree, native objects are counted and freed by handle, and errors keep their class
// across the addon, worker threads and plain data.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

import {
  ArgumentError,
  data,
  DeviceError,
  DisposedError,
  DistributedError,
  FileError,
  fromErrorData,
  InputError,
  InternalError,
  MmsslError,
  optim,
  QueueFullError,
  HostReadError,
  NonFiniteError,
  StateDictError,
  toErrorData,
  torch,
  TorchError,
} from '../lib/index.js';
import { native } from '../lib/native.js';
import { dtypes } from '../lib/torch/dtype.js';

const root = new URL('../..', import.meta.url).pathname;

/** The members of `interface Binding` in lib/native.ts: name -> optional. */
function bindingMembers(): Map<string, boolean> {
  const file = join(root, 'lib', 'native.ts');
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const members = new Map<string, boolean>();
  source.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node) || node.name.text !== 'Binding') return;
    for (const m of node.members)
      if (m.name && ts.isIdentifier(m.name)) members.set(m.name.text, m.questionToken !== undefined);
  });
  return members;
}

test('the Binding interface declares exactly what the addon exports (optional members: only some builds have them)', (t) => {
  const declared = bindingMembers();
  t.true(declared.size > 100, `${declared.size} members parsed from lib/native.ts`);
  const exported = new Set(Object.keys(native));
  const undeclared = [...exported].filter((name) => !declared.has(name));
  const missing = [...declared].filter(([name, optional]) => !optional && !exported.has(name)).map(([name]) => name);
  t.deepEqual(undeclared, [], 'exports the interface does not declare');
  t.deepEqual(missing, [], 'required members the addon does not export');
});

test("the dtype names of lib/torch/dtype.ts are the addon's table, in its order", (t) => {
  t.deepEqual([...dtypes], Object.keys(native.dtypeCodes));
});

test('optimizers are native objects counted by handle, freed by dispose; a wrong or stale handle is refused by kind', (t) => {
  using w = torch.zeros([3], { requiresGrad: true });
  const before = torch.memoryStats().objects.optimizer;
  const sgd = new optim.SGD([w], { lr: 0.1 });
  t.is(torch.memoryStats().objects.optimizer, before + 1);
  const handle = native.optimizerCreate('sgd', [
    { params: [w.handle], options: { lr: 1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false } },
  ]);
  t.is(torch.memoryStats().objects.optimizer, before + 2);
  t.true(handle < 0, 'object handles are negative, tensor handles positive: they never coincide');
  native.optimizerDispose(handle);
  t.throws(() => native.optimizerStep(handle, []), {
    instanceOf: DisposedError,
    code: 'ERR_MMSSL_DISPOSED',
    message: /^optimizerStep: argument 0 is an optimizer that was disposed/,
  });
  t.throws(() => native.optimizerStep(w.handle as never, []), {
    instanceOf: ArgumentError,
    code: 'ERR_MMSSL_ARG',
    message: /argument 0 must be an optimizer, got number/,
  });
  t.throws(() => native.optimizerCreate('sgd', [{ params: [w.handle], options: { lr: 'high' } }]), {
    instanceOf: ArgumentError,
    message: /option 'lr' \(argument 1\) must be a number, got string/,
  });
  sgd.dispose();
  t.is(torch.memoryStats().objects.optimizer, before);
  t.throws(() => sgd.step(), { instanceOf: DisposedError });
});

test('every error class survives toErrorData/fromErrorData: class, code, message, path, field, op, keys, cause and stack', (t) => {
  const cause = new TorchError('mm: shapes differ', 'mm');
  const errors: Error[] = [
    new ArgumentError('f: x must be a tensor', { op: 'f' }),
    cause,
    new DisposedError(),
    new DeviceError('cuda: none'),
    new FileError('/data/a.npy', 'truncated', { cause }),
    new StateDictError('keys differ', ['a'], ['b'], ['c']),
    new DistributedError('rank 1 died', { op: 'allReduce' }),
    new InputError('s1', 'too small'),
    new QueueFullError(3),
    new HostReadError('item read inside the step', 'item'),
    new NonFiniteError('step 3: the loss is NaN', { epoch: 0, step: 3, ids: ['a', 'b'] }),
    new InternalError('bug'),
    new MmsslError('ERR_MMSSL_LOAD', 'no addon'),
    new RangeError('plain'),
  ];
  for (const error of errors) {
    const rebuilt = fromErrorData(structuredClone(toErrorData(error)));
    t.is(rebuilt.constructor, error.constructor, error.name);
    t.true(rebuilt instanceof Error);
    for (const key of [
      'name',
      'message',
      'code',
      'op',
      'path',
      'field',
      'stack',
      'missingKeys',
      'unexpectedKeys',
      'shapeMismatches',
      'at',
    ] as const) {
      t.deepEqual(
        (rebuilt as unknown as Record<string, unknown>)[key],
        (error as unknown as Record<string, unknown>)[key],
        `${error.name}.${key}`,
      );
    }
  }
  const file = fromErrorData(toErrorData(errors[4])) as FileError;
  t.true(file.cause instanceof TorchError && (file.cause as TorchError).op === 'mm', 'the cause, in its class');
});

test('an unreadable sample reaches the loader from its worker thread as the FileError it was, naming the file', async (t) => {
  const dataset = await data.openMeterML(join(root, 'test', 'fixtures', 'data', 'meterml'), { splits: ['test'] });
  await using loader = new data.DataLoader(dataset, { modalities: ['s1'], batchSize: 8, splits: ['test'], workers: 1 });
  const error = await t.throwsAsync(async () => {
    for await (const b of loader.epoch(0)) b[Symbol.dispose]();
  });
  t.true(error instanceof FileError, `${error?.name}: ${error?.message}`);
  t.is((error as FileError).code, 'ERR_MMSSL_IO');
  t.regex((error as FileError).path, /sentinel-1\.npy$/);
  t.regex(error!.stack ?? '', /meterml|npy/, "the worker's stack, where it was thrown");
});
