import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import {
  broadcast,
  logsumexp,
  matmul,
  maxRelErr,
  mean,
  numel,
  randomArray,
  reduceDim,
  sum,
  values,
  variance,
} from '../helpers/reference.js';

const { tidy, tensor } = torch;

function t64(data: number[], shape: number[]) {
  return tensor(data, { dtype: 'float64' }).reshape(shape);
}

const binary: [string, (a: torch.Tensor, b: torch.Tensor) => torch.Tensor, (x: number, y: number) => number][] = [
  ['add', (a, b) => a.add(b), (x, y) => x + y],
  ['add alpha', (a, b) => a.add(b, { alpha: 2.5 }), (x, y) => x + 2.5 * y],
  ['sub', (a, b) => a.sub(b), (x, y) => x - y],
  ['mul', (a, b) => a.mul(b), (x, y) => x * y],
  ['div', (a, b) => a.div(b), (x, y) => x / y],
  ['pow', (a, b) => a.abs().pow(b), (x, y) => Math.abs(x) ** y],
  ['maximum', (a, b) => a.maximum(b), Math.max],
  ['minimum', (a, b) => a.minimum(b), Math.min],
];

for (const [name, op, ref] of binary) {
  test(`${name} broadcasts [3, 1, 4] with [5, 1] like the reference`, (t) => {
    tidy(() => {
      const a = randomArray(12, 1),
        b = randomArray(5, 2, 0.5, 2);
      const expected = broadcast(a, [3, 1, 4], b, [5, 1], ref);
      const out = op(t64(a, [3, 1, 4]), t64(b, [5, 1]));
      t.deepEqual(out.shape, expected.shape);
      t.true(maxRelErr(values(out), expected.data) < 1e-12);
    });
  });
}

const unary: [string, (a: torch.Tensor) => torch.Tensor, (x: number) => number][] = [
  ['neg', (a) => a.neg(), (x) => -x],
  ['exp', (a) => a.exp(), Math.exp],
  ['log', (a) => a.abs().log(), (x) => Math.log(Math.abs(x))],
  ['sqrt', (a) => a.abs().sqrt(), (x) => Math.sqrt(Math.abs(x))],
  ['rsqrt', (a) => a.abs().rsqrt(), (x) => 1 / Math.sqrt(Math.abs(x))],
  ['abs', (a) => a.abs(), Math.abs],
  ['sign', (a) => a.sign(), Math.sign],
  ['sin', (a) => a.sin(), Math.sin],
  ['cos', (a) => a.cos(), Math.cos],
  ['sigmoid', (a) => a.sigmoid(), (x) => 1 / (1 + Math.exp(-x))],
  ['tanh', (a) => a.tanh(), Math.tanh],
  ['relu', (a) => a.relu(), (x) => Math.max(x, 0)],
  ['clamp', (a) => a.clamp({ min: -0.3, max: 0.4 }), (x) => Math.min(Math.max(x, -0.3), 0.4)],
  ['clamp min only', (a) => a.clamp({ min: 0.1 }), (x) => Math.max(x, 0.1)],
  ['scalar add', (a) => a.add(3), (x) => x + 3],
  ['scalar rsub', (a) => a.sub(0.5, { alpha: 2 }), (x) => x - 1],
  ['scalar mul', (a) => a.mul(-2), (x) => -2 * x],
  ['scalar div', (a) => a.div(4), (x) => x / 4],
  ['scalar pow', (a) => a.pow(3), (x) => x ** 3],
];

for (const [name, op, ref] of unary) {
  test(`${name} matches the reference elementwise`, (t) => {
    tidy(() => {
      const a = randomArray(24, 3, -2, 2);
      t.true(maxRelErr(values(op(t64(a, [2, 3, 4]))), a.map(ref)) < 1e-12);
    });
  });
}

test('integer division modes and type promotion follow PyTorch', (t) => {
  tidy(() => {
    const a = tensor([7, -7]);
    t.deepEqual(a.div(2).toArray(), [3.5, -3.5]);
    t.is(a.div(2).dtype, 'float32');
    t.deepEqual(a.div(2, { roundingMode: 'trunc' }).toArray(), [3, -3]);
    t.deepEqual(a.div(2, { roundingMode: 'floor' }).toArray(), [3, -4]);
    t.is(a.add(1).dtype, 'int64');
    t.is(a.add(0.5).dtype, 'float32');
    t.is(tensor([1], { dtype: 'float64' }).add(tensor([1], { dtype: 'float32' })).dtype, 'float64');
    t.is(tensor([1], { dtype: 'int32' }).mul(tensor(2, { dtype: 'int64' })).dtype, 'int32');
  });
});

