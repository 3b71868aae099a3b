/**
 * NumPy's .npy format (versions 1.0 to 3.0): decoding to a typed array in C order, and encoding as `np.save` does
 * (version 1.0, header padded to a multiple of 64 bytes). Big-endian and Fortran-ordered files are converted; any
 * other departure from the format is a FileError naming the file and what is wrong.
 */
import { FileError } from '../../errors.js';

export type NpyDtype = 'bool' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export type NpyData =
  Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

export interface NpyArray {
  dtype: NpyDtype;
  /** NumPy's shape, C order (the last axis varies fastest in `data`). */
  shape: number[];
  data: NpyData;
}

const KINDS: Record<string, [NpyDtype, new (buffer: ArrayBuffer) => NpyData]> = {
  b1: ['bool', Uint8Array],
  u1: ['uint8', Uint8Array],
  i1: ['int8', Int8Array],
  u2: ['uint16', Uint16Array],
  i2: ['int16', Int16Array],
  u4: ['uint32', Uint32Array],
  i4: ['int32', Int32Array],
  f4: ['float32', Float32Array],
  f8: ['float64', Float64Array],
};
const DESCR: Record<NpyDtype, string> = {
  bool: '|b1',
  uint8: '|u1',
  int8: '|i1',
  uint16: '<u2',
  int16: '<i2',
  uint32: '<u4',
  int32: '<i4',
  float32: '<f4',
  float64: '<f8',
};
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** NumPy reserves room in the header for the growth axis (the first) to reach this many digits (numpy.lib.format). */
const GROWTH_AXIS_MAX_DIGITS = 21;

function headerField(header: string, key: string, pattern: string): string | undefined {
  return new RegExp(`['"]${key}['"]\\s*:\\s*(${pattern})`).exec(header)?.[1];
}

/** C-order copy of a Fortran-order array: element (i0, ..., ik) sits at sum i_j * prod_{l<j} n_l in the source. */
function fromFortranOrder(data: NpyData, shape: number[]): NpyData {
  const out = new (data.constructor as new (n: number) => NpyData)(data.length);
  const strides = shape.map((_, j) => shape.slice(0, j).reduce((a, b) => a * b, 1));
  const index = new Array<number>(shape.length).fill(0);
  for (let c = 0; c < data.length; c++) {
    out[c] = data[index.reduce((sum, i, j) => sum + i * strides[j], 0)];
    for (let j = shape.length - 1; j >= 0 && ++index[j] === shape[j]; j--) index[j] = 0;
  }
  return out;
}

/** Decodes a whole .npy file; `file` names it in errors. */
export function decodeNpy(bytes: Uint8Array, file: string): NpyArray {
  const fail = (what: string) => new FileError(file, `not a readable .npy file: ${what}`);
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) throw fail('no \\x93NUMPY magic');
  const major = bytes[6];
  if (major < 1 || major > 3) throw fail(`format version ${major}.${bytes[7]} (1.0 to 3.0 are read)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes)
    throw fail(`the file ends inside the ${lengthBytes}-byte header length (${bytes.length} bytes)`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lengthBytes + headerLength;
  if (dataStart > bytes.length)
    throw fail(`header of ${headerLength} bytes runs past the end of the file (${bytes.length} bytes)`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(8 + lengthBytes, dataStart));
  // A structured dtype's descr is a list of fields ('['): matched only to say so.
  const descrValue = headerField(header, 'descr', `'[^']*'|"[^"]*"|\\[`);
  const fortran = headerField(header, 'fortran_order', 'True|False');
  const shapeText = headerField(header, 'shape', '\\([^)]*\\)');
  if (descrValue === undefined || fortran === undefined || shapeText === undefined)
    throw fail(`header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  if (descrValue === '[') throw fail('structured dtype (bool, (u)int8/16/32, float32/64 are read)');
  const descr = descrValue.slice(1, -1);
  const kind = KINDS[descr.slice(1)];
  if (!kind || !'<>|='.includes(descr[0])) throw fail(`dtype '${descr}' (bool, (u)int8/16/32, float32/64 are read)`);
  const shape = shapeText
    .slice(1, -1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((n) => !Number.isSafeInteger(n) || n < 0)) throw fail(`shape ${shapeText}`);
  const [dtype, Ctor] = kind;
  const itemSize = Number(descr.slice(2));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - dataStart !== count * itemSize) {
    throw fail(
      `shape ${shapeText} of '${descr}' needs ${count * itemSize} bytes of data, the file has ${bytes.length - dataStart}`,
    );
  }
  const raw = new Uint8Array(bytes.subarray(dataStart)); // a copy (aligned, owned; Buffer.slice would share)
  if (descr[0] === '>' && itemSize > 1) {
    for (let i = 0; i < raw.length; i += itemSize) raw.subarray(i, i + itemSize).reverse();
  }
  const data = new Ctor(raw.buffer);
  return { dtype, shape, data: fortran === 'True' && shape.length > 1 ? fromFortranOrder(data, shape) : data };
}

/** np.save's header: the dict, room for the first axis to grow to 21 digits, then 1 to 64 spaces and '\\n' up to a multiple of 64 bytes. */
function saveHeader({ dtype, shape }: NpyArray): string {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const growth = shape.length > 0 ? ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length) : '';
  const unpadded = 10 + dict.length + growth.length + 1;
  return `${dict}${growth}${' '.repeat(64 - (unpadded % 64))}\n`;
}

/** Encodes `data` (C order) of `shape` byte for byte as np.save (NumPy 1.24 and later) writes it: version 1.0, little-endian. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const { data } = array;
  const padded = saveHeader(array);
  const out = new Uint8Array(10 + padded.length + data.byteLength);
  out.set(MAGIC);
  out[6] = 1;
  new DataView(out.buffer).setUint16(8, padded.length, true);
  out.set(new TextEncoder().encode(padded), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + padded.length);
  return out;
}
