import test from 'ava';

import { DisposedError, torch } from '../../lib/index.js';
import { gc } from '../helpers/gc.js';

const live = () => torch.memoryStats().tensors;

test.serial('tidy frees everything made inside except what it returns', (t) => {
  const before = live();
  const out = torch.tidy(() => {
    const a = torch.ones([4]);
    const b = a.mul(2);
    b.add(1);
    return b.sum();
  });
  t.is(live(), before + 1);
  t.is(out.item(), 8);
  out.dispose();
  t.is(live(), before);
});

test.serial(
  'tidy keeps tensors returned inside arrays, objects and Maps, and moves them to the enclosing scope',
  (t) => {
    const before = live();
    torch.tidy(() => {
      const inner = torch.tidy(() => {
        const x = torch.arange(3);
        return { list: [x.add(1)], map: new Map([['y', x.mul(2)]]), meta: { n: 1 } };
      });
      t.is(live(), before + 2);
      t.deepEqual(inner.list[0].toArray(), [1, 2, 3]);
      t.deepEqual(inner.map.get('y')!.toArray(), [0, 2, 4]);
    });
    t.is(live(), before);
  },
);

test.serial('keep() exempts a tensor from every scope; dispose() and using free it', (t) => {
  const before = live();
  let kept: torch.Tensor | undefined;
  torch.tidy(() => {
    kept = torch.keep(torch.ones([2]));
    torch.zeros([2]);
  });
  t.is(live(), before + 1);
  torch.tidy(() => undefined);
  {
    using u = torch.ones([3]);
    t.is(live(), before + 2);
    t.is(u.numel(), 3);
  }
  t.is(live(), before + 1);
  kept!.dispose();
  t.is(live(), before);
});

test.serial("a throw inside tidy frees the scope's tensors and propagates the error", (t) => {
  const before = live();
  t.throws(
    () =>
      torch.tidy(() => {
        torch.ones([5]);
        throw new Error('inner failure');
      }),
    { message: 'inner failure' },
  );
  t.is(live(), before);
});

test.serial('tidy rejects an async function rather than leaking across an await', (t) => {
  const before = live();
  t.throws(() => torch.tidy(async () => torch.ones([1])), { code: 'ERR_MMSSL_ARG', message: /synchronous/ });
  t.is(live(), before);
});

test.serial('a disposed tensor throws DisposedError everywhere, and disposing twice is harmless', (t) => {
  const x = torch.ones([2]);
  x.dispose();
  x.dispose();
  t.true(x.isDisposed);
  t.is(String(x), 'Tensor(disposed)');
  for (const use of [
    () => x.shape,
    () => x.add(1),
    () => torch.ones([2]).add(x),
    () => torch.cat([x]),
    () => x.toArray(),
  ]) {
    t.throws(() => torch.tidy(use as () => unknown), { instanceOf: DisposedError, code: 'ERR_MMSSL_DISPOSED' });
  }
  const escaped = torch.tidy(() => {
    const y = torch.ones([1]);
    return () => y.add(1);
  });
  t.throws(escaped, { code: 'ERR_MMSSL_DISPOSED' });
});

test.serial('memoryStats counts live handles and distinct storage bytes by device', (t) => {
  const before = torch.memoryStats();
  const x = torch.zeros([1000], { dtype: 'float64' });
  const view = x.narrow(0, 0, 10);
  const after = torch.memoryStats();
  t.is(after.tensors, before.tensors + 2);
  t.is((after.bytes.cpu ?? 0) - (before.bytes.cpu ?? 0), 8000);
  x.dispose();
  t.is((torch.memoryStats().bytes.cpu ?? 0) - (before.bytes.cpu ?? 0), 8000, 'the view still holds the storage');
  view.dispose();
  t.deepEqual(torch.memoryStats().tensors, before.tensors);
});

test.serial('tensors dropped without dispose are freed by the garbage collector', async (t) => {
  const before = live();
  (() => {
    for (let i = 0; i < 100; i++) torch.ones([10]);
  })();
  t.is(live(), before + 100);
  for (let i = 0; i < 10 && live() > before; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  t.true(live() <= before, `${live() - before} of the 100 dropped tensors are still live`);
});
