/**
 * `Tensor`: a typed handle to a LibTorch tensor, with PyTorch's method names (camelCase) and semantics.
 * Keyword arguments become one options object as the last parameter: `x.sum(1, { keepdim: true })`.
 */
import {
  checkBool,
  checkInt,
  checkInts,
  checkNumber,
  checkOneOf,
  checkOptions,
  describeSelf,
  DisposedError,
  invalidArg,
} from '../errors.js';
import { type Handle, native } from '../native.js';
import { type Device, checkDevice } from './device.js';
import { type DType, type TypedArray, dtypeCode, dtypeName, isDType, viewOf } from './dtype.js';
import { type Scope, track } from './scope.js';
import { countHostRead } from './sync.js';

export type Scalar = number | boolean;
export type NestedArray = Scalar | NestedArray[];

/**
 * The safety net for tensors no scope owns: when such a Tensor is garbage-collected without dispose(), its native
 * reference is released. Tensors inside tidy() skip it (the scope frees them), so hot loops pay nothing. A handle
 * already disposed is stale (its slot's generation moved on), so the late call is a no-op. MMSSL_WARN_LEAKS=1 warns
 * about each tensor this had to free.
 */
const warnLeaks = process.env.MMSSL_WARN_LEAKS === '1';
const gcSafetyNet = new FinalizationRegistry<Handle>((handle) => {
  if (native.dispose(handle) && warnLeaks) {
    process.emitWarning(
      'a tensor was garbage-collected without dispose(); use tidy(), using or dispose()',
      'MmsslLeakWarning',
    );
  }
});

/** Another tensor's handle, checked. */
function other(op: string, value: unknown, name = 'other'): Handle {
  if (value instanceof Tensor) return value.handle;
  throw invalidArg(op, name, 'a Tensor', value);
}

/** A number or boolean operand, treated as PyTorch treats a Python scalar. */
function scalar(op: string, value: unknown, name = 'other'): Scalar {
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  throw invalidArg(op, name, 'a Tensor, number or boolean', value);
}

/**
 * The other operand of a binary op as the addon takes it: a tensor's handle, or a number or boolean, which the next
 * argument (`!(other instanceof Tensor)`) flags as a scalar.
 */
function operand(op: string, value: unknown, name = 'other'): Handle | Scalar {
  return value instanceof Tensor ? value.handle : scalar(op, value, name);
}

function optBound(op: string, name: string, value: unknown): number | undefined {
  return value === undefined || value === null ? undefined : checkNumber(op, name, value);
}

/** `f(2, 3)` or `f([2, 3])`, as PyTorch's `reshape` and `permute` accept. */
function intsArg(op: string, args: (number | readonly number[])[]): number[] {
  const list = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
  return checkInts(op, 'shape', list);
}

function dimsArg(op: string, dim: number | readonly number[] | undefined): number[] | undefined {
  if (dim === undefined) return undefined;
  return typeof dim === 'number' ? [checkInt(op, 'dim', dim)] : checkInts(op, 'dim', dim);
}

function nest(flat: ArrayLike<number | bigint>, shape: readonly number[], dtype: DType): NestedArray {
  const read = (i: number): Scalar => (dtype === 'bool' ? flat[i] !== 0 : Number(flat[i]));
  if (shape.length === 0) return read(0);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const build = (dim: number, offset: number): NestedArray[] =>
    Array.from({ length: shape[dim] }, (_, i) =>
      dim === shape.length - 1 ? read(offset + i) : build(dim + 1, offset + i * strides[dim]),
    );
  return build(0, 0);
}

/**
 * How a 4-D tensor's elements are laid out (`torch.memory_format`): 'channelsLast' stores NHWC, which oneDNN's CPU
 * convolutions and cuDNN's tensor cores run faster on; 'preserveFormat' keeps the input's.
 */
export type MemoryFormat = 'contiguousFormat' | 'channelsLast' | 'preserveFormat';

export const MEMORY_FORMATS: readonly MemoryFormat[] = ['contiguousFormat', 'channelsLast', 'preserveFormat'];

