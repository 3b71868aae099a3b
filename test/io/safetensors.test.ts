import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { io, torch } from '../../lib/index.js';

const { safetensors } = io;
import { native } from '../../lib/native.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'mmssl-safetensors-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** The tensor's raw little-endian bytes, as hex: what "bit-exact" compares. */
const hex = (t: torch.Tensor) => Buffer.from(native.toBytes(t.handle)).toString('hex');

interface Described {
  order: string[];
  tensors: Record<string, { dtype: string; shape: number[]; hex: string }>;
  metadata: Record<string, string>;
}

function python(...args: string[]): Described {
  return JSON.parse(
    execFileSync('/usr/bin/python3', [join(root, 'test', 'fixtures', 'safetensors_reference.py'), ...args], {
      encoding: 'utf8',
    }),
  );
}

/** An 8-byte little-endian length, as the format's first field. */
function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/**
 * One tensor of every dtype, with awkward shapes, values (NaN, -0, infinities, a subnormal) and names (integer-like,
 * '__proto__', non-ASCII), and views that are not contiguous: transposed, expanded (stride 0), offset into storage.
 */
function sample(): Map<string, torch.Tensor> {
  return torch.tidy(
    () =>
      new Map([
        [
          'f32',
          torch.tensor(
            [
              [1.5, -0, NaN],
              [Infinity, -Infinity, 3e-39],
            ],
            { dtype: 'float32' },
          ),
        ],
        ['f64', torch.randn([3, 2], { dtype: 'float64' })],
        ['f16', torch.randn([4]).to('float16')],
        ['bf16', torch.randn([2, 2]).to('bfloat16')],
        ['i64', torch.tensor([-(2 ** 53), 2 ** 53, 0])],
        ['i32', torch.tensor([-7, 7], { dtype: 'int32' })],
        ['i16', torch.tensor([-300], { dtype: 'int16' })],
        ['i8', torch.tensor([-128, 127], { dtype: 'int8' })],
        ['u8', torch.tensor([0, 255], { dtype: 'uint8' })],
        ['bool', torch.tensor([true, false, true])],
        ['scalar', torch.tensor(4.25, { dtype: 'float32' })],
        ['empty', torch.zeros([0, 3])],
        ['7', torch.arange(0, 6, 1, { dtype: 'float32' }).reshape(2, 3).t()],
        ['__proto__', torch.tensor([1, 2], { dtype: 'int16' }).expand(3, 2)],
        ['bänder', torch.arange(0, 10, 1, { dtype: 'float64' }).narrow(0, 3, 4)],
      ]),
  );
}

/**
 * The order the Rust crate writes `sample()` in, by hand: dtypes by descending alignment as its `Dtype` enum lists
 * them (I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL), then names by UTF-8 bytes.
 */
const SAMPLE_ORDER = [
  'i64',
  'bänder',
  'f64',
  '7',
  'empty',
  'f32',
  'scalar',
  'i32',
  'bf16',
  'f16',
  '__proto__',
  'i16',
  'i8',
  'u8',
  'bool',
];

