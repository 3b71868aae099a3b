/**
 * The safetensors format (Hugging Face), read and written as `safetensors.torch` does: `saveFile(tensors, path,
 * {metadata})`, `loadFile(path)`. A file is an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, space-padded to a multiple
 * of 8), then the tensors' bytes, back to back, little-endian, row-major. Tensors are written in the order given (a
 * state dict's order); every write is atomic. Reading checks the whole header before making any tensor, so a
 * truncated or corrupt file is a `FileError` naming the file and the problem, never a crash or a half-loaded dict.
 */
import { readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';

import { FileError, checkOptions, invalidArg } from '../errors.js';
import { native } from '../native.js';
import { type DType, dtypeCode } from '../torch/dtype.js';
import { Tensor } from '../torch/tensor.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';

export type TensorDict = Map<string, Tensor> | Record<string, Tensor>;
export type Metadata = Record<string, string>;

const FORMAT: Record<DType, { code: string; size: number }> = {
  float64: { code: 'F64', size: 8 }, float32: { code: 'F32', size: 4 }, float16: { code: 'F16', size: 2 },
  bfloat16: { code: 'BF16', size: 2 }, int64: { code: 'I64', size: 8 }, int32: { code: 'I32', size: 4 },
  int16: { code: 'I16', size: 2 }, int8: { code: 'I8', size: 1 }, uint8: { code: 'U8', size: 1 }, bool: { code: 'BOOL', size: 1 },
};
const DTYPE_OF = new Map(Object.entries(FORMAT).map(([dtype, f]) => [f.code, dtype as DType]));

/** The official readers refuse larger headers; so do we, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function entriesOf(op: string, tensors: TensorDict): [string, Tensor][] {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(checkOptions(op, tensors));
  for (const [name, t] of entries) {
    if (!(t instanceof Tensor)) throw invalidArg(op, `tensors['${name}']`, 'a Tensor', t);
    if (name === '__metadata__') throw invalidArg(op, 'tensor name', 'not the reserved __metadata__', name);
  }
  return entries;
}

function checkMetadata(op: string, metadata: unknown): Metadata | undefined {
  if (metadata === undefined) return undefined;
  const m = checkOptions(op, metadata as Metadata);
  for (const [k, v] of Object.entries(m)) if (typeof v !== 'string') throw invalidArg(op, `metadata['${k}']`, 'a string', v);
  return m;
}

/** The file's bytes as chunks: header, then each tensor's data. */
export function serializeChunks(tensors: TensorDict, options: { metadata?: Metadata } = {}): Uint8Array[] {
  const metadata = checkMetadata('serialize', checkOptions('serialize', options).metadata);
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const data: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entriesOf('serialize', tensors)) {
    const bytes = new Uint8Array(native.toBytes(t.handle));
    header[name] = { dtype: FORMAT[t.dtype].code, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    data.push(bytes);
    offset += bytes.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, ' ');
  json.copy(padded);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  return [length, padded, ...data];
}

/** `safetensors.torch.save`: the whole file in memory. */
export function serialize(tensors: TensorDict, options: { metadata?: Metadata } = {}): Uint8Array {
  return Buffer.concat(serializeChunks(tensors, options));
}

/** `safetensors.torch.save_file`: writes `path` atomically, the I/O off the event loop. */
export async function saveFile(tensors: TensorDict, path: string, options: { metadata?: Metadata } = {}): Promise<void> {
  await writeFileAtomic(path, serializeChunks(tensors, options));
}

export function saveFileSync(tensors: TensorDict, path: string, options: { metadata?: Metadata } = {}): void {
  writeFileAtomicSync(path, serializeChunks(tensors, options));
}

// ---- reading ----------------------------------------------------------------------------------------------------

function headerLength(bytes: Uint8Array, source: string): number {
  if (bytes.byteLength < 8) throw new FileError(source, `not a safetensors file: ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const n = Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new FileError(source, `not a safetensors file: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`);
  return Number(n);
}

function parseHeader(json: Uint8Array, source: string): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new FileError(source, `corrupt safetensors header: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new FileError(source, 'corrupt safetensors header: not a JSON object');
  return header as Record<string, unknown>;
}

function parseMetadata(value: unknown, source: string): Metadata {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw new FileError(source, '__metadata__ must be an object of strings');
  }
  return value as Metadata;
}

function parseEntry(name: string, value: unknown, source: string): Entry {
  const bad = (why: string) => new FileError(source, `tensor '${name}': ${why}`);
  const { dtype: code, shape, data_offsets: offsets } = (value ?? {}) as Record<string, unknown>;
  const dtype = DTYPE_OF.get(code as string);
  if (!dtype) throw bad(`unknown dtype ${JSON.stringify(code)} (known: ${[...DTYPE_OF.keys()].join(', ')})`);
  if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) throw bad(`bad shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    throw bad(`bad data_offsets ${JSON.stringify(offsets)}`);
  }
  const bytes = shape.reduce((a: number, b: number) => a * b, 1) * FORMAT[dtype].size;
  if (offsets[1] - offsets[0] !== bytes) throw bad(`data_offsets ${JSON.stringify(offsets)} hold ${offsets[1] - offsets[0]} bytes, shape [${shape}] of ${dtype} needs ${bytes}`);
  return { name, dtype, shape, begin: offsets[0], end: offsets[1] };
}

/** The tensors must tile the data region exactly: no gaps, no overlaps, nothing after the last. */
function checkLayout(entries: Entry[], dataBytes: number, source: string): void {
  let end = 0;
  for (const e of [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
    if (e.begin !== end) throw new FileError(source, `tensor '${e.name}' starts at byte ${e.begin} of the data, expected ${end} (${e.begin < end ? 'overlap' : 'gap'})`);
    end = e.end;
  }
  if (end !== dataBytes) {
    throw new FileError(source, end > dataBytes
      ? `truncated: the tensors need ${end} data bytes, the file has ${dataBytes}`
      : `${dataBytes - end} bytes after the last tensor`);
  }
}

interface Parsed {
  entries: Entry[];
  metadata: Metadata;
  dataStart: number;
}

function parse(bytes: Uint8Array, source: string, fileBytes = bytes.byteLength): Parsed {
  const n = headerLength(bytes, source);
  if (8 + n > fileBytes) throw new FileError(source, `truncated: the header needs ${n} bytes, the file has ${fileBytes - 8} after the length`);
  const { __metadata__: meta, ...tensors } = parseHeader(bytes.subarray(8, 8 + n), source);
  const entries = Object.entries(tensors).map(([name, v]) => parseEntry(name, v, source));
  return { entries, metadata: parseMetadata(meta, source), dataStart: 8 + n };
}

/** `safetensors.torch.load`: tensors (in file order) and metadata from a file's bytes. */
export function deserialize(bytes: Uint8Array, options: { source?: string } = {}): { tensors: Map<string, Tensor>; metadata: Metadata } {
  const source = checkOptions('deserialize', options).source ?? '<buffer>';
  const { entries, metadata, dataStart } = parse(bytes, source);
  checkLayout(entries, bytes.byteLength - dataStart, source);
  const tensors = new Map<string, Tensor>();
  try {
    for (const e of entries) {
      const data = bytes.subarray(dataStart + e.begin, dataStart + e.end);
      tensors.set(e.name, new Tensor(native.fromBytes(data, e.shape, dtypeCode('deserialize', e.dtype))));
    }
  } catch (e) {
    tensors.forEach((t) => t.dispose());   // all or nothing: no half-loaded dict, no leak
    throw e;
  }
  return { tensors, metadata };
}

function readError(path: string, e: unknown): FileError {
  return new FileError(path, `cannot read: ${(e as Error).message}`);
}

/** The file's tensors (in file order, on the CPU) and its metadata, from one read. */
export async function loadFileWithMetadata(path: string): Promise<{ tensors: Map<string, Tensor>; metadata: Metadata }> {
  return deserialize(await readFile(path).catch((e) => { throw readError(path, e); }), { source: path });
}

/** `safetensors.torch.load_file`: the file's tensors, in file order, on the CPU. */
export async function loadFile(path: string): Promise<Map<string, Tensor>> {
  return (await loadFileWithMetadata(path)).tensors;
}

export function loadFileSync(path: string): Map<string, Tensor> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw readError(path, e);
  }
  return deserialize(bytes, { source: path }).tensors;
}

/** The `__metadata__` of a file, reading only its header. */
export async function readMetadata(path: string): Promise<Metadata> {
  const file = await open(path, 'r').catch((e) => { throw readError(path, e); });
  try {
    const size = (await file.stat()).size;
    const head = new Uint8Array(Math.min(size, 8));
    await file.read(head, 0, head.byteLength, 0);
    const n = headerLength(head, path);
    const bytes = new Uint8Array(8 + Math.min(n, Math.max(size - 8, 0)));
    await file.read(bytes, 0, bytes.byteLength, 0);
    return parse(bytes, path, size).metadata;
  } finally {
    await file.close();
  }
}
