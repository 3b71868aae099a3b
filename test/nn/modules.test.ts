import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import {
  conv2d,
  matmul,
  maxRelErr,
  mean,
  numel,
  randomArray,
  reduceDim,
  values,
  variance,
} from '../helpers/reference.js';
import { pytorchReference, sameDraws } from './torchvision_reference.js';

const { tidy } = torch;
const live = () => torch.memoryStats().tensors;
const t64 = (data: number[], shape: number[]) => torch.tensor(data, { dtype: 'float64' }).reshape(shape);
const keys = (m: nn.Module) => [...m.stateDict()].map(([k, v]) => `${k} [${v.shape.join(', ')}]`);

const pytorch = await pytorchReference('layers');

test('Linear: PyTorch keys and shapes, y = x · Wᵀ + b on the last dimension, default init within ±1/sqrt(in)', (t) => {
  tidy(() => {
    using linear = new nn.Linear(5, 3);
    t.deepEqual(keys(linear), ['weight [3, 5]', 'bias [3]']);
    using noBias = new nn.Linear(5, 3, { bias: false });
    t.deepEqual(keys(noBias), ['weight [3, 5]']);
    t.true([...values(linear.weight), ...values(linear.bias!)].every((v) => Math.abs(v) <= 1 / Math.sqrt(5)));
    linear.to('float64');
    const x = randomArray(2 * 4 * 5, 1);
    const w = values(linear.weight),
      b = values(linear.bias!);
    const wt = Array.from({ length: 15 }, (_, i) => w[(i % 3) * 5 + Math.floor(i / 3)]);
    const ref = matmul(x, wt, 8, 5, 3).map((v, i) => v + b[i % 3]);
    const out = linear.forward(t64(x, [2, 4, 5]));
    t.deepEqual(out.shape, [2, 4, 3]);
    t.true(maxRelErr(values(out), ref) < 1e-12);
    t.is(new nn.Identity().forward(out), out);
    t.throws(() => linear.forward(t64(x, [8, 5]).t()), {
      code: 'ERR_MMSSL_ARG',
      message:
        /Linear: input must be a tensor whose last dimension is 5, got a float64 tensor of shape \[5, 8\] on cpu/,
    });
    t.throws(() => new nn.Linear(0, 3), { code: 'ERR_MMSSL_ARG', message: /inFeatures must be a positive integer/ });
    t.throws(() => new nn.Linear(2, 3, { bias: 1 as never }), { code: 'ERR_MMSSL_ARG' });
  });
});

