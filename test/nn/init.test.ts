import test from 'ava';

import { nn, torch } from '../../lib/index.js';
import { values } from '../helpers/reference.js';
import { pytorchReference, sameDraws } from './torchvision_reference.js';

const { init } = nn;
const { empty, tidy } = torch;
const live = () => torch.memoryStats().tensors;

const pytorch = await pytorchReference('layers');

test("calculateGain has PyTorch's values", (t) => {
  for (const f of [
    'linear',
    'conv1d',
    'conv2d',
    'conv3d',
    'convTranspose1d',
    'convTranspose2d',
    'convTranspose3d',
    'sigmoid',
  ] as const) {
    t.is(init.calculateGain(f), 1, f);
  }
  t.is(init.calculateGain('tanh'), 5 / 3);
  t.is(init.calculateGain('relu'), Math.SQRT2);
  t.is(init.calculateGain('selu'), 0.75);
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-15;
  t.true(close(init.calculateGain('leakyRelu'), Math.sqrt(2 / 1.0001)), 'slope 0.01 by default');
  t.true(close(init.calculateGain('leakyRelu', 0.2), Math.sqrt(2 / 1.04)));
  t.true(
    close(init.calculateGain('leakyRelu', Math.sqrt(5)), Math.sqrt(1 / 3)),
    "the layers' a = sqrt(5) gives 1/sqrt(3)",
  );
  t.throws(() => init.calculateGain('leaky_relu' as never), {
    code: 'ERR_MMSSL_ARG',
    message: /calculateGain: nonlinearity must be one of 'linear'/,
  });
  t.throws(() => init.calculateGain('leakyRelu', true as never), { code: 'ERR_MMSSL_ARG' });
});

test('calculateFanInAndFanOut multiplies the channels by the receptive field', (t) => {
  tidy(() => {
    t.deepEqual(init.calculateFanInAndFanOut(empty([6, 4, 3, 5])), [60, 90]);
    t.deepEqual(init.calculateFanInAndFanOut(empty([5, 7])), [7, 5]);
    t.throws(() => init.calculateFanInAndFanOut(empty([5])), {
      code: 'ERR_MMSSL_ARG',
      message: /at least 2 dimensions, got a float32 tensor of shape \[5\] on cpu/,
    });
  });
});

test("the random initialisers draw PyTorch's bits after the same seed", (t) => {
  sameDraws(t, pytorch, 'kaimingUniform_', () => ({ w: init.kaimingUniform_(empty([6, 4, 3, 3])) }));
  sameDraws(t, pytorch, 'kaimingUniform_ a=sqrt(5)', () => ({
    w: init.kaimingUniform_(empty([6, 4, 3, 3]), { a: Math.sqrt(5) }),
  }));
  sameDraws(t, pytorch, 'kaimingNormal_ fanOut relu', () => ({
    w: init.kaimingNormal_(empty([16, 8, 3, 3]), { mode: 'fanOut', nonlinearity: 'relu' }),
  }));
  sameDraws(t, pytorch, 'kaimingNormal_ leakyRelu a=0.2', () => ({
    w: init.kaimingNormal_(empty([5, 7]), { a: 0.2 }),
  }));
  sameDraws(t, pytorch, 'uniform_', () => ({ w: init.uniform_(empty([40]), -2, 3) }));
  sameDraws(t, pytorch, 'normal_ under 16 elements', () => ({ w: init.normal_(empty([10]), 1, 0.5) }));
  sameDraws(t, pytorch, 'normal_', () => ({ w: init.normal_(empty([100]), -1, 2) }));
});

test('kaimingUniform_ stays within gain * sqrt(3 / fan); the initialisers work on parameters and return them', (t) => {
  tidy(() => {
    const w = empty([32, 8, 3, 3]);
    t.is(init.kaimingUniform_(w, { mode: 'fanOut', nonlinearity: 'relu' }), w);
    const bound = Math.SQRT2 * Math.sqrt(3 / (32 * 9));
    const v = values(w);
    t.true(v.every((x) => Math.abs(x) <= bound) && Math.max(...v.map(Math.abs)) > 0.9 * bound);
    const linear = new nn.Linear(3, 2);
    t.true(linear.weight.requiresGrad);
    t.deepEqual(values(init.constant_(linear.weight, 0.5)), Array(6).fill(0.5));
    t.deepEqual(values(init.zeros_(linear.bias!)), [0, 0]);
    t.deepEqual(values(init.ones_(linear.bias!)), [1, 1]);
    t.true(linear.weight.isLeaf && linear.weight.gradFn === null, 'no autograd history was recorded');
    const nothing = empty([0, 3]);
    t.is(init.kaimingNormal_(nothing), nothing, 'an empty tensor is left as it is');
    t.is(init.kaimingUniform_(nothing), nothing);
    linear.dispose();
  });
});

test('bad arguments are rejected with ERR_MMSSL_ARG', (t) => {
  tidy(() => {
    const w = empty([4, 4]);
    t.throws(() => init.kaimingUniform_(w, { mode: 'fan_in' as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /kaimingUniform_: mode must be one of 'fanIn', 'fanOut'/,
    });
    t.throws(() => init.kaimingNormal_(w, { nonlinearity: 'gelu' as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /kaimingNormal_: nonlinearity/,
    });
    t.throws(() => init.kaimingNormal_(w, { a: '1' as never }), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => init.kaimingUniform_(empty([4])), { code: 'ERR_MMSSL_ARG', message: /at least 2 dimensions/ });
    t.throws(() => init.kaimingUniform_([1, 2] as never), {
      code: 'ERR_MMSSL_ARG',
      message: /kaimingUniform_: tensor must be a Tensor/,
    });
    t.throws(() => init.uniform_(w, 0, '1' as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => init.normal_(null as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => init.constant_(w, 'x' as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => init.zeros_({} as never), { code: 'ERR_MMSSL_ARG' });
    t.throws(() => init.ones_(undefined as never), { code: 'ERR_MMSSL_ARG' });
  });
});

test.serial('initialising allocates nothing that outlives the call', (t) => {
  const w = empty([8, 4, 3, 3]);
  const before = live();
  init.kaimingUniform_(w);
  init.kaimingNormal_(w, { mode: 'fanOut' });
  init.uniform_(w);
  init.normal_(w);
  init.constant_(w, 2);
  init.zeros_(w);
  init.ones_(w);
  init.calculateFanInAndFanOut(w);
  t.is(live(), before);
  w.dispose();
});
