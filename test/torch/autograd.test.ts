import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import { gradcheck, randomArray, values } from '../helpers/reference.js';

const F = nn.functional;
const { tidy, tensor } = torch;

// Each op's autograd gradient against central finite differences, in float64.
const cases: [string, (x: torch.Tensor) => torch.Tensor, number[]][] = [
  ['add/mul chain', (x) => x.mul(x).add(x.mul(3)).sum(), [2, 3]],
  ['sub/div', (x) => x.sub(0.5).div(x.abs().add(1)).sum(), [4]],
  ['pow', (x) => x.abs().add(0.1).pow(2.5).sum(), [5]],
  ['exp/log', (x) => x.exp().add(1).log().sum(), [3, 2]],
  ['sqrt/rsqrt', (x) => x.abs().add(0.5).sqrt().add(x.abs().add(0.5).rsqrt()).sum(), [4]],
  ['sigmoid/tanh', (x) => x.sigmoid().mul(x.tanh()).sum(), [6]],
  ['relu', (x) => x.relu().mul(x).sum(), [7]],
  ['clamp', (x) => x.clamp({ min: -0.5, max: 0.5 }).mul(x).sum(), [8]],
  ['matmul', (x) => x.matmul(x.t()).sum(), [3, 4]],
  ['bmm', (x) => x.bmm(x.transpose(1, 2)).pow(2).sum(), [2, 2, 3]],
  ['mean/std/var', (x) => x.mean(1).add(x.std(1)).sum().add(x.var(0).sum()), [3, 4]],
  ['logsumexp', (x) => x.logsumexp(1).sum(), [3, 5]],
  ['norm', (x) => x.norm(2, 1).sum(), [3, 4]],
  ['max/min along dim', (x) => x.max(1).values.sum().add(x.min(0).values.sum()), [3, 4]],
  [
    'views',
    (x) =>
      x
        .reshape(4, 3)
        .permute(1, 0)
        .flatten()
        .narrow(0, 2, 6)
        .mul(tensor([1, 2, 3, 4, 5, 6], { dtype: 'float64' }))
        .sum(),
    [3, 4],
  ],
  ['slice/select/flip', (x) => x.slice(1, 0, 3, 2).flip(0).select(1, 1).pow(2).sum(), [3, 4]],
  [
    'gather/indexSelect',
    (x) =>
      x
        .gather(
          1,
          tensor([
            [0, 2],
            [1, 1],
            [3, 0],
          ]),
        )
        .pow(2)
        .sum()
        .add(x.indexSelect(1, tensor([3, 3])).sum()),
    [3, 4],
  ],
  [
    'cat/stack',
    (x) =>
      torch
        .cat([x, x.mul(2)], 1)
        .pow(2)
        .sum()
        .add(torch.stack([x, x.exp()]).select(0, 1).sum()),
    [2, 3],
  ],
  [
    'expand/repeat',
    (x) =>
      x
        .unsqueeze(0)
        .expand(3, 2, 2)
        .mul(x.repeat(3, 1).reshape(3, 2, 2))
        .sum(),
    [2, 2],
  ],
  ['where', (x) => torch.where(x.gt(0), x.pow(2), x.mul(-3)).sum(), [6]],
  ['softmax/logSoftmax', (x) => F.softmax(x, 1).mul(F.logSoftmax(x, 0)).sum(), [3, 4]],
  [
    'normalize',
    (x) =>
      F.normalize(x, { dim: 1 })
        .mul(
          tensor(
            [
              [1, 2, 3],
              [4, 5, 6],
            ],
            { dtype: 'float64' },
          ),
        )
        .sum(),
    [2, 3],
  ],
];

cases.forEach(([name, f, shape], i) => {
  test(`gradient of ${name} matches finite differences`, (t) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const err = gradcheck(f, randomArray(n, 100 + i, -1.5, 1.5), shape);
    t.true(err < 1e-5, `max relative error ${err}`);
  });
});

test('backward accepts an explicit gradient, and gradients accumulate across calls', (t) => {
  tidy(() => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const y = x.mul(x);
    y.backward(tensor([1, 0.5, 2], { dtype: 'float64' }), { retainGraph: true });
    t.deepEqual(x.grad!.toArray(), [2, 2, 12]);
    y.backward(tensor([1, 1, 1], { dtype: 'float64' }));
    t.deepEqual(x.grad!.toArray(), [4, 6, 18]);
  });
});

