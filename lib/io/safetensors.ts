/**
 * The safetensors format (Hugging Face), read and written as `safetensors.torch` does: `saveFile(tensors, path,
 * {metadata})`, `loadFile(path, {device})`, `serialize` / `deserialize` in memory. Loaders return a `Map` in file
 * order; the `__metadata__` strings come from `readMetadata(path)` (the header only), or with the tensors from
 * `loadFileWithMetadata(path)` when both must come from the same version of a file that is being replaced.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets: [begin,
 * end]}, "__metadata__": {string: string}}, space-padded to a multiple of 8), then the tensors' bytes, back to back,
 * little-endian, row-major. Writing produces the bytes the Rust crate would: tensors copied to the CPU and made
 * contiguous, `__metadata__` first, then the tensors in descending dtype alignment and then by name (UTF-8 order),
 * so each tensor's data starts at a multiple of its element size; every write is atomic (io/atomic.ts). Reading
 * checks the whole header and layout before making any tensor, so a truncated or corrupt file is a `FileError`
 * naming the file and the problem, never a crash or a half-loaded dict.
 */
import { readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';

import { FileError, checkOptions, invalidArg, isObject } from '../errors.js';
import { native } from '../native.js';
import { type Device, checkDevice } from '../torch/device.js';
import { type DType, dtypeCode } from '../torch/dtype.js';
import { Tensor } from '../torch/tensor.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';

export type TensorDict = Map<string, Tensor> | Record<string, Tensor>;
export type Metadata = Record<string, string>;

export interface SaveOptions {
  /** The file's `__metadata__`: free-form strings (Hugging Face writes `format: 'pt'`). */
  metadata?: Metadata;
}

export interface LoadOptions {
  /** Where the tensors go (default 'cpu'), as `safetensors.torch.load_file(path, device)`. */
  device?: Device;
}

/** The dtypes in the order of the Rust crate's `Dtype` enum (ascending alignment), with their codes and sizes. */
const FORMATS: readonly { dtype: DType; code: string; size: number }[] = [
  { dtype: 'bool', code: 'BOOL', size: 1 },
  { dtype: 'uint8', code: 'U8', size: 1 },
  { dtype: 'int8', code: 'I8', size: 1 },
  { dtype: 'int16', code: 'I16', size: 2 },
  { dtype: 'float16', code: 'F16', size: 2 },
  { dtype: 'bfloat16', code: 'BF16', size: 2 },
  { dtype: 'int32', code: 'I32', size: 4 },
  { dtype: 'float32', code: 'F32', size: 4 },
  { dtype: 'float64', code: 'F64', size: 8 },
  { dtype: 'int64', code: 'I64', size: 8 },
];
const BY_DTYPE = new Map(FORMATS.map((f, rank) => [f.dtype, { ...f, rank }]));
const BY_CODE = new Map(FORMATS.map((f) => [f.code, f]));

/** The official readers refuse larger headers; so do we, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;

// ---- writing ----------------------------------------------------------------------------------------------------

function entriesOf(op: string, tensors: TensorDict): [string, Tensor][] {
  if (tensors === null || typeof tensors !== 'object')
    throw invalidArg(op, 'tensors', 'a Map or an object of tensors', tensors);
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of entries) {
    if (typeof name !== 'string') throw invalidArg(op, 'tensor name', 'a string', name);
    if (name === '__metadata__') throw invalidArg(op, 'tensor name', 'not the reserved __metadata__', name);
    if (!(t instanceof Tensor)) throw invalidArg(op, `tensors['${name}']`, 'a Tensor', t);
  }
  return entries;
}

function checkMetadata(op: string, metadata: unknown): Metadata | undefined {
  if (metadata === undefined) return undefined;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
    throw invalidArg(op, 'metadata', 'an object of strings', metadata);
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw invalidArg(op, `metadata['${k}']`, 'a string', v);
  return metadata as Metadata;
}

/** The Rust crate's order: descending dtype (alignment), then name as UTF-8 bytes. */
function fileOrder([a, x]: [string, Tensor], [b, y]: [string, Tensor]): number {
  return BY_DTYPE.get(y.dtype)!.rank - BY_DTYPE.get(x.dtype)!.rank || Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * @internal The file's bytes as chunks (length, header, each tensor's data). The data is copied now, so the caller
 * may change or free the tensors as soon as this returns, even while the chunks are still being written.
 */
export function serializeChunks(tensors: TensorDict, options: SaveOptions = {}): Uint8Array[] {
  const metadata = checkMetadata('serialize', checkOptions('serialize', options).metadata);
  // Written by hand, not JSON.stringify(object): an object would move integer-like names first (and '__proto__'
  // would not be a key), while the header must list the tensors in data order.
  const fields = metadata ? [`"__metadata__":${JSON.stringify(metadata)}`] : [];
  const data: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entriesOf('serialize', tensors).sort(fileOrder)) {
    const bytes = new Uint8Array(native.toBytes(t.handle));
    fields.push(
      `${JSON.stringify(name)}:${JSON.stringify({ dtype: BY_DTYPE.get(t.dtype)!.code, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] })}`,
    );
    data.push(bytes);
    offset += bytes.byteLength;
  }
  const json = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  const header = Buffer.alloc(8 + Math.ceil(json.length / 8) * 8, ' ');
  header.writeBigUInt64LE(BigInt(header.length - 8));
  json.copy(header, 8);
  return [header, ...data];
}