test('comparisons, logicalNot, isnan, isfinite and where', (t) => {
  tidy(() => {
    const a = tensor([1, 2, 3]),
      b = tensor([3, 2, 1]);
    t.deepEqual(a.eq(b).toArray(), [false, true, false]);
    t.deepEqual(a.ne(b).toArray(), [true, false, true]);
    t.deepEqual(a.lt(b).toArray(), [true, false, false]);
    t.deepEqual(a.le(b).toArray(), [true, true, false]);
    t.deepEqual(a.gt(2).toArray(), [false, false, true]);
    t.deepEqual(a.ge(2).toArray(), [false, true, true]);
    t.deepEqual(a.gt(2).logicalNot().toArray(), [true, true, false]);
    const f = tensor([1, NaN, Infinity, -Infinity]);
    t.deepEqual(f.isnan().toArray(), [false, true, false, false]);
    t.deepEqual(f.isfinite().toArray(), [true, false, false, false]);
    t.deepEqual(torch.where(a.gt(1), a, b.neg()).toArray(), [-3, 2, 3]);
    t.true(tensor([1.5, 2]).allclose(tensor([1.5, 2 + 1e-9])));
    t.false(tensor([1.5, 2]).allclose(tensor([1.5, 2.1])));
  });
});

test('matmul, mm and bmm equal the triple-loop product', (t) => {
  tidy(() => {
    const a = randomArray(3 * 5, 4),
      b = randomArray(5 * 2, 5);
    const ref = matmul(a, b, 3, 5, 2);
    t.true(maxRelErr(values(t64(a, [3, 5]).mm(t64(b, [5, 2]))), ref) < 1e-12);
    t.true(maxRelErr(values(t64(a, [3, 5]).matmul(t64(b, [5, 2]))), ref) < 1e-12);
    const a2 = randomArray(3 * 5, 6);
    const bmm = t64([...a, ...a2], [2, 3, 5]).bmm(t64([...b, ...b], [2, 5, 2]));
    t.true(maxRelErr(values(bmm), [...ref, ...matmul(a2, b, 3, 5, 2)]) < 1e-12);
    t.deepEqual(t64(a, [3, 5]).matmul(t64(randomArray(5, 7), [5])).shape, [3]);
  });
});

test('float32 matmul is close to the float64 reference', (t) => {
  tidy(() => {
    const a = randomArray(64 * 48, 8),
      b = randomArray(48 * 32, 9);
    const out = tensor(a).reshape(64, 48).matmul(tensor(b).reshape(48, 32));
    t.true(maxRelErr(values(out), matmul(a, b, 64, 48, 32), 1e-3) < 1e-4);
  });
});

test('topk along a dim, largest and smallest, against sorting in TypeScript; k out of range names the size', (t) => {
  tidy(() => {
    const shape = [4, 7];
    const a = randomArray(numel(shape), 21, -3, 3); // distinct values: no ties to order
    const x = t64(a, shape);
    for (const largest of [true, false]) {
      const { values: v, indices: i } = x.topk(3, { largest });
      t.deepEqual(v.shape, [4, 3]);
      for (let r = 0; r < 4; r++) {
        const row = a.slice(r * 7, r * 7 + 7);
        const order = row
          .map((_, j) => j)
          .sort((p, q) => (largest ? row[q] - row[p] : row[p] - row[q]))
          .slice(0, 3);
        t.deepEqual(values(i).slice(r * 3, r * 3 + 3), order);
        t.deepEqual(
          values(v).slice(r * 3, r * 3 + 3),
          order.map((j) => row[j]),
        );
      }
    }
    const down = x.topk(2, { dim: 0 });
    t.deepEqual(down.values.shape, [2, 7]);
    t.is(x.topk(0).values.numel(), 0);
    t.throws(() => x.topk(8), { message: /topk: k must be in \[0, 7\] \(the size of dim -1 of shape \[4,7\]\)/ });
    t.throws(() => x.topk(1, { dim: 2 }), { message: /topk: dim/ });
  });
});