test('a second backward through a freed graph fails with a TorchError, retainGraph keeps it', (t) => {
  tidy(() => {
    const x = tensor([1, 2], { dtype: 'float64', requiresGrad: true });
    const y = x.exp().sum();
    y.backward();
    const e = t.throws(() => y.backward());
    t.is((e as { code?: string }).code, 'ERR_MMSSL_TORCH');
    t.regex(e!.message, /backward/);
  });
});

test('requiresGrad, isLeaf, gradFn, detach and retainGrad', (t) => {
  tidy(() => {
    const x = torch.ones([2]);
    t.false(x.requiresGrad);
    x.requiresGrad = true;
    t.true(x.requiresGrad);
    t.true(x.isLeaf);
    t.is(x.gradFn, null);
    const y = x.mul(2);
    t.false(y.isLeaf);
    t.regex(y.gradFn!, /MulBackward/);
    y.retainGrad();
    y.sum().backward();
    t.deepEqual(y.grad!.toArray(), [1, 1]);
    t.false(y.detach().requiresGrad);
    t.is(torch.ones([1]).grad, null);
  });
});

test('noGrad stops recording, enableGrad restores it, and both restore the mode after a throw', (t) => {
  tidy(() => {
    const x = torch.ones([2], { requiresGrad: true });
    t.true(torch.isGradEnabled());
    const y = torch.noGrad(() => {
      t.false(torch.isGradEnabled());
      const inner = torch.enableGrad(() => x.mul(2));
      t.true(inner.requiresGrad);
      return x.mul(2);
    });
    t.false(y.requiresGrad);
    t.true(torch.isGradEnabled());
    t.throws(
      () =>
        torch.noGrad(() => {
          throw new Error('boom');
        }),
      { message: 'boom' },
    );
    t.true(torch.isGradEnabled());
    t.throws(() => torch.noGrad(async () => 1 as never), { code: 'ERR_MMSSL_ARG' });
    t.true(torch.isGradEnabled());
  });
});

test('zeroGrad clears or zeroes every parameter in one call', (t) => {
  tidy(() => {
    const a = torch.ones([2], { requiresGrad: true }),
      b = torch.ones([3], { requiresGrad: true });
    a.mul(3).sum().add(b.mul(2).sum()).backward();
    torch.zeroGrad([a, b], { setToNone: false });
    t.deepEqual(a.grad!.toArray(), [0, 0]);
    t.deepEqual(b.grad!.toArray(), [0, 0, 0]);
    torch.zeroGrad([a, b]);
    t.is(a.grad, null);
    t.is(b.grad, null);
  });
});

test('autograd.grad returns gradients without accumulating, and supports double backward', (t) => {
  tidy(() => {
    const x = tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
    const y = x.pow(3).sum();
    const [g] = torch.autograd.grad([y], [x], { createGraph: true });
    t.deepEqual(g!.toArray(), [3, 12, 27]);
    t.is(x.grad, null);
    const [g2] = torch.autograd.grad([g!.sum()], [x]);
    t.deepEqual(g2!.toArray(), [6, 12, 18]);
    const z = torch.ones([1], { requiresGrad: true });
    t.deepEqual(
      torch.autograd.grad([x.sum()], [x, z], { allowUnused: true }).map((v) => v === null),
      [false, true],
    );
  });
});

test('setting grad by hand and reading it back', (t) => {
  tidy(() => {
    const p = torch.zeros([2], { requiresGrad: true });
    p.grad = tensor([0.5, -1]);
    t.deepEqual(values(p.grad!), [0.5, -1]);
    p.grad = null;
    t.is(p.grad, null);
  });
});

test("assigning data swaps a tensor's data in place, keeping its identity and requiresGrad", (t) => {
  const p = torch.zeros([2]).requiresGrad_();
  t.deepEqual(p.shape, [2]);
  t.is(p.dtype, 'float32');
  p.data = torch.ones([3], { dtype: 'float64' });
  t.deepEqual(p.shape, [3]);
  t.is(p.dtype, 'float64');
  t.true(p.requiresGrad);
  t.true(p.isLeaf);
  p.mul(2).sum().backward();
  t.deepEqual(p.grad?.toArray(), [2, 2, 2]);
  t.throws(
    () => {
      p.data = 3 as unknown as torch.Tensor;
    },
    { code: 'ERR_MMSSL_ARG' },
  );
});