test.serial(
  'round trip: every dtype, scalars, empty and non-contiguous tensors come back bit for bit, in file order',
  async (t) => {
    const before = torch.memoryStats().tensors;
    const tensors = sample();
    const path = join(dir, 'roundtrip.safetensors');
    await safetensors.saveFile(tensors, path, { metadata: { note: 'hello', json: '{"a":1}' } });
    const back = await safetensors.loadFile(path);
    t.deepEqual([...back.keys()], SAMPLE_ORDER);
    for (const [name, tensor] of tensors) {
      const loaded = back.get(name)!;
      t.is(loaded.dtype, tensor.dtype, name);
      t.deepEqual(loaded.shape, tensor.shape, name);
      t.is(hex(loaded), hex(tensor), name);
    }
    t.deepEqual(back.get('7')!.toArray(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    t.deepEqual(back.get('__proto__')!.toArray(), [
      [1, 2],
      [1, 2],
      [1, 2],
    ]);
    t.deepEqual(back.get('bänder')!.toArray(), [3, 4, 5, 6]);
    t.deepEqual(await safetensors.readMetadata(path), { note: 'hello', json: '{"a":1}' });
    const sync = safetensors.loadFileSync(path, { device: 'cpu' });
    const fromMemory = safetensors.deserialize(safetensors.serialize(tensors));
    t.deepEqual([...sync.keys()], SAMPLE_ORDER);
    for (const [name, tensor] of tensors) t.is(hex(fromMemory.get(name)!), hex(tensor), name);
    [tensors, back, sync, fromMemory].forEach((m) => m.forEach((x) => x.dispose()));
    t.is(torch.memoryStats().tensors, before);
  },
);

test("the bytes are the Rust crate's: its own test vectors, header padding and aligned data", (t) => {
  // safetensors/src/tensor.rs, test_serialization, test_serialization_forced_alignement and test_empty
  const floats = Buffer.from(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
  const range = (...shape: number[]) => torch.tidy(() => torch.arange(0, 6, 1, { dtype: 'float32' }).reshape(shape));
  const vectors: [Record<string, torch.Tensor>, Record<string, string> | undefined, Buffer][] = [
    [
      { 'attn.0': range(1, 2, 3) },
      undefined,
      Buffer.concat([u64(64), Buffer.from('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'), floats]),
    ],
    [
      { attn0: range(1, 1, 2, 3) },
      undefined,
      Buffer.concat([
        u64(72),
        Buffer.from('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '),
        floats,
      ]),
    ],
    [{}, undefined, Buffer.concat([u64(8), Buffer.from('{}      ')])],
    [{}, { framework: 'pt' }, Buffer.concat([u64(40), Buffer.from('{"__metadata__":{"framework":"pt"}}     ')])],
  ];
  for (const [tensors, metadata, expected] of vectors) {
    t.deepEqual(
      Buffer.from(safetensors.serialize(tensors, { metadata })),
      expected,
      expected.toString('latin1', 8, 40),
    );
    Object.values(tensors).forEach((x) => x.dispose());
  }
  const tensors = sample();
  const bytes = Buffer.from(safetensors.serialize(tensors));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + n));
  t.is(n % 8, 0);
  t.regex(bytes.toString('utf8', 8, 8 + n), /^\{.*\} *$/);
  const size: Record<string, number> = {
    I64: 8,
    F64: 8,
    F32: 4,
    I32: 4,
    BF16: 2,
    F16: 2,
    I16: 2,
    I8: 1,
    U8: 1,
    BOOL: 1,
  };
  for (const name of SAMPLE_ORDER) {
    const {
      dtype,
      data_offsets: [begin],
    } = header[name];
    t.is((8 + n + begin) % size[dtype], 0, `${name} (${dtype}) starts at a multiple of its element size`);
  }
  tensors.forEach((x) => x.dispose());
});

test('a file we write reads bit-exactly in Python, and Python writes the same bytes back', async (t) => {
  const tensors = sample();
  const path = join(dir, 'ours.safetensors');
  safetensors.saveFileSync(tensors, path, { metadata: { written_by: 'mmssl', ключ: 'значение' } });
  const seen = python('describe', path);
  t.deepEqual(seen.metadata, { written_by: 'mmssl', ключ: 'значение' });
  t.deepEqual(seen.order, SAMPLE_ORDER);
  for (const [name, tensor] of tensors) {
    t.deepEqual(seen.tensors[name], { dtype: tensor.dtype, shape: [...tensor.shape], hex: hex(tensor) }, name);
  }
  const copy = join(dir, 'ours-copied-by-python.safetensors');
  python('copy', path, copy);
  t.deepEqual(readFileSync(copy), readFileSync(path));
  tensors.forEach((x) => x.dispose());
});

test('a file Python writes reads bit-exactly here, and we write the same bytes back', async (t) => {
  const path = join(dir, 'python.safetensors');
  const expected = python('write', path);
  const loaded = await safetensors.loadFile(path);
  t.deepEqual([...loaded.keys()], expected.order);
  t.deepEqual([...loaded.keys()].sort(), Object.keys(expected.tensors).sort());
  for (const [name, tensor] of loaded) {
    t.deepEqual({ dtype: tensor.dtype, shape: [...tensor.shape], hex: hex(tensor) }, expected.tensors[name], name);
  }
  const metadata = await safetensors.readMetadata(path);
  t.deepEqual(metadata, { written_by: 'python' });
  t.deepEqual(Buffer.from(safetensors.serialize(loaded, { metadata })), readFileSync(path));
  loaded.forEach((x) => x.dispose());
});

/** A valid file's bytes, its header, and a way to make a file with another header. */
function validFile() {
  const tensors = new Map([
    ['a', torch.ones([2, 3])],
    ['b', torch.zeros([4], { dtype: 'int64' })],
  ]);
  const bytes = Buffer.from(safetensors.serialize(tensors, { metadata: { k: 'v' } }));
  tensors.forEach((x) => x.dispose());
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + n));
  const data = bytes.subarray(8 + n);
  const withHeader = (h: unknown, d: Buffer = data): Buffer => {
    const json = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h), 'latin1');
    return Buffer.concat([u64(json.length), json, d]);
  };
  return { bytes, n, header, withHeader };
}

