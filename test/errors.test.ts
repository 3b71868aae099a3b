// A table of bad calls: every one must throw a clear, typed error and leave the process alive.
import test from 'ava';

import { ArgumentError, DeviceError, DisposedError, MmsslError, TorchError, nn, torch } from '../lib/index.js';
import { native } from '../lib/native.js';

const F = nn.functional;
type Bad = [string, (x: torch.Tensor, dead: torch.Tensor) => unknown, 'arg' | 'torch' | 'disposed' | 'device', RegExp?];
const anyArgs = (f: unknown) => f as (...args: unknown[]) => unknown;

const table: Bad[] = [
  // shape mismatches reported by LibTorch, with the op name
  ['add of incompatible shapes', (x) => x.add(torch.ones([5])), 'torch', /^add: .*size of tensor a \(4\)/],
  ['sub of incompatible shapes', (x) => x.sub(torch.ones([2, 5])), 'torch'],
  ['mul of incompatible shapes', (x) => x.mul(torch.ones([7, 1, 3])), 'torch'],
  ['div of incompatible shapes', (x) => x.div(torch.ones([5])), 'torch'],
  ['maximum of incompatible shapes', (x) => x.maximum(torch.ones([5])), 'torch'],
  ['eq of incompatible shapes', (x) => x.eq(torch.ones([5])), 'torch'],
  ['where of incompatible shapes', (x) => torch.where(x.gt(0), x, torch.ones([5])), 'torch'],
  ['mm of mismatched inner sizes', (x) => x.mm(torch.ones([3, 2])), 'torch', /^mm: /],
  ['mm of a 1-D tensor', (x) => x.mm(torch.ones([4])), 'torch'],
  ['matmul of mismatched sizes', (x) => x.matmul(torch.ones([5, 2])), 'torch'],
  ['bmm of 2-D tensors', (x) => x.bmm(x), 'torch'],
  ['reshape to the wrong element count', (x) => x.reshape(5, 5), 'torch', /invalid for input of size 12/],
  ['view of a non-contiguous tensor', (x) => x.t().view(12), 'torch'],
  ['expand to a smaller size', (x) => x.expand(2, 2), 'torch'],
  ['cat of mismatched shapes', (x) => torch.cat([x, torch.ones([3, 5])], 0), 'torch'],
  ['stack of mismatched shapes', (x) => torch.stack([x, torch.ones([4, 3])]), 'torch'],
  ['copy_ from a non-broadcastable source', (x) => x.copy_(torch.ones([5])), 'torch'],
  [
    'conv2d with a wrong channel count',
    () => F.conv2d(torch.ones([1, 3, 8, 8]), torch.ones([4, 2, 3, 3])),
    'torch',
    /^conv2d: /,
  ],
  ['conv2d with a 2-D input', () => F.conv2d(torch.ones([8, 8]), torch.ones([4, 1, 3, 3])), 'torch'],
  ['conv2d kernel larger than input', () => F.conv2d(torch.ones([1, 1, 2, 2]), torch.ones([1, 1, 5, 5])), 'torch'],
  ['linear with a wrong feature count', () => F.linear(torch.ones([2, 3]), torch.ones([4, 5])), 'torch'],
  [
    'batchNorm with wrong running stats size',
    () => F.batchNorm(torch.ones([2, 3, 4, 4]), torch.zeros([5]), torch.ones([5])),
    'torch',
  ],
  ['maxPool2d kernel larger than input', () => F.maxPool2d(torch.ones([1, 1, 2, 2]), 5), 'torch'],
  ['crossEntropy with a target out of range', () => F.crossEntropy(torch.ones([2, 3]), torch.tensor([0, 7])), 'torch'],
  [
    'crossEntropy with float class indices of the wrong shape',
    () => F.crossEntropy(torch.ones([2, 3]), torch.ones([5])),
    'torch',
  ],
  ['interpolate of a 3-D tensor', () => F.interpolate(torch.ones([1, 4, 4]), { size: 2, mode: 'bilinear' }), 'arg'],
  ['oneHot of negative classes', () => F.oneHot(torch.tensor([-1, 0])), 'torch'],
  ['oneHot of a float tensor', () => F.oneHot(torch.ones([2])), 'torch'],
  ['gather with an index of another rank', (x) => x.gather(1, torch.tensor([0, 1])), 'torch'],
  ['backward of a non-scalar without gradient', (x) => x.requiresGrad_().mul(2).backward(), 'torch'],
  ['backward of a tensor that needs no grad', () => torch.ones([1]).backward(), 'torch'],
  [
    'backward with a gradient of the wrong shape',
    (x) =>
      x
        .requiresGrad_()
        .mul(2)
        .backward(torch.ones([2])),
    'torch',
  ],
  ['in-place op on a leaf that requires grad', () => torch.ones([2], { requiresGrad: true }).add_(1), 'torch'],
  [
    'requiresGrad on an integer tensor',
    () => {
      torch.ones([2], { dtype: 'int64' }).requiresGrad = true;
    },
    'torch',
  ],
  [
    'autograd.grad of an unrelated input',
    (x) => torch.autograd.grad([x.requiresGrad_().sum()], [torch.ones([1], { requiresGrad: true })]),
    'torch',
  ],
  // dtype errors
  ['mm of int and float', (x) => x.mm(torch.ones([4, 2], { dtype: 'int64' })), 'torch'],
  ['allclose across dtypes', (x) => x.allclose(x.double()), 'torch'],
  ['indexSelect with a float index', (x) => x.indexSelect(0, torch.ones([1])), 'torch'],
  ['gather with a float index', (x) => x.gather(0, torch.ones([1, 4])), 'torch'],
  ['rand with an integer dtype', () => torch.rand([2], { dtype: 'int64' }), 'torch'],
  ['randn with a bool dtype', () => torch.randn([2], { dtype: 'bool' }), 'torch'],
  ['unknown dtype name', () => torch.zeros([2], { dtype: 'float8' as torch.DType }), 'arg', /dtype must be one of/],
  ['dtype of the wrong type', () => torch.ones([2], { dtype: 6 as unknown as torch.DType }), 'arg'],
  ['to() an unknown dtype or device', (x) => x.to('complex64' as torch.DType), 'arg'],
  // out-of-range dims and indices
  ['sum over dim 5 of a 2-D tensor', (x) => x.sum(5), 'torch', /^sum: .*out of range/i],
  ['mean over dim -3', (x) => x.mean(-3), 'torch'],
  ['max over dim 2', (x) => x.max(2), 'torch'],
  ['argmax over dim 9', (x) => x.argmax(9), 'torch'],
  ['softmax over dim 3', (x) => F.softmax(x, 3), 'torch'],
  ['transpose of dim 4', (x) => x.transpose(0, 4), 'torch'],
  ['permute with a repeated dim', (x) => x.permute(0, 0), 'torch'],
  ['permute with too few dims', (x) => x.permute(0), 'torch'],
  ['unsqueeze at dim 7', (x) => x.unsqueeze(7), 'torch'],
  ['squeeze of dim 3', (x) => x.squeeze(3), 'torch'],
  ['select index 10 of 3', (x) => x.select(0, 10), 'torch', /index 10 out of range/],
  ['select on dim 2', (x) => x.select(2, 0), 'torch'],
  ['narrow beyond the end', (x) => x.narrow(1, 2, 5), 'torch'],
  ['slice with step 0', (x) => x.slice(0, 0, 2, 0), 'torch'],
  ['indexSelect with an index out of range', (x) => x.indexSelect(0, torch.tensor([9])), 'torch'],
  ['flip of dim 3', (x) => x.flip(3), 'torch'],
  ['flatten with start after end', (x) => x.flatten(1, 0), 'torch'],
  ['size of dim 4', (x) => x.size(4), 'arg', /dim must be in \[-2, 1\]/],
  ['item of a 12-element tensor', (x) => x.item(), 'arg', /12 elements/],
  ['cuda tensor without a GPU', () => torch.ones([2], { device: 'cuda' }), 'torch'],
  ['to cuda:3 without a GPU', (x) => x.to('cuda:3'), 'torch'],
  // disposed tensors
  ['add on a disposed tensor', (_x, dead) => dead.add(1), 'disposed'],
  ['disposed tensor as the other operand', (x, dead) => x.add(dead), 'disposed'],
  ['cat with a disposed tensor', (x, dead) => torch.cat([x, dead]), 'disposed'],
  ['shape of a disposed tensor', (_x, dead) => dead.shape, 'disposed'],
  ['backward of a disposed tensor', (_x, dead) => dead.backward(), 'disposed'],
  ['conv2d with a disposed weight', (_x, dead) => F.conv2d(torch.ones([1, 1, 4, 4]), dead), 'disposed'],
  ['toTypedArray of a disposed tensor', (_x, dead) => dead.toTypedArray(), 'disposed'],
  ['grad of a disposed tensor', (_x, dead) => dead.grad, 'disposed'],
  // unknown devices
  [
    'device tpu',
    () => torch.zeros([2], { device: 'tpu' as torch.Device }),
    'arg',
    /device must be 'cpu', 'cuda' or 'cuda:N'/,
  ],
  ['device cuda:x', () => torch.ones([2], { device: 'cuda:x' as torch.Device }), 'arg'],
  ['device CPU in capitals', () => torch.ones([2], { device: 'CPU' as torch.Device }), 'arg'],
  ['device as a number', () => torch.ones([2], { device: 0 as unknown as torch.Device }), 'arg'],
  ['cuda(-1)', (x) => x.cuda(-1), 'arg'],
  ['cuda.synchronize without a GPU', () => torch.cuda.synchronize(), 'device'],
  // NaN and non-integer options
  ['zeros with a NaN size', () => torch.zeros([NaN]), 'arg'],
  ['zeros with a negative size', () => torch.zeros([-1]), 'arg'],
  ['zeros with a fractional size', () => torch.zeros([2.5]), 'arg'],
  ['full with a NaN shape', () => torch.full([NaN], 1), 'arg'],
  ['arange with step 0', () => torch.arange(0, 5, 0), 'arg'],
  ['arange with a NaN end', () => torch.arange(0, NaN), 'arg'],
  ['linspace with fractional steps', () => torch.linspace(0, 1, 2.5), 'arg'],
  ['randint with high <= low', () => torch.randint(5, 5, [2]), 'arg'],
  ['sum over a fractional dim', (x) => x.sum(0.5), 'arg', /dim must be an integer/],
  ['add with a NaN alpha', (x) => x.add(x, { alpha: NaN }), 'arg'],
  ['clamp with a NaN bound', (x) => x.clamp({ min: NaN }), 'arg'],
  ['clamp with no bounds', (x) => x.clamp({}), 'arg'],
  ['dropout with p = 2', (x) => F.dropout(x, { p: 2 }), 'arg'],
  ['dropout with p = NaN', (x) => F.dropout(x, { p: NaN }), 'arg'],
  ['normalize with a NaN eps', (x) => F.normalize(x, { eps: NaN }), 'arg'],
  ['setNumThreads(0)', () => torch.setNumThreads(0), 'arg'],
  ['setNumThreads(NaN)', () => torch.setNumThreads(NaN), 'arg'],
  ['manualSeed(-1)', () => torch.manualSeed(-1), 'arg'],
  ['manualSeed(1.5)', () => torch.manualSeed(1.5), 'arg'],
  ['maxPool2d with a fractional kernel', (x) => F.maxPool2d(x, 1.5), 'arg'],
  [
    'conv2d with a 3-element stride',
    () =>
      F.conv2d(torch.ones([1, 1, 4, 4]), torch.ones([1, 1, 3, 3]), null, { stride: [1, 1, 1] as unknown as number }),
    'arg',
  ],
  [
    'crossEntropy with an unknown reduction',
    () => F.crossEntropy(torch.ones([2, 3]), torch.tensor([0, 1]), { reduction: 'avg' as 'mean' }),
    'arg',
  ],
  [
    'interpolate with size and scaleFactor',
    () => F.interpolate(torch.ones([1, 1, 4, 4]), { size: 2, scaleFactor: 2 }),
    'arg',
  ],
  [
    'interpolate with an unknown mode',
    () => F.interpolate(torch.ones([1, 1, 4, 4]), { size: 2, mode: 'bicubic' as 'bilinear' }),
    'arg',
  ],
  ['div with an unknown rounding mode', (x) => x.div(2, { roundingMode: 'round' as 'floor' }), 'arg'],
  // wrong argument types and arity
  ['add of a string', (x) => x.add('1' as unknown as number), 'arg', /other must be a Tensor, number or boolean/],
  ['mul of an object', (x) => x.mul({} as unknown as number), 'arg'],
  ['mm of a number', (x) => x.mm(3 as unknown as torch.Tensor), 'arg'],
  ['mm with no argument', (x) => anyArgs(x.mm.bind(x))(), 'arg'],
  ['add with no argument', (x) => anyArgs(x.add.bind(x))(), 'arg'],
  ['reshape of strings', (x) => x.reshape('a' as unknown as number), 'arg'],
  ['reshape with no size', (x) => x.reshape(), 'torch'],
  ['cat of an empty list', () => torch.cat([]), 'arg'],
  ['cat of a non-array', () => torch.cat('x' as unknown as torch.Tensor[]), 'arg'],
  [
    'cat with a number inside',
    (x) => torch.cat([x, 1 as unknown as torch.Tensor]),
    'arg',
    /tensors\[1\] must be a Tensor/,
  ],
  ['tensor of a string', () => torch.tensor('abc' as unknown as number), 'arg'],
  ['tensor of ragged arrays', () => torch.tensor([[1], [1, 2]]), 'arg'],
  ['tensor of a Uint16Array', () => torch.tensor(new Uint16Array(2) as unknown as Float32Array), 'arg'],
  ['tensor with requiresGrad = "yes"', () => torch.tensor([1.5], { requiresGrad: 'yes' as unknown as boolean }), 'arg'],
  ['fromBuffer with a short array', () => torch.fromBuffer(new Float32Array(3), [2, 2]), 'arg'],
  ['fromBuffer of a plain array', () => torch.fromBuffer([1, 2] as unknown as Float32Array), 'arg'],
  ['sum with options in place of dim', (x) => x.sum({ keepdim: true } as unknown as number), 'arg'],
  ['sum with a boolean keepdim in place of options', (x) => x.sum(0, true as unknown as { keepdim: boolean }), 'arg'],
  ['noGrad of a non-function', () => torch.noGrad(1 as unknown as () => void), 'arg'],
  ['zeroGrad of a non-array', () => torch.zeroGrad('p' as unknown as torch.Tensor[]), 'arg'],
  ['autograd.grad with a number input', (x) => torch.autograd.grad([x], [1 as unknown as torch.Tensor]), 'arg'],
  ['where with a string branch', (x) => torch.where(x.gt(0), 'a' as unknown as number, 0), 'arg'],
  [
    'conv2d of a plain array',
    () => F.conv2d([1, 2] as unknown as torch.Tensor, torch.ones([1])),
    'arg',
    /input must be a Tensor/,
  ],
  ['zerosLike of a number', () => torch.zerosLike(3 as unknown as torch.Tensor), 'arg'],
  // the native layer's own checks, reached directly: mmssl's errors too, never an abort
  [
    'native add with strings',
    () => anyArgs(native.add)('a', 'b', false, 1),
    'arg',
    /^add: argument \d must be a tensor, got string/,
  ],
  ['native add with a made-up handle', () => anyArgs(native.add)(123456789, 987654321, false, 1), 'disposed'],
  ['native add with a negative handle', () => anyArgs(native.add)(-1, -1, false, 1), 'disposed'],
  ['native add with NaN handles', () => anyArgs(native.add)(NaN, NaN, false, 1), 'disposed'],
  ['native zeros with a string shape', () => anyArgs(native.zeros)('abc', undefined, undefined), 'arg'],
  ['native zeros with a bad dtype code', () => anyArgs(native.zeros)([2], 99, undefined), 'arg'],
  [
    'native zeros with an unknown device',
    () => anyArgs(native.zeros)([2], undefined, 'quantum'),
    'arg',
    /unknown device 'quantum'/,
  ],
  ['native cat with holes', () => anyArgs(native.cat)([undefined, null], 0), 'arg'],
  ['native fromTypedArray of an object', () => anyArgs(native.fromTypedArray)({}, [1], undefined, undefined), 'arg'],
  ['native with no arguments', () => anyArgs(native.matmul)(), 'arg'],
  ['native sum with a huge dim', (x) => anyArgs(native.sum)(x.handle, [2 ** 60], false), 'arg'],
  ['native setNumThreads(-5)', () => anyArgs(native.setNumThreads)(-5), 'arg'],
  [
    'native interpolate with a bad mode',
    (x) => anyArgs(native.interpolate)(x.handle, [2, 2], 'cubic', false, undefined, undefined),
    'arg',
  ],
  [
    'native crossEntropy with a bad reduction',
    (x) => anyArgs(native.crossEntropy)(x.handle, x.handle, undefined, 'avg', -100, 0),
    'arg',
  ],
  ['native setErrorFactories with numbers', () => anyArgs(native.setErrorFactories)([1, 2, 3, 4]), 'arg'],
  [
    'native optimizerStep with a tensor handle',
    (x) => anyArgs(native.optimizerStep)(x.handle, []),
    'arg',
    /^optimizerStep: argument 0 must be an optimizer, got number/,
  ],
];

const expected = {
  arg: [ArgumentError, 'ERR_MMSSL_ARG'],
  torch: [TorchError, 'ERR_MMSSL_TORCH'],
  disposed: [DisposedError, 'ERR_MMSSL_DISPOSED'],
  device: [DeviceError, 'ERR_MMSSL_DEVICE'],
} as const;

test('the bad-call table has at least 100 cases', (t) => {
  t.true(table.length >= 100, `${table.length} cases`);
});

for (const [name, call, kind, message] of table) {
  test(`bad call: ${name}`, (t) => {
    torch.tidy(() => {
      const x = torch.arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4);
      const dead = torch.ones([2]);
      dead.dispose();
      const error = t.throws(() => call(x, dead)) as Error & { code?: string };
      const [cls, code] = expected[kind];
      t.true(error instanceof MmsslError && error instanceof cls, `a ${cls.name}: ${error.name}: ${error.message}`);
      t.is(error.code, code);
      t.is(error.name, cls.name);
      if (message) t.regex(error.message, message);
      t.true(
        error.message.length > 10 && !/\n\s*frame #/.test(error.message),
        'a short message without a C++ backtrace',
      );
    });
    t.is(torch.ones([1]).add(1).item(), 2, 'the process still computes');
  });
}
