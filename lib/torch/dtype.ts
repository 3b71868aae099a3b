/** Data types, with PyTorch's names. The codes come from the addon (native/tensor.cc), the single source. */
import { ArgumentError, invalidArg } from '../errors.js';
import { native } from '../native.js';

export const dtypes = [
  'float32',
  'float64',
  'float16',
  'bfloat16',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
] as const;
export type DType = (typeof dtypes)[number];

const codes = new Map<DType, number>(dtypes.map((d) => [d, native.dtypeCodes[d]]));
const names = new Map<number, DType>(dtypes.map((d) => [native.dtypeCodes[d], d]));

export function isDType(value: unknown): value is DType {
  return codes.has(value as DType);
}

/** The native code of a dtype name; throws an ArgumentError naming the op for anything else. */
export function dtypeCode(op: string, dtype: unknown): number {
  const code = codes.get(dtype as DType);
  if (code === undefined) throw invalidArg(op, 'dtype', `one of ${dtypes.join(', ')}`, dtype);
  return code;
}

export function optDtypeCode(op: string, dtype: unknown): number | undefined {
  return dtype === undefined ? undefined : dtypeCode(op, dtype);
}

export function dtypeName(code: number): DType {
  const name = names.get(code);
  if (name === undefined) throw new ArgumentError(`tensor has a dtype mmssl does not expose (code ${code})`);
  return name;
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

/** What `toTypedArray()` returns for each dtype (float16/bfloat16 widen to float32, bool reads as 0/1 bytes). */
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

const views: Record<DType, new (buffer: ArrayBuffer) => TypedArray> = {
  float32: Float32Array,
  float16: Float32Array,
  bfloat16: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function viewOf(dtype: DType, buffer: ArrayBuffer): TypedArray {
  return new views[dtype](buffer);
}

/** The dtype a typed array holds, as `torch.from_numpy` would read it. */
export function dtypeOfArray(op: string, data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return 'uint8';
  throw invalidArg(op, 'data', 'a Float32/Float64/BigInt64/Int32/Int16/Int8/Uint8 array', data);
}
