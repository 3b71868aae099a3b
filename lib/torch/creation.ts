/** Tensor factories (`torch.tensor`, `torch.zeros`, ...) and the ops that take several tensors (`cat`, `stack`, `where`). */
import { checkInt, checkNumber, checkOptions, checkShape, invalidArg } from '../errors.js';
import { type Handle, native } from '../native.js';
import { type Device, optDevice } from './device.js';
import { type DType, dtypeCode, dtypeOfArray, optDtypeCode } from './dtype.js';
import { type NestedArray, type Scalar, Tensor } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function made(op: string, handle: Handle, options: TensorOptions): Tensor {
  const t = new Tensor(handle);
  if (options.requiresGrad !== undefined) {
    if (typeof options.requiresGrad !== 'boolean') {
      t.dispose();
      throw invalidArg(op, 'requiresGrad', 'a boolean', options.requiresGrad);
    }
    if (options.requiresGrad) t.requiresGrad = true;
  }
  return t;
}

function dd(op: string, options: TensorOptions): [number | undefined, Device | undefined] {
  checkOptions(op, options);
  return [optDtypeCode(op, options.dtype), optDevice(op, options.device)];
}

/** `f(2, 3)`, `f([2, 3])` or `f([2, 3], options)`: PyTorch's ways of passing a size. */
/** A shape given as numbers (`zeros(2, 3)`), as an array, or as an array and options. */
export type SizeArgs = number[] | [readonly number[]] | [readonly number[], TensorOptions];

function sizeAndOptions(op: string, args: SizeArgs): [number[], TensorOptions] {
  if (Array.isArray(args[0])) return [checkShape(op, 'size', args[0]), (args[1] as TensorOptions | undefined) ?? {}];
  return [checkShape(op, 'size', args), {}];
}

// ---- from data ----------------------------------------------------------------------------------------------------

/** Flattens rectangular nested arrays, checking every row, and infers PyTorch's dtype (bool, int64 or float32). */
function flatten(data: NestedArray): { values: number[]; shape: number[]; dtype: DType } {
  const shape: number[] = [];
  for (let level: NestedArray = data; Array.isArray(level); level = level[0]) shape.push(level.length);
  const values: number[] = [];
  let allBool = true;
  let allInt = true;
  const walk = (node: NestedArray, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (typeof node === 'boolean') allInt = false;
      else if (typeof node === 'number') {
        allBool = false;
        if (!Number.isInteger(node)) allInt = false;
      } else throw invalidArg('tensor', `data${path}`, 'a number or boolean', node);
      values.push(Number(node));
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw invalidArg(
        'tensor',
        `data${path}`,
        `an array of length ${shape[depth]} (nested arrays must be rectangular)`,
        node,
      );
    }
    node.forEach((child, i) => walk(child, depth + 1, `${path}[${i}]`));
  };
  walk(data, 0, '');
  const dtype: DType = values.length === 0 ? 'float32' : allBool ? 'bool' : allInt ? 'int64' : 'float32';
  return { values, shape, dtype };
}

/**
 * PyTorch's `torch.tensor`: a new tensor copied from numbers, booleans, nested arrays or a typed array. Without a
 * dtype, integers give int64, booleans bool, other numbers float32, and a typed array its own element type.
 */