test.serial(
  'every truncation of a valid file is a FileError naming the file and the problem, with nothing leaked',
  (t) => {
    const before = torch.memoryStats().tensors;
    const { bytes, n } = validFile();
    const path = join(dir, 'truncated.safetensors');
    for (let length = 0; length < bytes.length; length++) {
      writeFileSync(path, bytes.subarray(0, length));
      const problem =
        length < 8
          ? /shorter than the 8-byte header length/
          : length < 8 + n
            ? /truncated: the header needs/
            : /truncated: the tensors need/;
      const error = t.throws(
        () => safetensors.loadFileSync(path),
        { code: 'ERR_MMSSL_IO', message: problem },
        `length ${length}`,
      );
      t.true(error?.message.startsWith(`${path}: `), error?.message);
    }
    t.is(torch.memoryStats().tensors, before);
  },
);

test('corrupt headers and layouts are FileErrors that say what is wrong, from every reader', async (t) => {
  const { header, withHeader } = validFile();
  const [a, b] = [header.a as Record<string, unknown>, header.b as Record<string, unknown>];
  const cases: [string, Buffer, RegExp][] = [
    ['shorter than 8 bytes', Buffer.from([1, 2, 3]), /3 bytes, shorter than the 8-byte header length/],
    [
      'header length beyond the file',
      Buffer.concat([u64(200), Buffer.from('{}')]),
      /truncated: the header needs 200 bytes, the file has 2/,
    ],
    ['header length over 100 MB', u64(100_000_001), /header length 100000001 exceeds 100000000/],
    ['header length over 2^64 / 2', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x80]), /exceeds 100000000/],
    ['not JSON', withHeader('{"a": '), /corrupt safetensors header/],
    ['not UTF-8', withHeader('{"\xff":1}'), /corrupt safetensors header: .*(encoded|invalid)/i],
    [
      'not starting with {',
      withHeader(' {}'),
      /corrupt safetensors header: not a JSON object \(it does not start with '\{'\)/,
    ],
    ['an array', withHeader('[]'), /corrupt safetensors header: not a JSON object/],
    [
      'an entry that is not an object',
      withHeader({ ...header, a: [1] }),
      /tensor 'a': must be an object \{dtype, shape, data_offsets\}/,
    ],
    ['unknown dtype', withHeader({ ...header, a: { ...a, dtype: 'F8' } }), /tensor 'a': unknown dtype "F8"/],
    ['bad shape', withHeader({ ...header, a: { ...a, shape: [2, -3] } }), /tensor 'a': bad shape \[2,-3\]/],
    ['fractional shape', withHeader({ ...header, a: { ...a, shape: [1.5, 4] } }), /tensor 'a': bad shape/],
    [
      'offsets not a pair',
      withHeader({ ...header, a: { ...a, data_offsets: [0] } }),
      /tensor 'a': bad data_offsets \[0\]/,
    ],
    [
      'reversed offsets',
      withHeader({ ...header, a: { ...a, data_offsets: [56, 32] } }),
      /tensor 'a': bad data_offsets \[56,32\]/,
    ],
    [
      'byte count not matching the shape',
      withHeader({ ...header, a: { ...a, shape: [2, 2] } }),
      /tensor 'a': data_offsets \[32,56\] hold 24 bytes, shape \[2,2\] of float32 needs 16/,
    ],
    [
      'overlap',
      withHeader({ ...header, a: { ...a, data_offsets: [8, 32] } }),
      /tensor 'a' starts at byte 8 of the data, expected 32 \(overlap\)/,
    ],
    [
      'a hole between tensors',
      withHeader({ ...header, a: { ...a, data_offsets: [40, 64] } }, Buffer.alloc(64)),
      /tensor 'a' starts at byte 40 of the data, expected 32 \(gap\)/,
    ],
    ['trailing bytes', withHeader(header, Buffer.alloc(64)), /8 bytes after the last tensor/],
    [
      'metadata not strings',
      withHeader({ ...header, __metadata__: { k: 1 } }),
      /__metadata__ must be an object of strings/,
    ],
    [
      'metadata not an object',
      withHeader({ ...header, __metadata__: 'v' }),
      /__metadata__ must be an object of strings/,
    ],
  ];
  t.deepEqual(b.data_offsets, [0, 32], 'the int64 tensor comes first (alignment 8)');
  for (const [name, bytes, message] of cases) {
    const path = join(dir, `corrupt-${name.replace(/\W+/g, '-')}.safetensors`);
    writeFileSync(path, bytes);
    for (const [reader, read] of [
      ['loadFileSync', () => safetensors.loadFileSync(path)],
      ['deserialize', () => safetensors.deserialize(bytes)],
    ] as const) {
      const error = t.throws(read, { code: 'ERR_MMSSL_IO', message }, `${name} (${reader})`);
      t.true(error?.message.startsWith(reader === 'deserialize' ? '<buffer>: ' : `${path}: `), error?.message);
    }
    await t.throwsAsync(safetensors.loadFile(path), { code: 'ERR_MMSSL_IO', message }, `${name} (loadFile)`);
    await t.throwsAsync(safetensors.readMetadata(path), { code: 'ERR_MMSSL_IO', message }, `${name} (readMetadata)`);
  }
  const missing = join(dir, 'missing.safetensors');
  t.throws(() => safetensors.loadFileSync(missing), {
    code: 'ERR_MMSSL_IO',
    message: `${missing}: cannot read: ENOENT: no such file or directory, open '${missing}'`,
  });
  await t.throwsAsync(safetensors.loadFile(missing), {
    code: 'ERR_MMSSL_IO',
    message: /missing\.safetensors: cannot read: ENOENT/,
  });
  await t.throwsAsync(safetensors.readMetadata(missing), {
    code: 'ERR_MMSSL_IO',
    message: /missing\.safetensors: cannot read: ENOENT/,
  });
  t.throws(() => safetensors.loadFileSync(dir), { code: 'ERR_MMSSL_IO', message: /EISDIR/ });
});