test('Conv2d: weight [out, in / groups, kH, kW], and the forward of a direct convolution', (t) => {
  torch.manualSeed(11);
  tidy(() => {
    using conv = new nn.Conv2d(4, 6, [3, 2], { stride: 2, padding: 1, groups: 2 });
    t.deepEqual(keys(conv), ['weight [6, 2, 3, 2]', 'bias [6]']);
    t.deepEqual(
      [conv.kernelSize, conv.stride, conv.padding, conv.dilation, conv.groups],
      [[3, 2], [2, 2], [1, 1], [1, 1], 2],
    );
    t.true(
      values(conv.bias!).every((v) => Math.abs(v) <= 1 / Math.sqrt(12)),
      'bias within ±1/sqrt(fan_in)',
    );
    using square = new nn.Conv2d(2, 3, 3, { padding: 1, dilation: 1, bias: false }).to('float64');
    t.is(square.bias, null);
    const x = randomArray(2 * 2 * 6 * 5, 2);
    const ref = conv2d(x, [2, 2, 6, 5], values(square.weight), [3, 2, 3, 3], null, 1, 1);
    const out = square.forward(t64(x, [2, 2, 6, 5]));
    t.deepEqual(out.shape, ref.shape);
    // Error relative to the outputs' scale (about 1): an output that happens to be near 0 has no relative precision.
    t.true(maxRelErr(values(out), ref.data, 1) < 1e-12);
    t.throws(() => square.forward(t64(x, [4, 6, 5])), {
      code: 'ERR_MMSSL_ARG',
      message: /Conv2d: input must be a \[N, 2, H, W\] tensor/,
    });
    t.throws(() => new nn.Conv2d(4, 6, 3, { groups: 3 }), {
      code: 'ERR_MMSSL_ARG',
      message: /groups must be a divisor of inChannels \(4\) and outChannels \(6\)/,
    });
    t.throws(() => new nn.Conv2d(4, 6, 0), { code: 'ERR_MMSSL_ARG', message: /kernelSize must be an integer >= 1/ });
    t.throws(() => new nn.Conv2d(4, 6, 3, { padding: [1, -1] }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.Conv2d(4, 6, 3, { stride: 1.5 }), { code: 'ERR_MMSSL_ARG' });
  });
});

test("Conv2d, Linear and BatchNorm2d draw PyTorch's default init bit for bit after the same seed", (t) => {
  sameDraws(t, pytorch, 'conv2d', () => Object.fromEntries(new nn.Conv2d(3, 8, 3).stateDict()));
  sameDraws(t, pytorch, 'conv2d grouped, no bias', () =>
    Object.fromEntries(new nn.Conv2d(4, 6, [3, 5], { stride: 2, groups: 2, bias: false }).stateDict()),
  );
  sameDraws(t, pytorch, 'linear', () => Object.fromEntries(new nn.Linear(20, 7).stateDict()));
  sameDraws(t, pytorch, 'batchNorm2d', () => Object.fromEntries(new nn.BatchNorm2d(5).stateDict()));
});

/** Per-channel (dim 1) values of a row-major [N, C, ...] array. */
function channel(x: number[], shape: number[], c: number): number[] {
  const inner = numel(shape.slice(2));
  return x.filter((_, i) => Math.floor(i / inner) % shape[1] === c);
}

test('BatchNorm2d: batch statistics and momentum updates in training, running statistics in eval', (t) => {
  tidy(() => {
    const shape = [3, 2, 2, 3];
    const bn = new nn.BatchNorm2d(2, { momentum: 0.2, eps: 1e-3 }).to('float64');
    t.deepEqual(keys(bn), ['weight [2]', 'bias [2]', 'running_mean [2]', 'running_var [2]', 'num_batches_tracked []']);
    torch.noGrad(() => bn.weight!.copy_(t64([2, -1], [2])));
    const x = randomArray(numel(shape), 3, -1, 2);
    const out = values(bn.forward(t64(x, shape)));
    const stats = [0, 1].map((c) => ({
      m: mean(channel(x, shape, c)),
      v: variance(channel(x, shape, c), false),
      u: variance(channel(x, shape, c), true),
    }));
    const ref = x.map((v, i) => {
      const c = Math.floor(i / 6) % 2;
      return ([2, -1][c] * (v - stats[c].m)) / Math.sqrt(stats[c].v + 1e-3);
    });
    t.true(maxRelErr(out, ref) < 1e-10);
    t.true(
      maxRelErr(
        values(bn.runningMean!),
        stats.map((s) => 0.2 * s.m),
      ) < 1e-12,
    );
    t.true(
      maxRelErr(
        values(bn.runningVar!),
        stats.map((s) => 0.8 + 0.2 * s.u),
      ) < 1e-12,
    );
    t.is(bn.numBatchesTracked!.item(), 1);
    t.is(bn.numBatchesTracked!.dtype, 'int64');
    bn.eval();
    const evalOut = values(bn.forward(t64(x, shape)));
    const rm = values(bn.runningMean!),
      rv = values(bn.runningVar!);
    t.true(
      maxRelErr(
        evalOut,
        x.map((v, i) => {
          const c = Math.floor(i / 6) % 2;
          return ([2, -1][c] * (v - rm[c])) / Math.sqrt(rv[c] + 1e-3);
        }),
      ) < 1e-10,
    );
    t.is(bn.numBatchesTracked!.item(), 1, 'eval mode does not count');
    bn.dispose();
  });
});

test('BatchNorm with momentum null keeps the cumulative average of the batch statistics', (t) => {
  tidy(() => {
    const bn = new nn.BatchNorm1d(3, { momentum: null }).to('float64');
    const batches = [1, 2, 3].map((seed) => randomArray(4 * 3, seed, -2, 2));
    for (const b of batches) bn.forward(t64(b, [4, 3]));
    const colMeans = batches.map((b) => reduceDim(b, [4, 3], 0, mean).data);
    const colVars = batches.map((b) => reduceDim(b, [4, 3], 0, (v) => variance(v, true)).data);
    const average = (rows: number[][]) => [0, 1, 2].map((c) => mean(rows.map((r) => r[c])));
    t.true(
      maxRelErr(values(bn.runningMean!), average(colMeans)) < 1e-12,
      'the mean of the batch means (0 weighs nothing)',
    );
    t.true(maxRelErr(values(bn.runningVar!), average(colVars)) < 1e-12);
    t.is(bn.numBatchesTracked!.item(), 3);
    bn.dispose();
  });
});

test('BatchNorm without affine or running statistics; BatchNorm1d takes [N, C] and [N, C, L]', (t) => {
  tidy(() => {
    const plain = new nn.BatchNorm1d(2, { affine: false, trackRunningStats: false });
    t.deepEqual(keys(plain), []);
    t.deepEqual([plain.weight, plain.runningMean, plain.numBatchesTracked], [null, null, null]);
    plain.eval();
    const x = randomArray(5 * 2 * 4, 4);
    const out = values(plain.forward(t64(x, [5, 2, 4])));
    const ref = x.map((v, i) => {
      const ch = channel(x, [5, 2, 4], Math.floor(i / 4) % 2);
      return (v - mean(ch)) / Math.sqrt(variance(ch, false) + 1e-5);
    });
    t.true(maxRelErr(out, ref) < 1e-6, 'eval mode without running statistics normalises by the batch');
    using statsOnly = new nn.BatchNorm1d(2, { affine: false });
    t.deepEqual(keys(statsOnly), ['running_mean [2]', 'running_var [2]', 'num_batches_tracked []']);
    using bn = new nn.BatchNorm1d(2),
      bn2d = new nn.BatchNorm2d(2);
    t.throws(() => bn.forward(torch.ones([1, 2])), {
      code: 'ERR_MMSSL_ARG',
      message: /BatchNorm1d: input must be more than 1 value per channel in training mode/,
    });
    t.throws(() => bn.forward(torch.ones([4, 3])), {
      code: 'ERR_MMSSL_ARG',
      message: /BatchNorm1d: input must be a 2-D or 3-D tensor with 2 channels \(dim 1\)/,
    });
    t.throws(() => bn2d.forward(torch.ones([4, 2])), {
      code: 'ERR_MMSSL_ARG',
      message: /BatchNorm2d: input must be a 4-D tensor/,
    });
    t.throws(() => new nn.BatchNorm2d(0), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.BatchNorm2d(2, { momentum: '0.1' as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.BatchNorm2d(2, { affine: 0 as never }), { code: 'ERR_MMSSL_ARG' });
  });
});

test('ReLU, MaxPool2d, AdaptiveAvgPool2d and Flatten against window loops', (t) => {
  tidy(() => {
    const x = randomArray(2 * 5 * 5, 5);
    const xt = t64(x, [1, 2, 5, 5]);
    t.deepEqual(
      values(new nn.ReLU().forward(xt)),
      x.map((v) => Math.max(v, 0)),
    );
    const pool = new nn.MaxPool2d(3, { stride: 2, padding: 1 });
    t.deepEqual(
      [pool.kernelSize, pool.stride, pool.padding],
      [
        [3, 3],
        [2, 2],
        [1, 1],
      ],
    );
    const pooled = pool.forward(xt);
    const refMax: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++) {
          let m = -Infinity;
          for (let a = -1; a < 2; a++)
            for (let b = -1; b < 2; b++) {
              const y = 2 * i + a,
                z = 2 * j + b;
              if (y >= 0 && y < 5 && z >= 0 && z < 5) m = Math.max(m, x[c * 25 + y * 5 + z]);
            }
          refMax.push(m);
        }
    t.deepEqual(values(pooled), refMax);
    t.deepEqual(new nn.MaxPool2d(2).stride, [2, 2], 'the stride defaults to the kernel size');
    const avg = new nn.AdaptiveAvgPool2d(1).forward(xt);
    t.true(
      maxRelErr(
        values(avg),
        [0, 1].map((c) => mean(x.slice(c * 25, c * 25 + 25))),
      ) < 1e-12,
    );
    t.deepEqual(new nn.Flatten().forward(avg).shape, [1, 2]);
    t.deepEqual(new nn.Flatten(0, 2).forward(xt).shape, [10, 5]);
    t.throws(() => new nn.ReLU().forward(x as never), {
      code: 'ERR_MMSSL_ARG',
      message: /relu: input must be a Tensor/,
    });
    t.throws(() => pool.forward(x as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.MaxPool2d([2, 0]), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.MaxPool2d(2, { ceilMode: 1 as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.AdaptiveAvgPool2d(0), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.Flatten(0.5), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new nn.Flatten().forward([1, 2] as never), { code: 'ERR_MMSSL_ARG' });
  });
});

test("Dropout: PyTorch's mask after the same seed, 0 or x / (1 - p) in training, the identity in eval", (t) => {
  sameDraws(t, pytorch, 'dropout', () => ({ y: new nn.Dropout(0.3).forward(torch.ones([64, 33])) }));
  tidy(() => {
    const drop = new nn.Dropout(0.25);
    const x = t64(randomArray(400, 6, 0.5, 1), [400]);
    const y = values(drop.forward(x)),
      xs = values(x);
    t.true(y.every((v, i) => v === 0 || Math.abs(v - xs[i] / 0.75) < 1e-12));
    const kept = y.filter((v) => v !== 0).length / 400;
    t.true(kept > 0.65 && kept < 0.85, `kept ${kept}`);
    t.deepEqual(values(drop.eval().forward(x)), xs);
    t.deepEqual(values(new nn.Dropout(0).forward(x)), xs);
    t.throws(() => new nn.Dropout(1.5), {
      code: 'ERR_MMSSL_ARG',
      message: /Dropout: p must be a probability in \[0, 1\]/,
    });
  });
});

test('Sequential names its layers 0, 1, ... and chains them', (t) => {
  tidy(() => {
    const seq = new nn.Sequential(new nn.Linear(4, 3), new nn.ReLU(), new nn.Linear(3, 2));
    t.deepEqual(keys(seq), ['0.weight [3, 4]', '0.bias [3]', '2.weight [2, 3]', '2.bias [2]']);
    t.deepEqual(
      seq.namedChildren().map(([k]) => k),
      ['0', '1', '2'],
    );
    t.is(seq.length, 3);
    t.true(seq.at(-1) === seq.children()[2]);
    const x = torch.randn([5, 4]);
    t.deepEqual(values(seq.forward(x)), values(seq.at(2).forward(seq.at(1).forward(seq.at(0).forward(x)))));
    const relu = new nn.ReLU();
    t.deepEqual(
      new nn.Sequential(relu, relu).namedChildren().map(([k]) => k),
      ['0'],
      'a shared layer is one child',
    );
    t.throws(() => seq.at(3), { code: 'ERR_MMSSL_ARG', message: /Sequential\.at: index must be in \[-3, 2\]/ });
    t.throws(() => new nn.Sequential(new nn.ReLU(), null as never), {
      code: 'ERR_MMSSL_ARG',
      message: /layers\[1\] must be a Module/,
    });
    seq.dispose();
  });
});

test.serial('layers free what they allocate: forward inside tidy and dispose leave no tensor behind', (t) => {
  const before = live();
  const layers = [
    new nn.Sequential(
      new nn.Conv2d(2, 4, 3, { padding: 1 }),
      new nn.BatchNorm2d(4),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
    ),
    new nn.Sequential(
      new nn.AdaptiveAvgPool2d(2),
      new nn.Flatten(),
      new nn.Dropout(0.1),
      new nn.Linear(16, 3),
      new nn.Identity(),
    ),
  ];
  tidy(() => {
    const y = layers[1].forward(layers[0].forward(torch.randn([2, 2, 6, 6])));
    y.sum().backward();
  });
  t.is(live(), before + 9, 'only the parameters and buffers: conv 2, batch norm 2 + 3, linear 2');
  for (const l of layers) l.dispose();
  t.is(live(), before);
});
