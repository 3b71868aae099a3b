/**
 * PyTorch's `torch.save` files (`.pt`, `.pth`, `.ckpt`): the zip archive PyTorch writes since 1.6, read and written
 * in TypeScript. An archive holds `<name>/data.pkl` (the object, pickled, its storages as persistent ids), one record
 * `<name>/data/<key>` of raw little-endian bytes per storage, and `<name>/version`. Reading unpickles with the
 * restricted unpickler (lib/io/pickle.ts: nothing runs, a global outside the state-dict vocabulary is refused by
 * name), then reads each storage record on its own, checked against the size its tensors need, and builds each
 * tensor from its storage, offset, size and stride (tensors sharing a storage each get their values). Writing gives
 * what `torch.load(path, weights_only=True)` reads: an OrderedDict of tensors, `torch._utils._rebuild_tensor_v2`
 * calls, one storage per tensor.
 */
import { open, type FileHandle } from 'node:fs/promises';

import { FileError } from '../errors.js';
import { native } from '../native.js';
import { type DType, dtypeCode } from '../torch/dtype.js';
import { tidy } from '../torch/scope.js';
import { Tensor } from '../torch/tensor.js';
import { writeFileAtomic } from './atomic.js';
import { pickle, PyCall, PyGlobal, PyPersistent, PyTuple, unpickle } from './pickle.js';
import { readZip, writeZip, type ZipEntry } from './zip.js';

/** Storage classes by dtype, as torch.save names them. */
const STORAGES: readonly [string, DType, number][] = [
  ['FloatStorage', 'float32', 4],
  ['DoubleStorage', 'float64', 8],
  ['HalfStorage', 'float16', 2],
  ['BFloat16Storage', 'bfloat16', 2],
  ['LongStorage', 'int64', 8],
  ['IntStorage', 'int32', 4],
  ['ShortStorage', 'int16', 2],
  ['CharStorage', 'int8', 1],
  ['ByteStorage', 'uint8', 1],
  ['BoolStorage', 'bool', 1],
];
const STORAGE_OF = new Map(STORAGES.map(([name, dtype, size]) => [name, { dtype, size }]));
const REBUILD_TENSOR = 'torch._utils._rebuild_tensor_v2';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';

/** What `torch.load(weights_only=True)` accepts of the globals a state dict or a Lightning checkpoint holds. */
const ALLOWED = new Set([
  'collections.OrderedDict',
  'builtins.dict',
  '_codecs.encode',
  REBUILD_TENSOR,
  REBUILD_PARAMETER,
  ...STORAGES.map(([name]) => `torch.${name}`),
]);

/** A file's top level: the state dict's tensors by key, and for checkpoints the other entries (`epoch`, ...). */
export interface TorchFile {
  tensors: Map<string, Tensor>;
  /** Top-level entries other than the state dict (a Lightning `.ckpt`'s `epoch`, `global_step`, ...), as plain values. */
  entries: Record<string, unknown>;
}

/** What a PyTorch file starts with: a zip's local header (1.6 and later), or the legacy format's pickled magic number. */
const ZIP_SIGNATURE = [0x50, 0x4b, 0x03, 0x04];
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
export const TORCH_HEAD_BYTES = LEGACY_MAGIC.length;
const startsWith = (head: Uint8Array, bytes: readonly number[]) => bytes.every((b, i) => head[i] === b);

/** Whether `head` (the first TORCH_HEAD_BYTES bytes of a file) is a `torch.save` file's, of either format. */
export function isTorchFile(head: Uint8Array): boolean {
  return startsWith(head, ZIP_SIGNATURE) || startsWith(head, LEGACY_MAGIC);
}

