// decodeNpy and encodeNpy against files NumPy wrote (test/fixtures/data/make_npy.py): values, layouts, header
// versions, np.save's exact bytes, and broken files.
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeNpy, encodeNpy, type NpyData, type NpyDtype } from '../../lib/data/formats/npy.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'data', 'npy');

interface Expected {
  arrays: { file: string; dtype: NpyDtype; shape: number[]; sha256: string; saved: string }[];
  broken: Record<string, string>;
}
const expected: Expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));

const sha256 = (data: NpyData) =>
  createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');
const decodeFixture = (file: string) => decodeNpy(readFileSync(join(dir, file)), join(dir, file));

for (const { file, dtype, shape, sha256: values } of expected.arrays) {
  test(`${file} decodes to NumPy's dtype, shape and values (C order)`, (t) => {
    const array = decodeFixture(file);
    t.is(array.dtype, dtype);
    t.deepEqual(array.shape, shape);
    t.is(sha256(array.data), values);
  });
}

test('the fixtures cover every dtype, big-endian, Fortran order, versions 2.0 and 3.0, 0-d and 1-d shapes', (t) => {
  const byFile = new Map(expected.arrays.map((a) => [a.file, a]));
  for (const dtype of ['bool', 'uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'])
    t.true(byFile.has(`${dtype}.npy`), dtype);
  for (const file of [
    'big-endian-float64.npy',
    'fortran-float32.npy',
    'fortran-big-endian-int16.npy',
    'version-2.npy',
    'version-3.npy',
    'version-2-fortran.npy',
  ]) {
    t.true(byFile.has(file), file);
  }
  t.deepEqual(byFile.get('scalar.npy')?.shape, []);
  t.deepEqual(byFile.get('vector.npy')?.shape, [5]);
  t.deepEqual(
    Array.from(decodeFixture('fortran-float32.npy').data.subarray(0, 5)),
    [0, 1, 2, 3, 4],
    'C order, whatever order the file had',
  );
});

test("encodeNpy writes np.save's bytes for the same values, header padding included", (t) => {
  for (const { file, saved } of expected.arrays) {
    t.deepEqual(Buffer.from(encodeNpy(decodeFixture(file))), readFileSync(join(dir, saved)), file);
  }
});

test('decodes from a view into a larger buffer (as Node hands out small files) and owns its data', (t) => {
  const bytes = readFileSync(join(dir, 'float64.npy'));
  const view = Buffer.concat([Buffer.alloc(3), bytes, Buffer.alloc(5)]).subarray(3, 3 + bytes.length);
  const array = decodeNpy(view, 'view.npy');
  t.is(sha256(array.data), expected.arrays.find((a) => a.file === 'float64.npy')!.sha256);
  t.is(array.data.byteOffset, 0);
  t.is(array.data.byteLength, array.data.buffer.byteLength);
});

const BROKEN: Record<string, RegExp> = {
  'truncated-data.npy': /shape \(3, 4\) of '<f4' needs 48 bytes of data, the file has 43$/,
  'extra-data.npy': /needs 48 bytes of data, the file has 52$/,
  'truncated-header.npy': /header of \d+ bytes runs past the end of the file/,
  'truncated-version-2.npy': /the file ends inside the 4-byte header length \(11 bytes\)/,
  'zero-bytes.npy': /no \\x93NUMPY magic/,
  'no-magic.npy': /no \\x93NUMPY magic/,
  'version-4.npy': /format version 4\.0 \(1\.0 to 3\.0 are read\)/,
  'int64.npy': /dtype '<i8'/,
  'complex.npy': /dtype '<c8'/,
  'structured.npy': /structured dtype/,
  'no-shape.npy': /lacks descr, fortran_order or shape/,
  'bad-shape.npy': /shape \(2, -1\)/,
};

test('broken files are FileErrors naming the file and what is wrong', (t) => {
  t.deepEqual(Object.keys(BROKEN).sort(), Object.keys(expected.broken).sort(), 'every broken fixture is checked');
  for (const [file, message] of Object.entries(BROKEN)) {
    const path = join(dir, file);
    const error = t.throws(
      () => decodeFixture(file),
      { code: 'ERR_MMSSL_IO', message },
      `${file}: ${expected.broken[file]}`,
    );
    t.true(error?.message.startsWith(`${path}: not a readable .npy file: `), error?.message);
  }
});