test('reductions over all elements, one dim and several dims, with keepdim', (t) => {
  tidy(() => {
    const shape = [3, 4, 5];
    const a = randomArray(numel(shape), 10, -3, 3);
    const x = t64(a, shape);
    t.true(Math.abs((x.sum().item() as number) - sum(a)) < 1e-12);
    t.true(Math.abs((x.mean().item() as number) - mean(a)) < 1e-12);
    t.true(Math.abs((x.logsumexp().item() as number) - logsumexp(a)) < 1e-12);
    t.true(Math.abs((x.std().item() as number) - Math.sqrt(variance(a, true))) < 1e-12);
    t.true(Math.abs((x.var(undefined, { unbiased: false }).item() as number) - variance(a, false)) < 1e-12);
    t.true(Math.abs((x.norm().item() as number) - Math.sqrt(sum(a.map((v) => v * v)))) < 1e-12);
    t.true(Math.abs((x.norm(1).item() as number) - sum(a.map(Math.abs))) < 1e-12);
    t.is(x.max().item(), Math.max(...a));
    t.is(x.min().item(), Math.min(...a));
    t.is(x.argmax().item(), a.indexOf(Math.max(...a)));
    for (const dim of [0, 1, 2]) {
      const cases: [torch.Tensor, (v: number[]) => number][] = [
        [x.sum(dim), sum],
        [x.mean(dim), mean],
        [x.logsumexp(dim), logsumexp],
        [x.std(dim), (v) => Math.sqrt(variance(v, true))],
        [x.var(dim, { unbiased: false }), (v) => variance(v, false)],
        [x.norm(2, dim), (v) => Math.sqrt(sum(v.map((u) => u * u)))],
        [x.max(dim).values, (v) => Math.max(...v)],
        [x.min(dim).values, (v) => Math.min(...v)],
        [x.max(dim).indices, (v) => v.indexOf(Math.max(...v))],
        [x.argmin(dim), (v) => v.indexOf(Math.min(...v))],
      ];
      for (const [out, f] of cases) {
        const ref = reduceDim(a, shape, dim, f);
        t.deepEqual(out.shape, ref.shape);
        t.true(maxRelErr(values(out), ref.data) < 1e-12);
      }
    }
    t.deepEqual(x.sum([0, 2]).shape, [4]);
    t.true(maxRelErr(values(x.sum([0, 2])), reduceDim(reduceDim(a, shape, 0, sum).data, [4, 5], 1, sum).data) < 1e-12);
    t.deepEqual(x.sum(1, { keepdim: true }).shape, [3, 1, 5]);
    t.deepEqual(x.max(2, { keepdim: true }).values.shape, [3, 4, 1]);
    t.deepEqual(x.mean(-1).shape, [3, 4]);
  });
});