/** Reads the state dict of a `torch.save` file: an OrderedDict of tensors, or a checkpoint holding one (`state_dict`). */
export async function readTorchFile(path: string): Promise<TorchFile> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (e) {
    throw new FileError(path, `cannot open: ${(e as Error).message}`);
  }
  try {
    const head = new Uint8Array(TORCH_HEAD_BYTES);
    await file.read(head, 0, head.length, 0);
    if (!startsWith(head, ZIP_SIGNATURE)) {
      if (startsWith(head, LEGACY_MAGIC))
        throw new FileError(
          path,
          "PyTorch's legacy format (before 1.6), which this reader does not take: convert it in Python with torch.save(torch.load(path, weights_only=True), new_path)",
        );
      throw new FileError(path, 'not a PyTorch file (a torch.save zip archive)');
    }
    const records = await readZip(file, path);
    const pkl = [...records.keys()].find((name) => /^[^/]+\/data\.pkl$/.test(name));
    if (!pkl) throw new FileError(path, 'a zip archive without data.pkl: not a torch.save file');
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const root = unpickle(await records.get(pkl)!.read(), { allowed: ALLOWED, where: `${path} (${pkl})` });
    const storages = new StorageReader(path, prefix, records);
    try {
      return await toTorchFile(path, root, storages);
    } finally {
      storages.dispose();
    }
  } finally {
    await file.close();
  }
}

/** Each storage record read once, when the first tensor that needs it is built, as a flat tensor of its dtype. */
class StorageReader {
  readonly #loaded = new Map<string, Tensor>();
  readonly #records: Map<string, ZipEntry>;
  constructor(
    readonly path: string,
    readonly prefix: string,
    records: Map<string, ZipEntry>,
  ) {
    this.#records = records;
  }

  async storage(id: unknown): Promise<Tensor> {
    const [kind, type, key, , numel] = Array.isArray(id) ? id : [];
    const storage = type instanceof PyGlobal ? STORAGE_OF.get(type.name) : undefined;
    if (kind !== 'storage' || !storage || typeof key !== 'string' || typeof numel !== 'number' || numel < 0)
      throw new FileError(this.path, `a persistent id that is not a storage: ${describe(id)}`);
    const name = `${this.prefix}data/${key}`;
    const cached = this.#loaded.get(name);
    if (cached) return cached;
    const record = this.#records.get(name);
    if (!record) throw new FileError(this.path, `storage ${key} (${name}) is missing from the archive`);
    if (record.size !== numel * storage.size)
      throw new FileError(
        this.path,
        `storage ${key} holds ${record.size} bytes; its ${numel} ${storage.dtype} values need ${numel * storage.size}`,
      );
    const bytes = await record.read();
    const tensor = new Tensor(native.fromBytes(bytes, [numel], dtypeCode('load', storage.dtype)));
    this.#loaded.set(name, tensor);
    return tensor;
  }

  dispose(): void {
    this.#loaded.forEach((t) => t.dispose());
  }
}

async function toTorchFile(path: string, root: unknown, storages: StorageReader): Promise<TorchFile> {
  if (!(root instanceof Map)) throw new FileError(path, `holds ${describe(root)}, not a state dict or a checkpoint`);
  const nested = ['state_dict', 'model', 'model_state_dict'].find((k) => root.get(k) instanceof Map);
  const dict = nested && !isStateDict(root) ? (root.get(nested) as Map<unknown, unknown>) : root;
  const tensors = new Map<string, Tensor>();
  try {
    for (const [key, value] of dict) {
      if (typeof key !== 'string') throw new FileError(path, `a state dict key that is not a string: ${describe(key)}`);
      const tensor = await rebuild(path, key, value, storages);
      if (tensor) tensors.set(key, tensor);
    }
  } catch (e) {
    tensors.forEach((t) => t.dispose());
    throw e;
  }
  const entries =
    dict === root
      ? {}
      : Object.fromEntries([...root].filter(([k]) => k !== nested).map(([k, v]) => [String(k), plain(v)]));
  return { tensors, entries };
}

const isStateDict = (d: Map<unknown, unknown>) => [...d.values()].some((v) => v instanceof PyCall);