function optMemoryFormat(op: string, value: unknown): MemoryFormat | undefined {
  return value === undefined ? undefined : checkOneOf(op, 'memoryFormat', value, MEMORY_FORMATS);
}

export interface ToOptions {
  dtype?: DType;
  device?: Device;
  memoryFormat?: MemoryFormat;
  /** Asynchronous host-to-device copy from pinned memory. */
  nonBlocking?: boolean;
  /** Always return a copy, even when nothing changes. */
  copy?: boolean;
}

export interface ReduceOptions {
  keepdim?: boolean;
}

export interface TopkOptions {
  /** Default -1, the last. */
  dim?: number;
  /** The largest elements (default) or the smallest. */
  largest?: boolean;
  /** Values in order (default true). */
  sorted?: boolean;
}

export interface StdOptions extends ReduceOptions {
  /** Bessel's correction (divide by N - 1); default true, as in PyTorch. */
  unbiased?: boolean;
}

export interface BackwardOptions {
  retainGraph?: boolean;
  createGraph?: boolean;
}

export class Tensor {
  #handle: Handle | null;
  #shape: readonly number[] | undefined;
  #dtype: DType | undefined;
  /** The tidy() scope that will free this tensor, or null when none does. */
  scope: Scope | null;

  /** @internal Tensors are made by factories (`torch.tensor`, `torch.zeros`, ...) and ops, never directly. */
  constructor(handle: Handle) {
    this.#handle = handle;
    this.scope = track(this);
    if (this.scope === null) gcSafetyNet.register(this, handle);
  }

  /** @internal The native handle; throws if the tensor was disposed. */
  get handle(): Handle {
    if (this.#handle === null) throw new DisposedError();
    return this.#handle;
  }

  // ---- lifetime ---------------------------------------------------------------------------------------------------

  /** Drops this reference to the native tensor now (memory is freed when no view or graph still uses it). */
  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
  }