test('view ops move elements where the index arithmetic says', (t) => {
  tidy(() => {
    const x = torch.arange(24).reshape(2, 3, 4);
    t.deepEqual(x.view([6, 4]).shape, [6, 4]);
    t.deepEqual(x.reshape(-1, 12).shape, [2, 12]);
    t.deepEqual(x.flatten().shape, [24]);
    t.deepEqual(x.flatten(1).shape, [2, 12]);
    t.deepEqual(x.unsqueeze(1).shape, [2, 1, 3, 4]);
    t.deepEqual(x.unsqueeze(1).squeeze(1).shape, [2, 3, 4]);
    t.deepEqual(torch.zeros(1, 3, 1).squeeze().shape, [3]);
    const p = x.permute(2, 0, 1);
    t.deepEqual(p.shape, [4, 2, 3]);
    t.is(p.select(0, 3).select(0, 1).select(0, 2).item(), 1 * 12 + 2 * 4 + 3);
    t.false(p.isContiguous());
    t.true(p.contiguous().isContiguous());
    t.deepEqual(x.transpose(0, 2).shape, [4, 3, 2]);
    t.deepEqual(torch.arange(6).reshape(2, 3).t().toArray(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    t.deepEqual(x.narrow(2, 1, 2).select(0, 0).select(0, 0).toArray(), [1, 2]);
    t.deepEqual(torch.arange(10).slice(0, 2, 9, 3).toArray(), [2, 5, 8]);
    t.deepEqual(torch.arange(10).slice(0, -3).toArray(), [7, 8, 9]);
    t.deepEqual(x.select(1, 2).toArray(), [
      [8, 9, 10, 11],
      [20, 21, 22, 23],
    ]);
    t.deepEqual(
      torch
        .arange(5)
        .indexSelect(0, tensor([4, 0, 4]))
        .toArray(),
      [4, 0, 4],
    );
    t.deepEqual(
      tensor([
        [1, 2],
        [3, 4],
      ])
        .gather(
          1,
          tensor([
            [1, 0],
            [1, 1],
          ]),
        )
        .toArray(),
      [
        [2, 1],
        [4, 4],
      ],
    );
    t.deepEqual(
      tensor([
        [1, 2],
        [3, 4],
      ])
        .flip(0)
        .toArray(),
      [
        [3, 4],
        [1, 2],
      ],
    );
    t.deepEqual(
      tensor([
        [1, 2],
        [3, 4],
      ])
        .flip(0, 1)
        .toArray(),
      [
        [4, 3],
        [2, 1],
      ],
    );
    t.deepEqual(
      tensor([[1], [2]])
        .expand(2, 3)
        .toArray(),
      [
        [1, 1, 1],
        [2, 2, 2],
      ],
    );
    t.deepEqual(tensor([1, 2]).repeat(2, 2).toArray(), [
      [1, 2, 1, 2],
      [1, 2, 1, 2],
    ]);
    t.is(x.size(-1), 4);
    t.deepEqual(x.size(), [2, 3, 4]);
    t.is(x.numel(), 24);
    t.is(x.dim(), 3);
  });
});

test('views share storage with their base', (t) => {
  tidy(() => {
    const x = torch.zeros(2, 3);
    x.select(0, 1).fill_(5);
    t.deepEqual(x.toArray(), [
      [0, 0, 0],
      [5, 5, 5],
    ]);
  });
});

test('in-place ops update the tensor and return it', (t) => {
  tidy(() => {
    const x = tensor([1, 2, 3], { dtype: 'float64' });
    t.is(x.add_(1), x);
    t.deepEqual(x.toArray(), [2, 3, 4]);
    x.sub_(tensor([1, 1, 1], { dtype: 'float64' }), { alpha: 2 });
    t.deepEqual(x.toArray(), [0, 1, 2]);
    x.mul_(3).div_(2);
    t.deepEqual(x.toArray(), [0, 1.5, 3]);
    x.clamp_({ max: 2 });
    t.deepEqual(x.toArray(), [0, 1.5, 2]);
    x.copy_(tensor([7, 8, 9]));
    t.deepEqual(x.toArray(), [7, 8, 9]);
    x.zero_();
    t.deepEqual(x.toArray(), [0, 0, 0]);
    const u = torch.empty([10000]).uniform_(-2, 3);
    t.true(values(u).every((v) => v >= -2 && v < 3));
    const n = values(torch.empty([20000], { dtype: 'float64' }).normal_(5, 2));
    const m = mean(n);
    t.true(Math.abs(m - 5) < 0.1 && Math.abs(Math.sqrt(variance(n, false)) - 2) < 0.1);
  });
});

test('channelsLast: same values in NHWC order, recognised by isContiguous, kept by to() and by convolutions', (t) => {
  torch.tidy(() => {
    const x = torch.randn([2, 3, 4, 5]);
    const nhwc = x.contiguous({ memoryFormat: 'channelsLast' });
    t.true(nhwc.isContiguous({ memoryFormat: 'channelsLast' }));
    t.false(nhwc.isContiguous());
    t.true(x.isContiguous());
    t.deepEqual(nhwc.toArray(), x.toArray());
    // permuted to NHWC, a channelsLast tensor is already dense: its storage is that order
    t.true(nhwc.permute(0, 2, 3, 1).isContiguous());
    t.false(x.permute(0, 2, 3, 1).isContiguous());
    const moved = x.to({ dtype: 'float64', memoryFormat: 'channelsLast' });
    t.true(moved.isContiguous({ memoryFormat: 'channelsLast' }));
    const w = torch.randn([6, 3, 3, 3]);
    const y = nn.functional.conv2d(nhwc, w.contiguous({ memoryFormat: 'channelsLast' }), null, { padding: 1 });
    t.true(y.isContiguous({ memoryFormat: 'channelsLast' }));
    t.true(y.allclose(nn.functional.conv2d(x, w, null, { padding: 1 }), { rtol: 1e-4, atol: 1e-5 }));
    t.throws(() => x.contiguous({ memoryFormat: 'nhwc' as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /memoryFormat must be one of/,
    });
  });
});