export function tensor(data: NestedArray | ArrayBufferView, options: TensorOptions = {}): Tensor {
  const [dtype, device] = dd('tensor', options);
  if (ArrayBuffer.isView(data)) {
    const source = dtypeOfArray('tensor', data);
    const length = data.byteLength / (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    return made('tensor', native.fromTypedArray(data, [length], dtype ?? dtypeCode('tensor', source), device), options);
  }
  const flat = flatten(data);
  return made(
    'tensor',
    native.fromTypedArray(Float64Array.from(flat.values), flat.shape, dtype ?? dtypeCode('tensor', flat.dtype), device),
    options,
  );
}

/**
 * A CPU tensor over the typed array's memory, without a copy (`torch.from_numpy`). Writes through either side are
 * seen by the other. The tensor keeps the array's buffer alive for as long as it, or any view of it, exists.
 */
export function fromBuffer(data: ArrayBufferView, shape?: readonly number[]): Tensor {
  dtypeOfArray('fromBuffer', data);
  const length = data.byteLength / (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  return new Tensor(native.fromBuffer(data, shape === undefined ? [length] : checkShape('fromBuffer', 'shape', shape)));
}

// ---- filled -------------------------------------------------------------------------------------------------------

export function zeros(...args: SizeArgs): Tensor {
  const [size, options] = sizeAndOptions('zeros', args);
  return made('zeros', native.zeros(size, ...dd('zeros', options)), options);
}

export function ones(...args: SizeArgs): Tensor {
  const [size, options] = sizeAndOptions('ones', args);
  return made('ones', native.ones(size, ...dd('ones', options)), options);
}

/** Uninitialised memory: every value must be written before it is read. */
export function empty(...args: SizeArgs): Tensor {
  const [size, options] = sizeAndOptions('empty', args);
  return made('empty', native.empty(size, ...dd('empty', options)), options);
}

export function full(size: readonly number[], fillValue: Scalar, options: TensorOptions = {}): Tensor {
  if (typeof fillValue !== 'boolean') checkNumber('full', 'fillValue', fillValue);
  return made('full', native.full(checkShape('full', 'size', size), fillValue, ...dd('full', options)), options);
}

/** `arange(end)` or `arange(start, end, step = 1)`: integers give int64, as in PyTorch. */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  checkNumber('arange', 'start', from);
  checkNumber('arange', 'end', to);
  if (checkNumber('arange', 'step', step) === 0) throw invalidArg('arange', 'step', 'non-zero', step);
  return made('arange', native.arange(from, to, step, ...dd('arange', options)), options);
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  const n = checkInt('linspace', 'steps', steps);
  if (n < 0) throw invalidArg('linspace', 'steps', 'non-negative', steps);
  return made(
    'linspace',
    native.linspace(
      checkNumber('linspace', 'start', start),
      checkNumber('linspace', 'end', end),
      n,
      ...dd('linspace', options),
    ),
    options,
  );
}

// ---- random -------------------------------------------------------------------------------------------------------

/** Uniform on [0, 1). */
export function rand(...args: SizeArgs): Tensor {
  const [size, options] = sizeAndOptions('rand', args);
  return made('rand', native.rand(size, ...dd('rand', options)), options);
}

/** Standard normal. */
export function randn(...args: SizeArgs): Tensor {
  const [size, options] = sizeAndOptions('randn', args);
  return made('randn', native.randn(size, ...dd('randn', options)), options);
}

/** Integers uniform on [low, high), int64 unless a dtype is given. */
export function randint(low: number, high: number, size: readonly number[], options: TensorOptions = {}): Tensor {
  const lo = checkInt('randint', 'low', low);
  if (checkInt('randint', 'high', high) <= lo) throw invalidArg('randint', 'high', `greater than low (${lo})`, high);
  return made(
    'randint',
    native.randint(lo, high, checkShape('randint', 'size', size), ...dd('randint', options)),
    options,
  );
}

// ---- shaped like another tensor -----------------------------------------------------------------------------------

function like(op: string, input: Tensor): Handle {
  if (!(input instanceof Tensor)) throw invalidArg(op, 'input', 'a Tensor', input);
  return input.handle;
}

export function zerosLike(input: Tensor, options: TensorOptions = {}): Tensor {
  return made('zerosLike', native.zerosLike(like('zerosLike', input), ...dd('zerosLike', options)), options);
}

export function onesLike(input: Tensor, options: TensorOptions = {}): Tensor {
  return made('onesLike', native.onesLike(like('onesLike', input), ...dd('onesLike', options)), options);
}

export function fullLike(input: Tensor, fillValue: Scalar, options: TensorOptions = {}): Tensor {
  if (typeof fillValue !== 'boolean') checkNumber('fullLike', 'fillValue', fillValue);
  return made('fullLike', native.fullLike(like('fullLike', input), fillValue, ...dd('fullLike', options)), options);
}

export function randLike(input: Tensor, options: TensorOptions = {}): Tensor {
  return made('randLike', native.randLike(like('randLike', input), ...dd('randLike', options)), options);
}

export function randnLike(input: Tensor, options: TensorOptions = {}): Tensor {
  return made('randnLike', native.randnLike(like('randnLike', input), ...dd('randnLike', options)), options);
}

// ---- several tensors ----------------------------------------------------------------------------------------------

function handles(op: string, tensors: readonly Tensor[]): Handle[] {
  if (!Array.isArray(tensors) || tensors.length === 0)
    throw invalidArg(op, 'tensors', 'a non-empty array of tensors', tensors);
  return tensors.map((t, i) => {
    if (!(t instanceof Tensor)) throw invalidArg(op, `tensors[${i}]`, 'a Tensor', t);
    return t.handle;
  });
}

/** Concatenates along an existing dimension. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.cat(handles('cat', tensors), checkInt('cat', 'dim', dim)));
}

/** Stacks along a new dimension. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.stack(handles('stack', tensors), checkInt('stack', 'dim', dim)));
}

/** Elementwise `condition ? input : other`; either value may be a number. */
export function where(condition: Tensor, input: Tensor | Scalar, other: Tensor | Scalar): Tensor {
  const value = (name: string, v: Tensor | Scalar): Handle | Scalar => {
    if (v instanceof Tensor) return v.handle;
    if (typeof v === 'number' || typeof v === 'boolean') return v;
    throw invalidArg('where', name, 'a Tensor, number or boolean', v);
  };
  return new Tensor(
    native.where(
      like('where', condition),
      value('input', input),
      !(input instanceof Tensor),
      value('other', other),
      !(other instanceof Tensor),
    ),
  );
}
