import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { safetensors, torch } from '../../lib/index.js';
import { native } from '../../lib/native.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'mmssl-safetensors-'));

/** The tensor's raw little-endian bytes, as hex: what "bit-exact" compares. */
const hex = (t: torch.Tensor) => Buffer.from(native.toBytes(t.handle)).toString('hex');

interface Described { tensors: Record<string, { dtype: string; shape: number[]; hex: string }>; metadata: Record<string, string> }

function python(...args: string[]): Described {
  return JSON.parse(execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'safetensors_reference.py'), ...args], { encoding: 'utf8' }));
}

/** One tensor of every dtype, with awkward shapes and values (NaN, -0, infinities, a non-contiguous view). */
function sample(): Map<string, torch.Tensor> {
  return torch.tidy(() => new Map([
    ['f32', torch.tensor([[1.5, -0, NaN], [Infinity, -Infinity, 3e-39]], { dtype: 'float32' })],
    ['f64', torch.randn([3, 2], { dtype: 'float64' })],
    ['f16', torch.randn([4]).to('float16')],
    ['bf16', torch.randn([2, 2]).to('bfloat16')],
    ['i64', torch.tensor([-(2 ** 53), 2 ** 53, 0])],
    ['i32', torch.tensor([-7, 7], { dtype: 'int32' })],
    ['i16', torch.tensor([-300], { dtype: 'int16' })],
    ['i8', torch.tensor([-128, 127], { dtype: 'int8' })],
    ['u8', torch.tensor([0, 255], { dtype: 'uint8' })],
    ['bool', torch.tensor([true, false])],
    ['scalar', torch.tensor(4.25, { dtype: 'float32' })],
    ['empty', torch.zeros([0, 3])],
    ['transposed', torch.arange(0, 6, 1, { dtype: 'float32' }).reshape(2, 3).t()],
  ]));
}

test.serial('round trip: every dtype, scalar, empty and non-contiguous tensors come back bit for bit, in order', async (t) => {
  const before = torch.memoryStats().tensors;
  const tensors = sample();
  const path = join(dir, 'roundtrip.safetensors');
  await safetensors.saveFile(tensors, path, { metadata: { note: 'hello', json: '{"a":1}' } });
  const back = await safetensors.loadFile(path);
  t.deepEqual([...back.keys()], [...tensors.keys()]);
  for (const [name, tensor] of tensors) {
    const loaded = back.get(name)!;
    t.is(loaded.dtype, tensor.dtype, name);
    t.deepEqual(loaded.shape, tensor.shape, name);
    t.is(hex(loaded), hex(tensor), name);
  }
  t.deepEqual(await safetensors.readMetadata(path), { note: 'hello', json: '{"a":1}' });
  const sync = safetensors.loadFileSync(path);
  t.deepEqual(sync.get('transposed')!.toArray(), [[0, 3], [1, 4], [2, 5]]);
  const { tensors: fromMemory, metadata } = safetensors.deserialize(safetensors.serialize(tensors));
  t.deepEqual(metadata, {});
  t.is(hex(fromMemory.get('f16')!), hex(tensors.get('f16')!));
  [tensors, back, sync, fromMemory].forEach((m) => m.forEach((x) => x.dispose()));
  t.is(torch.memoryStats().tensors, before);
});

test('a file we write reads bit-exactly in Python, from the format specification', async (t) => {
  const tensors = sample();
  const path = join(dir, 'ours.safetensors');
  safetensors.saveFileSync(tensors, path, { metadata: { written_by: 'mmssl' } });
  const seen = python('describe', path);
  t.deepEqual(seen.metadata, { written_by: 'mmssl' });
  for (const [name, tensor] of tensors) {
    t.deepEqual(seen.tensors[name], { dtype: tensor.dtype, shape: [...tensor.shape], hex: hex(tensor) }, name);
  }
  tensors.forEach((x) => x.dispose());
});

test('a file Python writes reads bit-exactly here', async (t) => {
  const path = join(dir, 'python.safetensors');
  const expected = python('write', path);
  const loaded = await safetensors.loadFile(path);
  t.deepEqual([...loaded.keys()].sort(), Object.keys(expected.tensors).sort());
  for (const [name, tensor] of loaded) {
    t.deepEqual({ dtype: tensor.dtype, shape: [...tensor.shape], hex: hex(tensor) }, expected.tensors[name], name);
  }
  t.deepEqual(await safetensors.readMetadata(path), expected.metadata);
  loaded.forEach((x) => x.dispose());
});

/** A valid file's bytes, and a way to rewrite its header. */
function validFile() {
  const tensors = new Map([['a', torch.ones([2, 3])], ['b', torch.zeros([4], { dtype: 'int64' })]]);
  const bytes = Buffer.from(safetensors.serialize(tensors, { metadata: { k: 'v' } }));
  tensors.forEach((x) => x.dispose());
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const data = bytes.subarray(8 + n);
  const withHeader = (h: unknown, d: Buffer = data): Buffer => {
    const json = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([length, json, d]);
  };
  return { bytes, header, withHeader };
}

