// Host reads: counted everywhere, and inside a sync-free region reported as the sync debug mode says.
import test from 'ava';

import { HostReadError } from '../../lib/errors.js';
import { clipGradNorm_ } from '../../lib/nn/utils/clip_grad.js';
import { tensor } from '../../lib/torch/creation.js';
import { getSyncDebugMode, hostReads, setSyncDebugMode, syncFree, withSyncDebugMode } from '../../lib/torch/sync.js';

/** Every way of reading tensor data to JavaScript, on a fresh tensor each. */
const READS: [string, () => unknown][] = [
  ['item', () => tensor([1]).item()],
  ['toTypedArray', () => tensor([1, 2]).toTypedArray()],
  ['toArray', () => tensor([1, 2]).toArray()],
  ['toNumbers', () => tensor([1, 2]).toNumbers()],
  ['toBooleans', () => tensor([true]).toBooleans()],
  ['allclose', () => tensor([1]).allclose(tensor([1]))],
  [
    'clipGradNorm_',
    () => {
      const p = tensor([3, 4], { dtype: 'float32' }).requiresGrad_();
      p.mul(1).sum().backward();
      return clipGradNorm_([p], 1);
    },
  ],
];

test.serial('every read is counted, inside a region or not; in default mode a region changes nothing', (t) => {
  t.true(READS.length >= 7);
  for (const [name, read] of READS) {
    const before = hostReads();
    read();
    t.is(hostReads(), before + 1, `${name} outside`);
    syncFree('a test region', read);
    t.is(hostReads(), before + 2, `${name} inside`);
  }
});

test.serial("in 'error' mode a read inside a region throws a HostReadError naming the op and the region", (t) => {
  setSyncDebugMode('error');
  try {
    for (const [name, read] of READS) {
      const error = t.throws(() => syncFree('the step under test', read), { instanceOf: HostReadError });
      t.is(error?.code, 'ERR_MMSSL_HOST_READ');
      t.regex(error?.message ?? '', /inside the step under test/, name);
      t.notThrows(read, `${name} outside a region`);
    }
    // Nested regions are one region; work that reads nothing passes.
    t.is(
      syncFree('outer', () => syncFree('inner', () => tensor([1, 2]).add(1).shape[0])),
      2,
    );
    t.throws(() => syncFree('outer', () => syncFree('inner', () => tensor([1]).item())), { message: /inside outer/ });
  } finally {
    setSyncDebugMode('default');
  }
});

test.serial("in 'warn' mode a region warns once per op, with code MMSSL_HOST_READ", async (t) => {
  const warnings: Error[] = [];
  const listen = (w: Error) => warnings.push(w);
  process.on('warning', listen);
  setSyncDebugMode('warn');
  try {
    syncFree('a warned region', () => {
      tensor([1]).item();
      tensor([2]).item();
      tensor([1, 2]).toNumbers();
    });
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  } finally {
    setSyncDebugMode('default');
    process.off('warning', listen);
  }
  const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'MMSSL_HOST_READ');
  t.deepEqual(
    ours.map((w) => w.message.split(' ')[0]),
    ['item', 'toTypedArray'],
  );
});

test.serial('withSyncDebugMode sets the mode for an async run and restores it; bad modes are refused', async (t) => {
  const inside = await withSyncDebugMode('error', async () => getSyncDebugMode());
  t.is(inside, 'error');
  t.is(getSyncDebugMode(), 'default');
  await t.throwsAsync(
    withSyncDebugMode('warn', async () => {
      throw new Error('boom');
    }),
    { message: 'boom' },
  );
  t.is(getSyncDebugMode(), 'default');
  t.throws(() => setSyncDebugMode('loud' as never), {
    code: 'ERR_MMSSL_ARG',
    message: /one of 'default', 'warn', 'error'/,
  });
  t.throws(() => syncFree('', () => 1), { code: 'ERR_MMSSL_ARG' });
});