  /** @internal Gives up the handle without releasing it: the caller (tidy) releases it with others in one call. */
  takeHandle(): Handle | null {
    const handle = this.#handle;
    this.#handle = null;
    return handle;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** @internal Hands the tensor to another scope (null: no scope frees it). Used by tidy() and keep(). */
  moveToScope(scope: Scope | null): void {
    if (scope === null && this.scope !== null && this.#handle !== null) gcSafetyNet.register(this, this.#handle);
    this.scope = scope;
    scope?.tensors.push(this);
  }

  // ---- metadata ---------------------------------------------------------------------------------------------------

  get shape(): readonly number[] {
    return (this.#shape ??= Object.freeze(native.shape(this.handle)));
  }

  /** PyTorch's `size()`: the shape, or the size of one dimension (negative dims count from the end). */
  size(dim?: number): number | readonly number[] {
    if (dim === undefined) return this.shape;
    const d = checkInt('size', 'dim', dim);
    const n = this.shape.length;
    if (d < -n || d >= n) throw invalidArg('size', 'dim', `in [${-n}, ${n - 1}] for shape [${this.shape}]`, dim);
    return this.shape[d < 0 ? d + n : d];
  }

  get dtype(): DType {
    return (this.#dtype ??= dtypeName(native.dtype(this.handle)));
  }

  get device(): Device {
    return native.device(this.handle) as Device;
  }

  get ndim(): number {
    return this.shape.length;
  }

  dim(): number {
    return this.shape.length;
  }

  numel(): number {
    return native.numel(this.handle);
  }

  /** Whether the elements are dense in the given layout (default: row-major, `contiguousFormat`). */
  isContiguous(options: { memoryFormat?: MemoryFormat } = {}): boolean {
    return native.isContiguous(
      this.handle,
      optMemoryFormat('isContiguous', checkOptions('isContiguous', options).memoryFormat),
    );
  }

  /** Whether this CPU tensor is in page-locked memory, which CUDA copies from asynchronously. */
  isPinned(): boolean {
    return native.isPinned(this.handle);
  }

  /** A copy in page-locked host memory (needs a CUDA LibTorch and a GPU), for `to('cuda', {nonBlocking: true})`. */
  pinMemory(): Tensor {
    return new Tensor(native.pinMemory(this.handle));
  }

  toString(): string {
    if (this.#handle === null) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  /** How error messages show a tensor: its shape, dtype and device. */
  [describeSelf](): string {
    return this.#handle === null
      ? 'a disposed tensor'
      : `a ${this.dtype} tensor of shape [${this.shape.join(', ')}] on ${this.device}`;
  }

  // ---- conversion and reading back -------------------------------------------------------------------------------

  /** PyTorch's `to(device)`, `to(dtype)` or `to({dtype, device, nonBlocking, copy})`. */
  to(target: Device | DType | ToOptions): Tensor {
    const options: ToOptions =
      typeof target === 'string'
        ? isDType(target)
          ? { dtype: target }
          : { device: checkDevice('to', target) }
        : checkOptions('to', target);
    const dtype = options.dtype === undefined ? undefined : dtypeCode('to', options.dtype);
    const device = options.device === undefined ? undefined : checkDevice('to', options.device);
    return new Tensor(
      native.to(
        this.handle,
        dtype,
        device,
        options.nonBlocking ?? false,
        options.copy ?? false,
        optMemoryFormat('to', options.memoryFormat),
      ),
    );
  }

  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }

  cuda(device: number = 0): Tensor {
    return this.to({ device: `cuda:${checkInt('cuda', 'device', device)}` });
  }

  float(): Tensor {
    return this.to({ dtype: 'float32' });
  }

  double(): Tensor {
    return this.to({ dtype: 'float64' });
  }

  long(): Tensor {
    return this.to({ dtype: 'int64' });
  }

  /** The same values, dense in the given layout (default row-major); this tensor itself when already so. */
  contiguous(options: { memoryFormat?: MemoryFormat } = {}): Tensor {
    return new Tensor(
      native.contiguous(this.handle, optMemoryFormat('contiguous', checkOptions('contiguous', options).memoryFormat)),
    );
  }

  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }

  /** The value of a one-element tensor (a boolean for bool tensors; int64 beyond 2^53 loses precision). */
  item(): number;
  item(): number | boolean;
  item(): number | boolean {
    countHostRead('item');
    return native.item(this.handle);
  }

  /** A fresh host copy of the data, in a typed array matching the dtype (float16/bfloat16 widen to float32). */
  toTypedArray(): TypedArray {
    countHostRead('toTypedArray');
    return viewOf(this.dtype, native.toArrayBuffer(this.handle));
  }

  /** Like `toTypedArray()`, but the (device-to-host) copy runs off the event loop. */
  async toTypedArrayAsync(): Promise<TypedArray> {
    const dtype = this.dtype;
    countHostRead('toTypedArrayAsync');
    return viewOf(dtype, await native.toArrayBufferAsync(this.handle));
  }

  /** PyTorch's `tolist()`: nested arrays of numbers (booleans for bool tensors). */
  toArray(): NestedArray {
    return nest(this.toTypedArray(), this.shape, this.dtype);
  }

  /** Every element, in row-major order, as a number (int64 ones beyond 2^53 lose precision, as Number() does). */
  toNumbers(): number[] {
    return Array.from(this.toTypedArray() as ArrayLike<number | bigint>, Number);
  }

  /** Every element, in row-major order, as a boolean: whether it is non-zero. */
  toBooleans(): boolean[] {
    return Array.from(this.toTypedArray() as ArrayLike<number | bigint>, (x) => x !== 0 && x !== 0n);
  }

  // ---- pointwise arithmetic ---------------------------------------------------------------------------------------

  add(other: Tensor | Scalar, options?: { alpha?: number }): Tensor {
    const alpha = checkNumber('add', 'alpha', options?.alpha ?? 1);
    return new Tensor(native.add(this.handle, operand('add', other), !(other instanceof Tensor), alpha));
  }

  sub(other: Tensor | Scalar, options?: { alpha?: number }): Tensor {
    const alpha = checkNumber('sub', 'alpha', options?.alpha ?? 1);
    return new Tensor(native.sub(this.handle, operand('sub', other), !(other instanceof Tensor), alpha));
  }

  mul(other: Tensor | Scalar): Tensor {
    return new Tensor(native.mul(this.handle, operand('mul', other), !(other instanceof Tensor)));
  }

  /** True division, or `roundingMode` 'trunc' / 'floor' as in PyTorch. */
  div(other: Tensor | Scalar, options?: { roundingMode?: 'trunc' | 'floor' }): Tensor {
    const mode =
      options?.roundingMode === undefined
        ? undefined
        : checkOneOf('div', 'roundingMode', options.roundingMode, ['trunc', 'floor']);
    return new Tensor(native.div(this.handle, operand('div', other), !(other instanceof Tensor), mode));
  }

  pow(exponent: Tensor | number): Tensor {
    return new Tensor(
      native.pow(
        this.handle,
        exponent instanceof Tensor ? exponent.handle : checkNumber('pow', 'exponent', exponent),
        !(exponent instanceof Tensor),
      ),
    );
  }

  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  exp(): Tensor {
    return new Tensor(native.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(native.log(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.rsqrt(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  /** To the nearest integer, halves to even (PyTorch's `round`). */
  round(): Tensor {
    return new Tensor(native.round(this.handle));
  }
  sign(): Tensor {
    return new Tensor(native.sign(this.handle));
  }
  sin(): Tensor {
    return new Tensor(native.sin(this.handle));
  }
  cos(): Tensor {
    return new Tensor(native.cos(this.handle));
  }
  sigmoid(): Tensor {
    return new Tensor(native.sigmoid(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(native.tanh(this.handle));
  }
  relu(): Tensor {
    return new Tensor(native.relu(this.handle));
  }

  /** Limits values to [min, max]; either bound may be omitted. */
  clamp(options: { min?: number; max?: number }): Tensor {
    const { min, max } = checkOptions('clamp', options);
    if (min === undefined && max === undefined)
      throw invalidArg('clamp', 'options', 'at least one of min and max', options);
    return new Tensor(native.clamp(this.handle, optBound('clamp', 'min', min), optBound('clamp', 'max', max)));
  }

  maximum(t: Tensor): Tensor {
    return new Tensor(native.maximum(this.handle, other('maximum', t)));
  }
  minimum(t: Tensor): Tensor {
    return new Tensor(native.minimum(this.handle, other('minimum', t)));
  }

  // ---- comparison and selection -----------------------------------------------------------------------------------

  eq(other: Tensor | Scalar): Tensor {
    return new Tensor(native.eq(this.handle, operand('eq', other), !(other instanceof Tensor)));
  }
  ne(other: Tensor | Scalar): Tensor {
    return new Tensor(native.ne(this.handle, operand('ne', other), !(other instanceof Tensor)));
  }
  lt(other: Tensor | Scalar): Tensor {
    return new Tensor(native.lt(this.handle, operand('lt', other), !(other instanceof Tensor)));
  }
  le(other: Tensor | Scalar): Tensor {
    return new Tensor(native.le(this.handle, operand('le', other), !(other instanceof Tensor)));
  }
  gt(other: Tensor | Scalar): Tensor {
    return new Tensor(native.gt(this.handle, operand('gt', other), !(other instanceof Tensor)));
  }
  ge(other: Tensor | Scalar): Tensor {
    return new Tensor(native.ge(this.handle, operand('ge', other), !(other instanceof Tensor)));
  }
  logicalNot(): Tensor {
    return new Tensor(native.logicalNot(this.handle));
  }
  isnan(): Tensor {
    return new Tensor(native.isnan(this.handle));
  }
  isfinite(): Tensor {
    return new Tensor(native.isfinite(this.handle));
  }

  /** PyTorch's `allclose`: |a - b| <= atol + rtol * |b| everywhere. */
  allclose(t: Tensor, options: { rtol?: number; atol?: number } = {}): boolean {
    const { rtol = 1e-5, atol = 1e-8 } = checkOptions('allclose', options);
    const h = native.allclose(
      this.handle,
      other('allclose', t),
      checkNumber('allclose', 'rtol', rtol),
      checkNumber('allclose', 'atol', atol),
    );
    countHostRead('allclose');
    const result = native.item(h) as boolean;
    native.dispose(h);
    return result;
  }

  // ---- linear algebra ---------------------------------------------------------------------------------------------

  matmul(t: Tensor): Tensor {
    return new Tensor(native.matmul(this.handle, other('matmul', t)));
  }
  mm(t: Tensor): Tensor {
    return new Tensor(native.mm(this.handle, other('mm', t)));
  }
  bmm(t: Tensor): Tensor {
    return new Tensor(native.bmm(this.handle, other('bmm', t)));
  }

  // ---- reductions -------------------------------------------------------------------------------------------------

  /** Sum over `dim` (a dim or a list of dims), or over all elements when `dim` is omitted. */
  sum(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return new Tensor(
      native.sum(
        this.handle,
        dimsArg('sum', dim),
        checkBool('sum', 'keepdim', checkOptions('sum', options).keepdim ?? false),
      ),
    );
  }

  mean(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return new Tensor(
      native.mean(
        this.handle,
        dimsArg('mean', dim),
        checkBool('mean', 'keepdim', checkOptions('mean', options).keepdim ?? false),
      ),
    );
  }

  logsumexp(dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return new Tensor(
      native.logsumexp(
        this.handle,
        dimsArg('logsumexp', dim),
        checkBool('logsumexp', 'keepdim', checkOptions('logsumexp', options).keepdim ?? false),
      ),
    );
  }

  std(dim?: number | readonly number[], options: StdOptions = {}): Tensor {
    const { keepdim = false, unbiased = true } = checkOptions('std', options);
    return new Tensor(
      native.std(
        this.handle,
        dimsArg('std', dim),
        checkBool('std', 'keepdim', keepdim),
        checkBool('std', 'unbiased', unbiased),
      ),
    );
  }

  var(dim?: number | readonly number[], options: StdOptions = {}): Tensor {
    const { keepdim = false, unbiased = true } = checkOptions('var', options);
    return new Tensor(
      native.var(
        this.handle,
        dimsArg('var', dim),
        checkBool('var', 'keepdim', keepdim),
        checkBool('var', 'unbiased', unbiased),
      ),
    );
  }

  /** The p-norm over `dim`, or over all elements. */
  norm(p: number = 2, dim?: number | readonly number[], options: ReduceOptions = {}): Tensor {
    return new Tensor(
      native.norm(
        this.handle,
        dimsArg('norm', dim),
        checkBool('norm', 'keepdim', checkOptions('norm', options).keepdim ?? false),
        checkNumber('norm', 'p', p),
      ),
    );
  }

  /** The largest element; with `dim`, PyTorch's (values, indices) pair along it. */
  max(): Tensor;
  max(dim: number, options?: ReduceOptions): { values: Tensor; indices: Tensor };
  max(dim?: number, options: ReduceOptions = {}): Tensor | { values: Tensor; indices: Tensor } {
    return this.#extreme('max', dim, options);
  }

  /** The smallest element; with `dim`, PyTorch's (values, indices) pair along it. */
  min(): Tensor;
  min(dim: number, options?: ReduceOptions): { values: Tensor; indices: Tensor };
  min(dim?: number, options: ReduceOptions = {}): Tensor | { values: Tensor; indices: Tensor } {
    return this.#extreme('min', dim, options);
  }

  #extreme(
    op: 'max' | 'min',
    dim: number | undefined,
    options: ReduceOptions,
  ): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(native[op](this.handle) as Handle);
    const [values, indices] = native[op](
      this.handle,
      checkInt(op, 'dim', dim),
      checkBool(op, 'keepdim', checkOptions(op, options).keepdim ?? false),
    ) as [Handle, Handle];
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }

  argmax(dim?: number, options: ReduceOptions = {}): Tensor {
    return new Tensor(
      native.argmax(
        this.handle,
        dim === undefined ? undefined : checkInt('argmax', 'dim', dim),
        checkBool('argmax', 'keepdim', checkOptions('argmax', options).keepdim ?? false),
      ),
    );
  }

  argmin(dim?: number, options: ReduceOptions = {}): Tensor {
    return new Tensor(
      native.argmin(
        this.handle,
        dim === undefined ? undefined : checkInt('argmin', 'dim', dim),
        checkBool('argmin', 'keepdim', checkOptions('argmin', options).keepdim ?? false),
      ),
    );
  }

  /** The k largest (or smallest) elements along `dim` (default the last) and their indices, as PyTorch's `topk`. */
  topk(k: number, options: TopkOptions = {}): { values: Tensor; indices: Tensor } {
    const { dim = -1, largest = true, sorted = true } = checkOptions('topk', options);
    const shape = this.shape;
    const d = checkInt('topk', 'dim', dim);
    if (d < -shape.length || d >= Math.max(shape.length, 1))
      throw invalidArg('topk', 'dim', `in [${-shape.length}, ${shape.length})`, dim);
    const size = shape.length === 0 ? 1 : shape[d < 0 ? d + shape.length : d];
    if (checkInt('topk', 'k', k) < 0 || k > size)
      throw invalidArg('topk', 'k', `in [0, ${size}] (the size of dim ${dim} of shape [${shape}])`, k);
    const [values, indices] = native.topk(
      this.handle,
      k,
      d,
      checkBool('topk', 'largest', largest),
      checkBool('topk', 'sorted', sorted),
    );
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }

  // ---- views and re-arrangements ----------------------------------------------------------------------------------

  reshape(...shape: number[] | [readonly number[]]): Tensor {
    return new Tensor(native.reshape(this.handle, intsArg('reshape', shape)));
  }
  /** PyTorch's `view(shape)`, or `view(dtype)`: the same bytes read as another dtype (the last dimension rescaled). */
  view(...shape: number[] | [readonly number[]] | [DType]): Tensor {
    if (typeof shape[0] === 'string') return new Tensor(native.viewDtype(this.handle, dtypeCode('view', shape[0])));
    return new Tensor(native.view(this.handle, intsArg('view', shape as number[])));
  }
  permute(...dims: number[] | [readonly number[]]): Tensor {
    return new Tensor(native.permute(this.handle, intsArg('permute', dims)));
  }
  expand(...shape: number[] | [readonly number[]]): Tensor {
    return new Tensor(native.expand(this.handle, intsArg('expand', shape)));
  }
  repeat(...repeats: number[] | [readonly number[]]): Tensor {
    return new Tensor(native.repeat(this.handle, intsArg('repeat', repeats)));
  }
  flip(...dims: number[] | [readonly number[]]): Tensor {
    return new Tensor(native.flip(this.handle, intsArg('flip', dims)));
  }

  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(
      native.flatten(this.handle, checkInt('flatten', 'startDim', startDim), checkInt('flatten', 'endDim', endDim)),
    );
  }

  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim === undefined ? undefined : checkInt('squeeze', 'dim', dim)));
  }

  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.handle, checkInt('unsqueeze', 'dim', dim)));
  }

  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(
      native.transpose(this.handle, checkInt('transpose', 'dim0', dim0), checkInt('transpose', 'dim1', dim1)),
    );
  }

  /** The transpose of a matrix (or a 0/1-D tensor unchanged), as PyTorch's `t()`. */
  t(): Tensor {
    return this.ndim < 2 ? this.view(this.shape) : this.transpose(0, 1);
  }

  /** PyTorch's `as_strided`: a view of this tensor's storage with the given sizes, strides and storage offset. */
  asStrided(size: readonly number[], stride: readonly number[], storageOffset = 0): Tensor {
    return new Tensor(
      native.asStrided(
        this.handle,
        intsArg('asStrided', [size]),
        intsArg('asStrided', [stride]),
        checkInt('asStrided', 'storageOffset', storageOffset),
      ),
    );
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(
      native.narrow(
        this.handle,
        checkInt('narrow', 'dim', dim),
        checkInt('narrow', 'start', start),
        checkInt('narrow', 'length', length),
      ),
    );
  }

  /** `x[..., start:end:step, ...]` along `dim` (a view); omitted bounds mean the whole range. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    const opt = (name: string, v?: number) => (v === undefined ? undefined : checkInt('slice', name, v));
    return new Tensor(
      native.slice(
        this.handle,
        checkInt('slice', 'dim', dim),
        opt('start', start),
        opt('end', end),
        checkInt('slice', 'step', step),
      ),
    );
  }

  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.handle, checkInt('select', 'dim', dim), checkInt('select', 'index', index)));
  }

  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(
      native.indexSelect(this.handle, checkInt('indexSelect', 'dim', dim), other('indexSelect', index, 'index')),
    );
  }

  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.handle, checkInt('gather', 'dim', dim), other('gather', index, 'index')));
  }

  // ---- in-place updates (return this) -----------------------------------------------------------------------------

  add_(other: Tensor | Scalar, options?: { alpha?: number }): this {
    const alpha = checkNumber('add_', 'alpha', options?.alpha ?? 1);
    native.add_(this.handle, operand('add_', other), !(other instanceof Tensor), alpha);
    return this;
  }

  sub_(other: Tensor | Scalar, options?: { alpha?: number }): this {
    const alpha = checkNumber('sub_', 'alpha', options?.alpha ?? 1);
    native.sub_(this.handle, operand('sub_', other), !(other instanceof Tensor), alpha);
    return this;
  }

  mul_(other: Tensor | Scalar): this {
    native.mul_(this.handle, operand('mul_', other), !(other instanceof Tensor));
    return this;
  }

  div_(other: Tensor | Scalar): this {
    native.div_(this.handle, operand('div_', other), !(other instanceof Tensor));
    return this;
  }

  relu_(): this {
    native.relu_(this.handle);
    return this;
  }

  clamp_(options: { min?: number; max?: number }): this {
    const { min, max } = checkOptions('clamp_', options);
    if (min === undefined && max === undefined)
      throw invalidArg('clamp_', 'options', 'at least one of min and max', options);
    native.clamp_(this.handle, optBound('clamp_', 'min', min), optBound('clamp_', 'max', max));
    return this;
  }

  zero_(): this {
    native.zero_(this.handle);
    return this;
  }

  fill_(value: Scalar): this {
    native.fill_(this.handle, scalar('fill_', value));
    return this;
  }

  copy_(src: Tensor): this {
    native.copy_(this.handle, other('copy_', src, 'src'));
    return this;
  }

  uniform_(from = 0, to = 1): this {
    native.uniform_(this.handle, checkNumber('uniform_', 'from', from), checkNumber('uniform_', 'to', to));
    return this;
  }

  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, checkNumber('normal_', 'mean', mean), checkNumber('normal_', 'std', std));
    return this;
  }

  // ---- autograd ---------------------------------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }

  set requiresGrad(value: boolean) {
    native.requiresGrad_(this.handle, checkBool('requiresGrad', 'value', value));
  }

  requiresGrad_(value = true): this {
    this.requiresGrad = value;
    return this;
  }

  /** A new handle to the accumulated gradient (null when there is none); dispose it, or read it inside tidy(). */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }

  set grad(value: Tensor | null) {
    native.setGrad(this.handle, value === null ? null : other('grad', value, 'value'));
  }

  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }

  /** The name of the autograd node that made this tensor (PyTorch's `grad_fn`), or null for a leaf. */
  get gradFn(): string | null {
    return native.gradFn(this.handle);
  }

  retainGrad(): void {
    native.retainGrad(this.handle);
  }

  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }

  /** PyTorch's `.data`: a new handle to the same data, outside autograd (as `detach()`). */
  get data(): Tensor {
    return this.detach();
  }

  /**
   * PyTorch's `t.data = src`: this tensor (same object, same autograd identity) now uses `src`'s data, which may have
   * another shape, dtype or device. How `Module.to()` moves parameters that optimizers already hold.
   */
  set data(src: Tensor) {
    native.setData(this.handle, other('data', src, 'value'));
    this.#shape = undefined;
    this.#dtype = undefined;
  }

  /** Accumulates gradients into the leaves; `gradient` is required unless this tensor has one element. */
  backward(gradient?: Tensor, options: BackwardOptions = {}): void {
    const { retainGraph, createGraph = false } = checkOptions('backward', options);
    native.backward(
      this.handle,
      gradient === undefined ? undefined : other('backward', gradient, 'gradient'),
      retainGraph === undefined ? undefined : checkBool('backward', 'retainGraph', retainGraph),
      checkBool('backward', 'createGraph', createGraph),
    );
  }
}
