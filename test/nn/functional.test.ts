import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import {
  bilinear,
  conv2d,
  gradcheck,
  logsumexp,
  matmul,
  maxRelErr,
  mean,
  numel,
  randomArray,
  reduceDim,
  values,
  variance,
} from '../helpers/reference.js';

const F = nn.functional;
const { tidy, tensor } = torch;

function t64(data: number[], shape: number[]) {
  return tensor(data, { dtype: 'float64' }).reshape(shape);
}

test('conv2d equals direct convolution, with stride, padding, dilation and groups', (t) => {
  tidy(() => {
    const configs = [
      { x: [2, 3, 7, 6], w: [4, 3, 3, 3], stride: 1, pad: 0, dilation: 1, groups: 1 },
      { x: [1, 4, 9, 9], w: [6, 2, 3, 3], stride: 2, pad: 1, dilation: 1, groups: 2 },
      { x: [1, 2, 8, 8], w: [3, 2, 2, 2], stride: 1, pad: 2, dilation: 2, groups: 1 },
      { x: [2, 4, 72, 72], w: [8, 4, 11, 11], stride: 4, pad: 2, dilation: 1, groups: 1 },
    ];
    configs.forEach((c, i) => {
      const xd = randomArray(numel(c.x), 10 + i),
        wd = randomArray(numel(c.w), 20 + i),
        bd = randomArray(c.w[0], 30 + i);
      const ref = conv2d(xd, c.x, wd, c.w, bd, c.stride, c.pad, c.dilation, c.groups);
      const out = F.conv2d(t64(xd, c.x), t64(wd, c.w), t64(bd, [c.w[0]]), {
        stride: c.stride,
        padding: c.pad,
        dilation: c.dilation,
        groups: c.groups,
      });
      t.deepEqual(out.shape, ref.shape);
      t.true(maxRelErr(values(out), ref.data) < 1e-10, `config ${i}`);
    });
  });
});

test('linear is x · Wᵀ + b', (t) => {
  tidy(() => {
    const x = randomArray(4 * 5, 1),
      w = randomArray(3 * 5, 2),
      b = randomArray(3, 3);
    const wt = Array.from({ length: 15 }, (_, i) => w[(i % 3) * 5 + Math.floor(i / 3)]);
    const ref = matmul(x, wt, 4, 5, 3).map((v, i) => v + b[i % 3]);
    t.true(maxRelErr(values(F.linear(t64(x, [4, 5]), t64(w, [3, 5]), t64(b, [3]))), ref) < 1e-12);
    t.deepEqual(F.linear(t64(x, [4, 5]), t64(w, [3, 5])).shape, [4, 3]);
  });
});

test('batchNorm in training normalises by batch statistics and updates the running ones; eval uses them', (t) => {
  tidy(() => {
    const shape = [4, 3, 2, 2];
    const x = randomArray(numel(shape), 5, -2, 3);
    const perChannel = (c: number) => x.filter((_, i) => Math.floor(i / 4) % 3 === c);
    const gamma = [1.5, 0.5, -1],
      beta = [0.1, 0.2, 0.3];
    const runningMean = torch.zeros([3], { dtype: 'float64' }),
      runningVar = torch.ones([3], { dtype: 'float64' });
    const out = F.batchNorm(t64(x, shape), runningMean, runningVar, {
      weight: t64(gamma, [3]),
      bias: t64(beta, [3]),
      training: true,
      momentum: 0.1,
      eps: 1e-5,
    });
    const ref = x.map((v, i) => {
      const c = Math.floor(i / 4) % 3,
        ch = perChannel(c);
      return (gamma[c] * (v - mean(ch))) / Math.sqrt(variance(ch, false) + 1e-5) + beta[c];
    });
    t.true(maxRelErr(values(out), ref) < 1e-10);
    t.true(
      maxRelErr(
        values(runningMean),
        [0, 1, 2].map((c) => 0.1 * mean(perChannel(c))),
      ) < 1e-12,
    );
    t.true(
      maxRelErr(
        values(runningVar),
        [0, 1, 2].map((c) => 0.9 + 0.1 * variance(perChannel(c), true)),
      ) < 1e-12,
    );
    const evalOut = F.batchNorm(t64(x, shape), runningMean, runningVar, { training: false, eps: 1e-5 });
    const rm = values(runningMean),
      rv = values(runningVar);
    t.true(
      maxRelErr(
        values(evalOut),
        x.map((v, i) => {
          const c = Math.floor(i / 4) % 3;
          return (v - rm[c]) / Math.sqrt(rv[c] + 1e-5);
        }),
      ) < 1e-12,
    );
  });
});