/** `safetensors.torch.save`: the whole file in memory. */
export function serialize(tensors: TensorDict, options: SaveOptions = {}): Uint8Array {
  return Buffer.concat(serializeChunks(tensors, options));
}

/** @internal A path argument, checked. */
export function checkPath(op: string, path: unknown): string {
  if (typeof path !== 'string' || path === '') throw invalidArg(op, 'path', 'a file path', path);
  return path;
}

/**
 * `safetensors.torch.save_file`: replaces `path` atomically. The tensors are copied when called; the writes and
 * fsyncs run off the event loop.
 */
export async function saveFile(tensors: TensorDict, path: string, options: SaveOptions = {}): Promise<void> {
  checkPath('saveFile', path);
  await writeFileAtomic(path, serializeChunks(tensors, options));
}

export function saveFileSync(tensors: TensorDict, path: string, options: SaveOptions = {}): void {
  writeFileAtomicSync(checkPath('saveFileSync', path), serializeChunks(tensors, options));
}

// ---- reading ----------------------------------------------------------------------------------------------------

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

interface Header {
  /** In data order. */
  entries: Entry[];
  metadata: Metadata;
  dataStart: number;
}

function headerLength(bytes: Uint8Array, source: string): number {
  if (bytes.byteLength < 8)
    throw new FileError(
      source,
      `not a safetensors file: ${bytes.byteLength} bytes, shorter than the 8-byte header length`,
    );
  const n = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new FileError(source, `not a safetensors file: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`);
  return Number(n);
}

function parseJson(json: Uint8Array, source: string): Record<string, unknown> {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(json);
    // The crate's check; JSON that starts with '{' can only be an object
    if (!text.startsWith('{')) throw new Error("not a JSON object (it does not start with '{')");
    return JSON.parse(text);
  } catch (e) {
    throw new FileError(source, `corrupt safetensors header: ${(e as Error).message}`);
  }
}

function parseMetadata(value: unknown, source: string): Metadata {
  if (value === undefined) return {};
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new FileError(source, '__metadata__ must be an object of strings');
  }
  return value as Metadata;
}

