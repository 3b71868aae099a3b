import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import { matmul, maxRelErr, randomArray, values } from '../helpers/reference.js';
import { pytorchReference, sameDraws } from './torchvision_reference.js';

const { ClassifierHead, ProjectionHead } = nn.models;
const { tidy } = torch;
const live = () => torch.memoryStats().tensors;
const t64 = (data: number[], shape: number[]) => torch.tensor(data, { dtype: 'float64' }).reshape(shape);
const keys = (m: nn.Module) => [...m.stateDict()].map(([k, v]) => `${k} [${v.shape.join(', ')}]`);

/** x [n, k] · Wᵀ + b for W [m, k], in float64. */
function affine(x: number[], n: number, weight: torch.Tensor, bias: torch.Tensor): number[] {
  const [m, k] = weight.shape;
  const w = values(weight),
    b = values(bias);
  const wt = Array.from({ length: k * m }, (_, i) => w[(i % m) * k + Math.floor(i / m)]);
  return matmul(x, wt, n, k, m).map((v, i) => v + b[i % m]);
}

const pytorch = await pytorchReference('layers');

test('ProjectionHead is Linear, (BatchNorm1d,) ReLU per hidden width, then a Linear, with Sequential keys', (t) => {
  tidy(() => {
    const head = new ProjectionHead([8, 16, 4]);
    t.deepEqual(keys(head), ['0.weight [16, 8]', '0.bias [16]', '2.weight [4, 16]', '2.bias [4]']);
    t.deepEqual(
      head.children().map((m) => m.constructor.name),
      ['Linear', 'ReLU', 'Linear'],
    );
    t.deepEqual(head.widths, [8, 16, 4]);
    const deep = new ProjectionHead([6, 5, 4, 3], { batchNorm: true });
    t.deepEqual(
      deep.children().map((m) => m.constructor.name),
      ['Linear', 'BatchNorm1d', 'ReLU', 'Linear', 'BatchNorm1d', 'ReLU', 'Linear'],
    );
    t.deepEqual(keys(deep).slice(0, 7), [
      '0.weight [5, 6]',
      '0.bias [5]',
      '1.weight [5]',
      '1.bias [5]',
      '1.running_mean [5]',
      '1.running_var [5]',
      '1.num_batches_tracked []',
    ]);
    using single = new ProjectionHead([3, 2]);
    t.deepEqual(keys(single), ['0.weight [2, 3]', '0.bias [2]'], 'two widths: one Linear, no activation');
    for (const m of [head, deep]) m.dispose();
  });
});

test('ProjectionHead forward equals relu(x W0ᵀ + b0) W1ᵀ + b1', (t) => {
  tidy(() => {
    const head = new ProjectionHead([5, 7, 3]).to('float64');
    const x = randomArray(4 * 5, 1);
    const [first, last] = [head.at(0), head.at(2)] as nn.Linear[];
    const hidden = affine(x, 4, first.weight, first.bias!).map((v) => Math.max(v, 0));
    const ref = affine(hidden, 4, last.weight, last.bias!);
    const out = head.forward(t64(x, [4, 5]));
    t.deepEqual(out.shape, [4, 3]);
    t.true(maxRelErr(values(out), ref) < 1e-12);
    head.dispose();
  });
});

test("ProjectionHead with BatchNorm matches PyTorch's Sequential bit for bit: init, train-mode output, statistics", (t) => {
  sameDraws(t, pytorch, 'projection head', () => {
    const head = new ProjectionHead([8, 16, 4], { batchNorm: true });
    const x = torch.randn([6, 8]);
    const out = head.forward(x);
    return { ...Object.fromEntries(head.stateDict()), x, out };
  });
});