test('maxPool2d and adaptiveAvgPool2d against window loops', (t) => {
  tidy(() => {
    const x = randomArray(2 * 7 * 7, 8);
    const xt = t64(x, [1, 2, 7, 7]);
    const pooled = F.maxPool2d(xt, 3, { stride: 2 });
    t.deepEqual(pooled.shape, [1, 2, 3, 3]);
    const refMax: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++) {
          let m = -Infinity;
          for (let a = 0; a < 3; a++)
            for (let b = 0; b < 3; b++) m = Math.max(m, x[c * 49 + (2 * i + a) * 7 + 2 * j + b]);
          refMax.push(m);
        }
    t.deepEqual(values(pooled), refMax);
    t.deepEqual(F.maxPool2d(xt, 2, { ceilMode: true }).shape, [1, 2, 4, 4]);
    t.deepEqual(F.maxPool2d(xt, 3, { stride: 1, padding: 1 }).shape, [1, 2, 7, 7]);
    const avg = F.adaptiveAvgPool2d(xt, [2, 3]);
    const refAvg: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 3; j++) {
          const [r0, r1] = [Math.floor((i * 7) / 2), Math.ceil(((i + 1) * 7) / 2)];
          const [c0, c1] = [Math.floor((j * 7) / 3), Math.ceil(((j + 1) * 7) / 3)];
          const window: number[] = [];
          for (let a = r0; a < r1; a++) for (let b = c0; b < c1; b++) window.push(x[c * 49 + a * 7 + b]);
          refAvg.push(mean(window));
        }
    t.true(maxRelErr(values(avg), refAvg) < 1e-12);
    t.true(
      maxRelErr(
        values(F.adaptiveAvgPool2d(xt, 1).flatten()),
        [0, 1].map((c) => mean(x.slice(c * 49, c * 49 + 49))),
      ) < 1e-12,
    );
  });
});

test('dropout zeroes about p of the elements and scales the rest; eval is the identity', (t) => {
  tidy(() => {
    torch.manualSeed(3);
    const out = values(F.dropout(torch.ones([20000]), { p: 0.3 }));
    const zeros = out.filter((v) => v === 0).length / out.length;
    t.true(Math.abs(zeros - 0.3) < 0.02, `dropped ${zeros}`);
    t.true(out.filter((v) => v !== 0).every((v) => Math.abs(v - 1 / 0.7) < 1e-6));
    t.deepEqual(values(F.dropout(tensor([1, 2, 3]), { p: 0.9, training: false })), [1, 2, 3]);
  });
});

test('normalize, softmax and logSoftmax against their definitions', (t) => {
  tidy(() => {
    const x = randomArray(12, 9, -3, 3);
    const rows = [0, 1, 2].map((r) => x.slice(r * 4, r * 4 + 4));
    const norm = F.normalize(t64(x, [3, 4]), { dim: 1 });
    t.true(
      maxRelErr(
        values(norm),
        rows.flatMap((r) => {
          const n = Math.hypot(...r);
          return r.map((v) => v / n);
        }),
      ) < 1e-12,
    );
    t.deepEqual(values(F.normalize(torch.zeros([1, 3], { dtype: 'float64' }))), [0, 0, 0]);
    const sm = F.softmax(t64(x, [3, 4]), 1);
    t.true(
      maxRelErr(
        values(sm),
        rows.flatMap((r) => r.map((v) => Math.exp(v - logsumexp(r)))),
      ) < 1e-12,
    );
    const lsm = F.logSoftmax(t64(x, [3, 4]), -1);
    t.true(
      maxRelErr(
        values(lsm),
        rows.flatMap((r) => r.map((v) => v - logsumexp(r))),
      ) < 1e-12,
    );
    const sm0 = F.softmax(t64(x, [3, 4]), 0);
    t.true(maxRelErr(values(sm0.sum(0)), [1, 1, 1, 1]) < 1e-12);
    t.is(F.softmax(tensor([[1, 2]]), 1, { dtype: 'float64' }).dtype, 'float64');
  });
});

