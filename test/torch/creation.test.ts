import test from 'ava';

import { torch } from '../../lib/index.js';
import { gc } from '../helpers/gc.js';
import { values } from '../helpers/reference.js';

test('tensor() infers dtype and shape from nested arrays, as torch.tensor does', (t) => {
  torch.tidy(() => {
    const ints = torch.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    t.is(ints.dtype, 'int64');
    t.deepEqual(ints.shape, [2, 3]);
    t.deepEqual(ints.toArray(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    t.is(torch.tensor([1.5, 2]).dtype, 'float32');
    t.is(torch.tensor([true, false]).dtype, 'bool');
    t.deepEqual(torch.tensor(3.25).shape, []);
    t.is(torch.tensor(3.25).item(), 3.25);
    t.deepEqual(torch.tensor([]).shape, [0]);
    t.deepEqual(torch.tensor([[[1], [2]]]).shape, [1, 2, 1]);
  });
});

test('tensor() rejects ragged and non-numeric data, naming the element', (t) => {
  const ragged = t.throws(() => torch.tensor([[1, 2], [3]]));
  t.regex(ragged!.message, /data\[1\].*length 2/);
  const bad = t.throws(() => torch.tensor([1, 'x' as unknown as number]));
  t.regex(bad!.message, /data\[1\] must be a number or boolean/);
});

test("tensor() keeps a typed array's element type and converts on request", (t) => {
  torch.tidy(() => {
    t.is(torch.tensor(new Float64Array([1, 2])).dtype, 'float64');
    t.is(torch.tensor(new Int32Array([1, 2])).dtype, 'int32');
    t.is(torch.tensor(new Uint8Array([1, 2])).dtype, 'uint8');
    t.is(torch.tensor(new BigInt64Array([1n, -2n])).dtype, 'int64');
    const f = torch.tensor(new Int16Array([3, -4]), { dtype: 'float64' });
    t.is(f.dtype, 'float64');
    t.deepEqual(f.toArray(), [3, -4]);
  });
});

test('every dtype round-trips through toTypedArray with the right array type', (t) => {
  const data = [0, 1, -2, 3];
  const expect: Record<torch.DType, [new (n: number) => ArrayLike<unknown>, number[]]> = {
    float32: [Float32Array, data],
    float64: [Float64Array, data],
    float16: [Float32Array, data],
    bfloat16: [Float32Array, data],
    int64: [BigInt64Array, data],
    int32: [Int32Array, data],
    int16: [Int16Array, data],
    int8: [Int8Array, data],
    uint8: [Uint8Array, [0, 1, 254, 3]],
    bool: [Uint8Array, [0, 1, 1, 1]],
  };
  for (const dtype of torch.dtypes) {
    torch.tidy(() => {
      const x = torch.tensor(data, { dtype });
      t.is(x.dtype, dtype);
      const array = x.toTypedArray();
      t.true(array instanceof expect[dtype][0], dtype);
      t.deepEqual(Array.from(array, Number), expect[dtype][1], dtype);
    });
  }
});

test('zeros, ones, full, empty, zerosLike and onesLike give the requested shape, dtype and values', (t) => {
  torch.tidy(() => {
    t.deepEqual(torch.zeros(2, 3).toArray(), [
      [0, 0, 0],
      [0, 0, 0],
    ]);
    t.deepEqual(torch.ones([2], { dtype: 'int32' }).toArray(), [1, 1]);
    t.is(torch.ones([2], { dtype: 'int32' }).dtype, 'int32');
    t.deepEqual(torch.full([2, 2], 7).toArray(), [
      [7, 7],
      [7, 7],
    ]);
    t.is(torch.full([1], 7).dtype, 'int64');
    t.is(torch.full([1], 0.5).dtype, 'float32');
    t.is(torch.full([1], true).dtype, 'bool');
    t.deepEqual(torch.empty([3, 0, 2]).shape, [3, 0, 2]);
    const like = torch.zerosLike(torch.ones([4], { dtype: 'float64' }));
    t.is(like.dtype, 'float64');
    t.deepEqual(like.toArray(), [0, 0, 0, 0]);
    t.deepEqual(torch.onesLike(like, { dtype: 'int64' }).toArray(), [1, 1, 1, 1]);
    t.deepEqual(torch.fullLike(like, 2.5).toArray(), [2.5, 2.5, 2.5, 2.5]);
  });
});

test('arange and linspace follow PyTorch (end excluded, integer dtype for integer bounds)', (t) => {
  torch.tidy(() => {
    t.deepEqual(torch.arange(5).toArray(), [0, 1, 2, 3, 4]);
    t.is(torch.arange(5).dtype, 'int64');
    t.deepEqual(torch.arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
    t.is(torch.arange(1, 2, 0.25).dtype, 'float32');
    t.deepEqual(torch.arange(5, 0, -2).toArray(), [5, 3, 1]);
    t.deepEqual(torch.linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
    t.deepEqual(torch.linspace(0, 1, 1).toArray(), [0]);
  });
});

test('rand, randn and randint have the right ranges and moments, and manualSeed reproduces them', (t) => {
  torch.tidy(() => {
    torch.manualSeed(123);
    const u = values(torch.rand([20000], { dtype: 'float64' }));
    t.true(u.every((v) => v >= 0 && v < 1));
    const mu = u.reduce((a, b) => a + b) / u.length;
    t.true(Math.abs(mu - 0.5) < 0.01, `uniform mean ${mu}`);
    const g = values(torch.randn([20000], { dtype: 'float64' }));
    const gm = g.reduce((a, b) => a + b) / g.length;
    const gv = g.reduce((a, b) => a + (b - gm) ** 2, 0) / g.length;
    t.true(Math.abs(gm) < 0.03 && Math.abs(gv - 1) < 0.05, `normal mean ${gm} var ${gv}`);
    const r = torch.randint(-3, 4, [5000]);
    t.is(r.dtype, 'int64');
    const ints = values(r);
    t.true(ints.every((v) => Number.isInteger(v) && v >= -3 && v < 4));
    t.is(new Set(ints).size, 7);
    torch.manualSeed(7);
    const a = values(torch.randn([16]));
    torch.manualSeed(7);
    t.deepEqual(values(torch.randn([16])), a);
    t.is(torch.initialSeed(), 7);
  });
});

test('fromBuffer shares memory both ways, and keeps the buffer alive after the array is dropped', (t) => {
  torch.tidy(() => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const x = torch.fromBuffer(data, [2, 3]);
    data[0] = 10;
    t.is(x.select(0, 0).select(0, 0).item(), 10);
    x.mul_(2);
    t.deepEqual(Array.from(data), [20, 4, 6, 8, 10, 12]);
    t.throws(() => torch.fromBuffer(new Float32Array(5), [2, 3]), { message: /needs 6 elements, the array has 5/ });
  });
  const view = torch.tidy(() => {
    const x = torch.fromBuffer(new Float64Array([1, 2, 3, 4]));
    return x.narrow(0, 1, 2);
  });
  gc();
  t.deepEqual(view.toArray(), [2, 3]);
  view.dispose();
});

test('fromBuffer respects the byte offset of a typed-array view', (t) => {
  const buffer = new Float32Array([0, 1, 2, 3, 4, 5]);
  using x = torch.fromBuffer(buffer.subarray(2, 5));
  t.deepEqual(x.toArray(), [2, 3, 4]);
});

test('to() converts dtype and device, and rejects unknown ones', (t) => {
  torch.tidy(() => {
    const x = torch.tensor([1.7, -2.2]);
    t.deepEqual(x.to('int64').toArray(), [1, -2]);
    t.is(x.to({ dtype: 'float64' }).dtype, 'float64');
    t.is(x.to('cpu').device, 'cpu');
    t.is(x.double().dtype, 'float64');
    t.is(x.long().dtype, 'int64');
    t.throws(() => x.to('tpu' as torch.Device), { code: 'ERR_MMSSL_ARG' });
  });
});

test('item, toArray and toTypedArrayAsync read back values', async (t) => {
  using x = torch.arange(6, undefined, 1, { dtype: 'float32' });
  using y = x.reshape(2, 3);
  t.deepEqual(y.toArray(), [
    [0, 1, 2],
    [3, 4, 5],
  ]);
  const async = await y.toTypedArrayAsync();
  t.deepEqual(Array.from(async, Number), [0, 1, 2, 3, 4, 5]);
  using big = torch.ones([1 << 20]);
  const bigAsync = await big.toTypedArrayAsync();
  t.is(bigAsync.length, 1 << 20);
  t.is(bigAsync[12345], 1);
  t.throws(() => x.item(), { message: /6 elements/ });
});

test('cat, stack and where combine tensors', (t) => {
  torch.tidy(() => {
    const a = torch.tensor([[1, 2]]);
    const b = torch.tensor([[3, 4]]);
    t.deepEqual(torch.cat([a, b]).toArray(), [
      [1, 2],
      [3, 4],
    ]);
    t.deepEqual(torch.cat([a, b], 1).toArray(), [[1, 2, 3, 4]]);
    t.deepEqual(torch.stack([a, b], 0).shape, [2, 1, 2]);
    const cond = torch.tensor([true, false, true]);
    t.deepEqual(torch.where(cond, torch.tensor([1, 2, 3]), -1).toArray(), [1, -1, 3]);
  });
});