function parseEntry(name: string, value: unknown, source: string): Entry {
  const bad = (why: string) => new FileError(source, `tensor '${name}': ${why}`);
  if (!isObject(value)) throw bad('must be an object {dtype, shape, data_offsets}');
  const { dtype: code, shape, data_offsets: offsets } = value;
  const format = BY_CODE.get(code as string);
  if (!format) throw bad(`unknown dtype ${JSON.stringify(code)} (known: ${[...BY_CODE.keys()].join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0))
    throw bad(`bad shape ${JSON.stringify(shape)}`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw bad(`bad data_offsets ${JSON.stringify(offsets)}`);
  }
  const bytes = shape.reduce((a: number, b: number) => a * b, 1) * format.size;
  if (offsets[1] - offsets[0] !== bytes)
    throw bad(
      `data_offsets ${JSON.stringify(offsets)} hold ${offsets[1] - offsets[0]} bytes, shape [${shape}] of ${format.dtype} needs ${bytes}`,
    );
  return { name, dtype: format.dtype, shape, begin: offsets[0], end: offsets[1] };
}

/** The tensors must tile the data region exactly: no gaps, no overlaps, nothing after the last. */
function checkLayout(entries: Entry[], dataBytes: number, source: string): void {
  let end = 0;
  for (const e of entries) {
    if (e.begin !== end)
      throw new FileError(
        source,
        `tensor '${e.name}' starts at byte ${e.begin} of the data, expected ${end} (${e.begin < end ? 'overlap' : 'gap'})`,
      );
    end = e.end;
  }
  if (end !== dataBytes) {
    throw new FileError(
      source,
      end > dataBytes
        ? `truncated: the tensors need ${end} data bytes, the file has ${dataBytes}`
        : `${dataBytes - end} bytes after the last tensor`,
    );
  }
}

/** Parses and checks the header of a file of `fileBytes` bytes, of which `bytes` holds at least the header. */
function parseHeader(bytes: Uint8Array, fileBytes: number, source: string): Header {
  const n = headerLength(bytes, source);
  if (8 + n > fileBytes)
    throw new FileError(
      source,
      `truncated: the header needs ${n} bytes, the file has ${fileBytes - 8} after the length`,
    );
  const { __metadata__: meta, ...tensors } = parseJson(bytes.subarray(8, 8 + n), source);
  const entries = Object.entries(tensors)
    .map(([name, v]) => parseEntry(name, v, source))
    .sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkLayout(entries, fileBytes - 8 - n, source);
  return { entries, metadata: parseMetadata(meta, source), dataStart: 8 + n };
}

function checkLoadOptions(op: string, options: LoadOptions): Device {
  return checkDevice(op, checkOptions(op, options).device ?? 'cpu');
}

/** One tensor from its bytes; LibTorch's refusal (it should have none after the checks) still names the file. */
function tensorOf(data: Uint8Array, e: Entry, source: string): Tensor {
  try {
    return new Tensor(native.fromBytes(data, e.shape, dtypeCode('load', e.dtype)));
  } catch (error) {
    throw new FileError(source, `tensor '${e.name}': ${(error as Error).message}`);
  }
}

/** The tensors (in data order, on `device`) and metadata of a whole file's bytes. */
function decode(
  bytes: Uint8Array,
  source: string,
  device: Device,
): { tensors: Map<string, Tensor>; metadata: Metadata } {
  const { entries, metadata, dataStart } = parseHeader(bytes, bytes.byteLength, source);
  const tensors = new Map<string, Tensor>();
  try {
    for (const e of entries) {
      const cpu = tensorOf(bytes.subarray(dataStart + e.begin, dataStart + e.end), e, source);
      tensors.set(e.name, cpu); // before moving it, so that a failed move still frees it
      if (device !== 'cpu') {
        tensors.set(e.name, cpu.to({ device }));
        cpu.dispose();
      }
    }
  } catch (e) {
    tensors.forEach((t) => t.dispose()); // all or nothing: no half-loaded dict, no leak
    throw e;
  }
  return { tensors, metadata };
}

/** `safetensors.torch.load`: the tensors of a file's bytes, in file order. */
export function deserialize(bytes: Uint8Array, options: LoadOptions = {}): Map<string, Tensor> {
  if (!(bytes instanceof Uint8Array)) throw invalidArg('deserialize', 'bytes', 'a Uint8Array', bytes);
  return decode(bytes, '<buffer>', checkLoadOptions('deserialize', options)).tensors;
}

function readError(path: string, e: unknown): FileError {
  return new FileError(path, `cannot read: ${(e as Error).message}`);
}

/** The tensors (in file order) and the metadata, from one read of the file. */
export async function loadFileWithMetadata(
  path: string,
  options: LoadOptions = {},
): Promise<{ tensors: Map<string, Tensor>; metadata: Metadata }> {
  checkPath('loadFile', path);
  const device = checkLoadOptions('loadFile', options);
  return decode(
    await readFile(path).catch((e) => {
      throw readError(path, e);
    }),
    path,
    device,
  );
}

/** `safetensors.torch.load_file`: the file's tensors, in file order, on `device` (default the CPU). */
export async function loadFile(path: string, options: LoadOptions = {}): Promise<Map<string, Tensor>> {
  return (await loadFileWithMetadata(path, options)).tensors;
}

export function loadFileSync(path: string, options: LoadOptions = {}): Map<string, Tensor> {
  checkPath('loadFileSync', path);
  const device = checkLoadOptions('loadFileSync', options);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw readError(path, e);
  }
  return decode(bytes, path, device).tensors;
}

/**
 * A file's `__metadata__` (`{}` when it has none), reading only the header; the header and layout are checked as
 * `loadFile` checks them.
 */
export async function readMetadata(path: string): Promise<Metadata> {
  checkPath('readMetadata', path);
  const file = await open(path, 'r').catch((e) => {
    throw readError(path, e);
  });
  try {
    const size = (await file.stat()).size;
    const read = async (length: number) => {
      const bytes = new Uint8Array(length);
      await file.read(bytes, 0, length, 0);
      return bytes;
    };
    const n = headerLength(await read(Math.min(size, 8)), path);
    return parseHeader(await read(Math.min(8 + n, size)), size, path).metadata;
  } catch (e) {
    throw e instanceof FileError ? e : readError(path, e);
  } finally {
    await file.close();
  }
}