test('flipping any header byte never crashes: the file loads whole or is a FileError, with nothing leaked', (t) => {
  const before = torch.memoryStats().tensors;
  const { bytes, n } = validFile();
  const outcomes = { loaded: 0, refused: 0 };
  for (let i = 0; i < 8 + n; i++) {
    for (const mask of [0x01, 0x5a, 0xff]) {
      const copy = Buffer.from(bytes);
      copy[i] ^= mask;
      try {
        const loaded = safetensors.deserialize(copy);
        t.deepEqual(
          [...loaded.values()].map((x) => x.numel()).sort(),
          [4, 6],
          `byte ${i} ^ ${mask} loaded something else`,
        );
        loaded.forEach((x) => x.dispose());
        outcomes.loaded += 1;
      } catch (e) {
        t.is((e as { code?: string }).code, 'ERR_MMSSL_IO', `byte ${i} ^ ${mask}: ${(e as Error).message}`);
        outcomes.refused += 1;
      }
    }
  }
  t.log(outcomes);
  t.true(outcomes.loaded > 0 && outcomes.refused > outcomes.loaded, JSON.stringify(outcomes));
  t.is(torch.memoryStats().tensors, before);
});

test('bad arguments say which', async (t) => {
  const x = torch.ones([1]);
  t.throws(() => safetensors.serialize({ a: 3 as never }), {
    code: 'ERR_MMSSL_ARG',
    message: /tensors\['a'\] must be a Tensor/,
  });
  t.throws(() => safetensors.serialize({ __metadata__: x }), {
    code: 'ERR_MMSSL_ARG',
    message: /reserved __metadata__/,
  });
  t.throws(() => safetensors.serialize({ a: x }, { metadata: { n: 1 as never } }), {
    code: 'ERR_MMSSL_ARG',
    message: /metadata\['n'\] must be a string/,
  });
  t.throws(() => safetensors.serialize(null as never), {
    code: 'ERR_MMSSL_ARG',
    message: /tensors must be a Map or an object of tensors/,
  });
  t.throws(() => safetensors.saveFileSync({ a: x }, 42 as never), {
    code: 'ERR_MMSSL_ARG',
    message: /path must be a file path/,
  });
  t.throws(() => safetensors.deserialize('abc' as never), {
    code: 'ERR_MMSSL_ARG',
    message: /bytes must be a Uint8Array/,
  });
  t.throws(() => safetensors.loadFileSync(join(dir, 'x'), { device: 'gpu' as never }), {
    code: 'ERR_MMSSL_ARG',
    message: /device must be/,
  });
  await t.throwsAsync(safetensors.loadFile(join(dir, 'x'), { device: 'tpu' as never }), {
    code: 'ERR_MMSSL_ARG',
    message: /device must be/,
  });
  x.dispose();
});