test('crossEntropy against -log softmax, with weights, ignoreIndex, label smoothing and reductions', (t) => {
  tidy(() => {
    const logits = randomArray(5 * 4, 11, -2, 2),
      target = [0, 3, 1, 1, 2];
    const rows = target.map((_, i) => logits.slice(i * 4, i * 4 + 4));
    const nll = rows.map((r, i) => logsumexp(r) - r[target[i]]);
    const x = t64(logits, [5, 4]),
      y = tensor(target);
    t.true(Math.abs((F.crossEntropy(x, y).item() as number) - mean(nll)) < 1e-12);
    t.true(
      Math.abs((F.crossEntropy(x, y, { reduction: 'sum' }).item() as number) - nll.reduce((a, b) => a + b)) < 1e-12,
    );
    t.true(maxRelErr(values(F.crossEntropy(x, y, { reduction: 'none' })), nll) < 1e-12);
    const w = [0.5, 1, 2, 3];
    const wsum = target.reduce((a, c) => a + w[c], 0);
    const weighted = nll.reduce((a, v, i) => a + w[target[i]] * v, 0) / wsum;
    t.true(Math.abs((F.crossEntropy(x, y, { weight: t64(w, [4]) }).item() as number) - weighted) < 1e-12);
    const ignored = mean(nll.filter((_, i) => target[i] !== 1));
    t.true(Math.abs((F.crossEntropy(x, y, { ignoreIndex: 1 }).item() as number) - ignored) < 1e-12);
    const eps = 0.2;
    const smooth = mean(rows.map((r, i) => (1 - eps) * nll[i] + eps * mean(r.map((v) => logsumexp(r) - v))));
    t.true(Math.abs((F.crossEntropy(x, y, { labelSmoothing: eps }).item() as number) - smooth) < 1e-12);
  });
});

test('interpolate bilinear (align_corners false) and nearest against the sampling formulas', (t) => {
  tidy(() => {
    const shape = [1, 2, 5, 7];
    const x = randomArray(numel(shape), 12);
    const up = F.interpolate(t64(x, shape), { size: [8, 9], mode: 'bilinear' });
    t.true(maxRelErr(values(up), bilinear(x, shape, 8, 9)) < 1e-12);
    const down = F.interpolate(t64(x, shape), { size: [3, 4], mode: 'bilinear' });
    t.true(maxRelErr(values(down), bilinear(x, shape, 3, 4)) < 1e-12);
    const near = F.interpolate(t64(x, shape), { scaleFactor: 2 });
    t.deepEqual(near.shape, [1, 2, 10, 14]);
    t.is(near.select(2, 3).select(2, 5).select(1, 1).item(), x[35 + 1 * 7 + 2]);
    const aligned = F.interpolate(t64([0, 1, 2, 3], [1, 1, 2, 2]), { size: 3, mode: 'bilinear', alignCorners: true });
    t.deepEqual(values(aligned), [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]);
  });
});

/**
 * Antialiased bilinear resize of one axis as PIL and PyTorch define it: output i averages the inputs within `scale`
 * of its centre, weighted by a triangle stretched by `scale` (the downscale factor, at least 1), weights normalised.
 */
function antialiasAxis(length: number, out: number): number[][] {
  const scale = length / out,
    support = Math.max(scale, 1),
    inv = 1 / Math.max(scale, 1);
  return Array.from({ length: out }, (_, i) => {
    const centre = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0),
      hi = Math.min(Math.trunc(centre + support + 0.5), length);
    const w = Array.from({ length }, (_, j) =>
      j >= lo && j < hi ? Math.max(0, 1 - Math.abs((j - centre + 0.5) * inv)) : 0,
    );
    const total = w.reduce((a, b) => a + b, 0);
    return w.map((v) => v / total);
  });
}