test('ClassifierHead applies one Linear layer to the concatenated features', (t) => {
  tidy(() => {
    const head = new ClassifierHead([3, 5], 4).to('float64');
    t.deepEqual(keys(head), ['fc.weight [4, 8]', 'fc.bias [4]']);
    t.deepEqual(head.inFeatures, [3, 5]);
    const a = randomArray(2 * 3, 2),
      b = randomArray(2 * 5, 3);
    const joined = [...a.slice(0, 3), ...b.slice(0, 5), ...a.slice(3), ...b.slice(5)];
    const out = head.forward(t64(a, [2, 3]), t64(b, [2, 5]));
    t.true(maxRelErr(values(out), affine(joined, 2, head.fc.weight, head.fc.bias!)) < 1e-12);
    const single = new ClassifierHead(512, 10);
    t.deepEqual(single.inFeatures, [512]);
    t.deepEqual(single.forward(torch.randn([3, 512])).shape, [3, 10]);
    for (const m of [head, single]) m.dispose();
  });
});

test('ClassifierHead dropout zeroes or rescales each input feature in training only', (t) => {
  tidy(() => {
    const head = new ClassifierHead([30, 20], 50, { dropout: 0.5 }).to('float64');
    // An identity fc shows its input: the dropped-out features.
    torch.noGrad(() => {
      head.fc.weight.copy_(torch.arange(50).reshape([50, 1]).eq(torch.arange(50)));
      head.fc.bias!.zero_();
    });
    const a = randomArray(30, 4, 1, 2),
      b = randomArray(20, 5, 1, 2);
    const x = [...a, ...b];
    const trained = values(head.forward(t64(a, [1, 30]), t64(b, [1, 20])));
    t.true(trained.every((v, i) => v === 0 || Math.abs(v - 2 * x[i]) < 1e-12));
    t.true(trained.some((v) => v === 0) && trained.some((v) => v !== 0));
    t.true(maxRelErr(values(head.eval().forward(t64(a, [1, 30]), t64(b, [1, 20]))), x) < 1e-12);
    head.dispose();
  });
});

test('bad widths, options and features are rejected with ERR_MMSSL_ARG', (t) => {
  tidy(() => {
    t.throws(() => new ProjectionHead([8]), {
      code: 'ERR_MMSSL_ARG',
      message: /ProjectionHead: widths must be an array of at least 2 widths/,
    });
    t.throws(() => new ProjectionHead([8, 0, 4]), {
      code: 'ERR_MMSSL_ARG',
      message: /widths\[1\] must be a positive integer/,
    });
    t.throws(() => new ProjectionHead([8, 4], { batchNorm: 'yes' as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new ClassifierHead([], 3), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => new ClassifierHead(4, 0), { code: 'ERR_MMSSL_ARG', message: /numClasses/ });
    t.throws(() => new ClassifierHead(4, 3, { dropout: 1.5 }), {
      code: 'ERR_MMSSL_ARG',
      message: /Dropout: p must be a probability/,
    });
    const head = new ClassifierHead([3, 5], 2);
    t.throws(() => head.forward(torch.ones([2, 3])), {
      code: 'ERR_MMSSL_ARG',
      message: /features must be 2 tensor\(s\)/,
    });
    t.throws(() => head.forward(torch.ones([2, 3]), torch.ones([2, 4])), {
      code: 'ERR_MMSSL_ARG',
      message: /features\[1\] must be a \[2, 5\] tensor, got a float32 tensor of shape \[2, 4\] on cpu/,
    });
    t.throws(() => head.forward(torch.ones([2, 3]), torch.ones([3, 5])), {
      code: 'ERR_MMSSL_ARG',
      message: /features\[1\] must be a \[2, 5\] tensor/,
    });
    t.throws(() => head.forward('x' as never, torch.ones([3, 5])), {
      code: 'ERR_MMSSL_ARG',
      message: /features\[0\] must be a Tensor/,
    });
    head.dispose();
  });
});

test.serial('heads leave only their parameters and buffers, and dispose() frees them', (t) => {
  const before = live();
  const projection = new ProjectionHead([8, 6, 4], { batchNorm: true });
  const classifier = new ClassifierHead([4, 4], 3, { dropout: 0.2 });
  tidy(() => {
    const z = projection.forward(torch.randn([5, 8]));
    classifier.forward(z, z).sum().backward();
  });
  t.is(live(), before + 4 + 5 + 2, 'two Linear layers, one BatchNorm1d, the classifier');
  projection.dispose();
  classifier.dispose();
  t.is(live(), before);
});