/** The tensor a `_rebuild_tensor_v2` (or `_rebuild_parameter`) call describes; undefined for a non-tensor entry. */
async function rebuild(
  path: string,
  key: string,
  value: unknown,
  storages: StorageReader,
): Promise<Tensor | undefined> {
  if (!(value instanceof PyCall)) return undefined; // e.g. BatchNorm's num_batches_tracked is a tensor; others are plain
  const name = value.callable.toString();
  if (name === REBUILD_PARAMETER) return rebuild(path, key, value.args[0], storages);
  if (name !== REBUILD_TENSOR) throw new FileError(path, `${key}: built by ${name}, not a tensor`);
  const [persistent, offset, size, stride] = value.args;
  if (!(persistent instanceof PyPersistent)) throw new FileError(path, `${key}: a tensor without a storage`);
  const storage = await storages.storage(persistent.id);
  const shape = intsOf(path, key, 'size', size);
  const strides = intsOf(path, key, 'stride', stride);
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || strides.length !== shape.length)
    throw new FileError(path, `${key}: an offset or strides that do not fit its size`);
  const last = shape.some((n) => n === 0)
    ? offset - 1
    : shape.reduce((end, n, i) => end + (n - 1) * strides[i], offset);
  if (last >= storage.numel())
    throw new FileError(
      path,
      `${key}: size [${shape}] and stride [${strides}] at offset ${offset} reach element ${last} of a storage of ${storage.numel()}`,
    );
  // a tensor of its own, contiguous: a view would keep the whole storage alive (and other tensors' values in it)
  return tidy(() => {
    const view = storage.asStrided(shape, strides, offset);
    return view.isContiguous() ? view.clone() : view.contiguous();
  });
}

function intsOf(path: string, key: string, what: string, value: unknown): number[] {
  if (!(value instanceof PyTuple) || !value.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0))
    throw new FileError(path, `${key}: its ${what} is not a tuple of non-negative integers`);
  return [...value] as number[];
}

/** A checkpoint's other entries as JSON-like values (tensors and calls described, not built). */
function plain(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v)]));
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof PyCall) return `<${value.callable}>`;
  if (value instanceof Set) return [...value].map(plain);
  return typeof value === 'bigint' ? value.toString() : value;
}

function describe(value: unknown): string {
  if (value instanceof PyCall) return `a call of ${value.callable}`;
  if (value instanceof Map) return 'a dict';
  return Array.isArray(value) ? 'a list' : typeof value === 'string' ? `'${value}'` : String(value);
}

// ---- writing ----------------------------------------------------------------------------------------------------

/** Writes `tensors` as `torch.save(OrderedDict)` would (atomically): `torch.load(path, weights_only=True)` reads it. */
export async function writeTorchFile(path: string, tensors: Map<string, Tensor>, archive = 'archive'): Promise<void> {
  const records: { name: string; data: Uint8Array }[] = [];
  const dict = new Map<string, PyCall>();
  let key = 0;
  for (const [name, tensor] of tensors) {
    const storage = STORAGES.find(([, dtype]) => dtype === tensor.dtype);
    if (!storage) throw new FileError(path, `${name}: dtype ${tensor.dtype} has no PyTorch storage`);
    const id = String(key++);
    const contiguous = tidy(() => tensor.cpu().contiguous());
    records.push({ name: `${archive}/data/${id}`, data: new Uint8Array(native.toBytes(contiguous.handle)) });
    const shape = contiguous.shape;
    contiguous.dispose();
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    dict.set(
      name,
      new PyCall(new PyGlobal('torch._utils', '_rebuild_tensor_v2'), [
        new PyPersistent(
          PyTuple.from(['storage', new PyGlobal('torch', storage[0]), id, 'cpu', shape.reduce((a, b) => a * b, 1)]),
        ),
        0,
        PyTuple.from(shape),
        PyTuple.from(strides),
        false,
        new PyCall(new PyGlobal('collections', 'OrderedDict'), []),
      ]),
    );
  }
  const text = (s: string) => new TextEncoder().encode(s);
  await writeFileAtomic(
    path,
    await writeZip([
      // data.pkl first: PyTorch's reader takes the archive's name from the first record
      { name: `${archive}/data.pkl`, data: pickle(dict) },
      { name: `${archive}/byteorder`, data: text('little') },
      ...records,
      { name: `${archive}/version`, data: text('3\n') },
    ]),
  );
}