test('interpolate bilinear with antialias: the separable triangle filter of PIL and torchvision when shrinking', (t) => {
  tidy(() => {
    const [h, w, oh, ow] = [13, 11, 4, 5];
    const x = randomArray(h * w, 21);
    const rows = antialiasAxis(h, oh),
      cols = antialiasAxis(w, ow);
    const expected = rows.flatMap((ry) =>
      cols.map((cx) => ry.reduce((acc, wy, y) => acc + wy * cx.reduce((a, wx, xx) => a + wx * x[y * w + xx], 0), 0)),
    );
    const out = F.interpolate(t64(x, [1, 1, h, w]), { size: [oh, ow], mode: 'bilinear', antialias: true });
    t.true(maxRelErr(values(out), expected) < 1e-12, 'antialiased');
    t.false(
      maxRelErr(values(F.interpolate(t64(x, [1, 1, h, w]), { size: [oh, ow], mode: 'bilinear' })), expected) < 1e-3,
      'differs from plain bilinear',
    );
    t.throws(() => F.interpolate(t64(x, [1, 1, h, w]), { size: [oh, ow], antialias: true }), {
      code: 'ERR_MMSSL_ARG',
      message: /antialias must be false unless mode is 'bilinear'/,
    });
  });
});

test('oneHot encodes class indices', (t) => {
  tidy(() => {
    t.deepEqual(F.oneHot(tensor([0, 2, 1]), 4).toArray(), [
      [1, 0, 0, 0],
      [0, 0, 1, 0],
      [0, 1, 0, 0],
    ]);
    t.deepEqual(F.oneHot(tensor([1, 2])).shape, [2, 3]);
  });
});

// Gradients of the layers against finite differences, in float64.
const W = randomArray(3 * 2 * 3 * 3, 40),
  B = randomArray(3, 41);
const layerGrads: [string, (x: torch.Tensor) => torch.Tensor, number[]][] = [
  [
    'conv2d',
    (x) =>
      F.conv2d(x, t64(W, [3, 2, 3, 3]), t64(B, [3]), { stride: 2, padding: 1 })
        .pow(2)
        .sum(),
    [2, 2, 5, 5],
  ],
  [
    'conv2d weight',
    (w) =>
      F.conv2d(t64(randomArray(2 * 2 * 5 * 5, 42), [2, 2, 5, 5]), w, null, { padding: 1 })
        .pow(2)
        .sum(),
    [3, 2, 3, 3],
  ],
  [
    'linear',
    (x) =>
      F.linear(x, t64(randomArray(12, 43), [3, 4]), t64(B, [3]))
        .tanh()
        .sum(),
    [2, 4],
  ],
  [
    'batchNorm (training)',
    (x) =>
      F.batchNorm(x, null, null, { weight: t64([1.5, -0.5], [2]), bias: t64([0.1, 0.2], [2]), training: true })
        .pow(3)
        .sum(),
    [3, 2, 2, 2],
  ],
  ['maxPool2d', (x) => F.maxPool2d(x, 2).pow(2).sum(), [1, 2, 4, 4]],
  ['adaptiveAvgPool2d', (x) => F.adaptiveAvgPool2d(x, [2, 2]).pow(2).sum(), [1, 2, 5, 5]],
  ['crossEntropy', (x) => F.crossEntropy(x, tensor([1, 0, 3]), { labelSmoothing: 0.1 }), [3, 4]],
  [
    'interpolate bilinear',
    (x) =>
      F.interpolate(x, { size: [5, 3], mode: 'bilinear' })
        .pow(2)
        .sum(),
    [1, 1, 3, 4],
  ],
];

layerGrads.forEach(([name, f, shape], i) => {
  test(`gradient of ${name} matches finite differences`, (t) => {
    const err = gradcheck(f, randomArray(numel(shape), 200 + i, -1, 1), shape);
    t.true(err < 1e-5, `max relative error ${err}`);
  });
});

test('reductions used by the references agree with themselves (sanity of reduceDim)', (t) => {
  t.deepEqual(reduceDim([1, 2, 3, 4, 5, 6], [2, 3], 1, (v) => v.reduce((a, b) => a + b)).data, [6, 15]);
  t.deepEqual(reduceDim([1, 2, 3, 4, 5, 6], [2, 3], 0, (v) => v.reduce((a, b) => a + b)).data, [5, 7, 9]);
});