test.serial('every truncation of a valid file is a FileError naming the file, never a crash or a partial dict', (t) => {
  const before = torch.memoryStats().tensors;
  const { bytes } = validFile();
  const path = join(dir, 'truncated.safetensors');
  for (let length = 0; length < bytes.length; length++) {
    writeFileSync(path, bytes.subarray(0, length));
    const error = t.throws(() => safetensors.loadFileSync(path), { code: 'ERR_MMSSL_IO' }, `length ${length}`);
    t.true(error?.message.startsWith(path), error?.message);
  }
  t.is(torch.memoryStats().tensors, before);
});

test('corrupt headers and layouts are FileErrors that say what is wrong', (t) => {
  const { header, withHeader } = validFile();
  const a = header.a as Record<string, unknown>;
  const cases: [string, Buffer, RegExp][] = [
    ['header length beyond the file', Buffer.concat([Buffer.from([200, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]), /truncated: the header needs 200/],
    ['header length over 100 MB', Buffer.from([0, 0, 0, 0, 1, 0, 0, 0, 0]), /exceeds 100000000/],
    ['not JSON', withHeader('{"a": '), /corrupt safetensors header/],
    ['not UTF-8', withHeader(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')), /corrupt safetensors header/],
    ['an array', withHeader('[]'), /not a JSON object/],
    ['unknown dtype', withHeader({ ...header, a: { ...a, dtype: 'F8' } }), /tensor 'a': unknown dtype "F8"/],
    ['bad shape', withHeader({ ...header, a: { ...a, shape: [2, -3] } }), /tensor 'a': bad shape/],
    ['offsets not matching the shape', withHeader({ ...header, a: { ...a, shape: [2, 2] } }), /tensor 'a': data_offsets \[0,24\] hold 24 bytes, shape \[2,2\] of float32 needs 16/],
    ['reversed offsets', withHeader({ ...header, a: { ...a, data_offsets: [24, 0] } }), /bad data_offsets/],
    ['overlap', withHeader({ ...header, b: { ...(header.b as object), data_offsets: [16, 48] } }), /tensor 'b' starts at byte 16 of the data, expected 24 \(overlap\)/],
    ['trailing bytes', withHeader(header, Buffer.alloc(64)), /8 bytes after the last tensor/],
    ['metadata not strings', withHeader({ ...header, __metadata__: { k: 1 } }), /__metadata__ must be an object of strings/],
  ];
  for (const [name, bytes, message] of cases) {
    const path = join(dir, `corrupt-${name.replace(/\W+/g, '-')}.safetensors`);
    writeFileSync(path, bytes);
    const error = t.throws(() => safetensors.loadFileSync(path), { code: 'ERR_MMSSL_IO' }, name);
    t.regex(error?.message ?? '', message, name);
    t.true(error?.message.includes(path), name);
  }
  t.throws(() => safetensors.loadFileSync(join(dir, 'missing.safetensors')), { code: 'ERR_MMSSL_IO', message: /missing\.safetensors: cannot read: ENOENT/ });
  t.throws(() => safetensors.loadFileSync(dir), { code: 'ERR_MMSSL_IO', message: /EISDIR/ });
});

test('flipping any header byte never crashes: the file loads or is a FileError', (t) => {
  const { bytes } = validFile();
  const n = Number(bytes.readBigUInt64LE(0));
  for (let i = 0; i < 8 + n; i++) {
    const copy = Buffer.from(bytes);
    copy[i] ^= 0x5a;
    try {
      safetensors.deserialize(copy).tensors.forEach((x) => x.dispose());
    } catch (e) {
      t.is((e as { code?: string }).code, 'ERR_MMSSL_IO', `byte ${i}: ${(e as Error).message}`);
    }
  }
  t.pass();
});

test('bad arguments to the writers say which', async (t) => {
  const x = torch.ones([1]);
  t.throws(() => safetensors.serialize({ a: 3 as never }), { code: 'ERR_MMSSL_ARG', message: /tensors\['a'\] must be a Tensor/ });
  t.throws(() => safetensors.serialize({ __metadata__: x }), { code: 'ERR_MMSSL_ARG', message: /reserved __metadata__/ });
  t.throws(() => safetensors.serialize({ a: x }, { metadata: { n: 1 as never } }), { code: 'ERR_MMSSL_ARG', message: /metadata\['n'\] must be a string/ });
  await t.throwsAsync(safetensors.saveFile({ a: x }, join(dir, 'no-such-dir', 'f.safetensors')), { code: 'ERR_MMSSL_IO', message: /cannot write/ });
  x.dispose();
});

test('writes are atomic: the old file stays until the new one is complete, stale temporaries are swept', async (t) => {
  const path = join(dir, 'atomic.safetensors');
  const x = torch.ones([3]);
  await safetensors.saveFile({ x }, path);
  const stale = `${path}.tmp-999999999-deadbeef`;   // a writer that no longer exists (no such pid)
  writeFileSync(stale, 'partial');
  const mine = `${path}.tmp-${process.pid}-0000`;    // this process's own temporaries are never swept
  writeFileSync(mine, 'partial');
  const old = readFileSync(path);
  await safetensors.saveFile({ x, y: x }, path);
  t.false(existsSync(stale));
  t.true(existsSync(mine));
  t.notDeepEqual(readFileSync(path), old);
  t.deepEqual(readdirSync(dir).filter((f) => f.startsWith('atomic.safetensors.tmp-')), [`atomic.safetensors.tmp-${process.pid}-0000`]);
  x.dispose();
});
