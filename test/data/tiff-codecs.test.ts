// The block codecs decoded here (lib/data/formats/tiff/codecs.ts) against reference encoders written from the
// specifications: LZW as TIFF 6 writes it (MSB-first codes, the width growing one code early; GDAL's LZW files in
// geotiff-matrix.test.ts check it against libtiff) and as TIFF 5 did (LSB-first, no early change: libtiff's
// "compat" decoding, which it tells apart by the first bytes 00 01), and PackBits. Random data of every length class,
// truncated and garbage inputs: the output never exceeds the block's size and bad data is a BlockError.
import test from 'ava';

import { BlockError, lzwDecode, packBitsDecode } from '../../lib/data/formats/tiff/codecs.js';

function lzwEncode(data: Uint8Array, oldStyle: boolean): Uint8Array {
  const out: number[] = [];
  let acc = 0,
    held = 0,
    width = 9;
  const put = (code: number) => {
    if (oldStyle) {
      acc += code * 2 ** held;
      held += width;
      while (held >= 8) {
        out.push(acc % 256);
        acc = Math.floor(acc / 256);
        held -= 8;
      }
    } else {
      acc = acc * 2 ** width + code;
      held += width;
      while (held >= 8) {
        out.push(Math.floor(acc / 2 ** (held - 8)) % 256);
        held -= 8;
        acc %= 2 ** held;
      }
    }
  };
  const table = new Map<number, number>();
  let next = 258,
    w = -1;
  put(256);
  const grow = () => {
    // The encoder is one entry ahead of the decoder: it grows the width one code earlier than the decoder does.
    if (next + (oldStyle ? 0 : 1) > 1 << width && width < 12) width++;
  };
  for (const b of data) {
    if (w < 0) {
      w = b;
      continue;
    }
    const key = w * 256 + b;
    const code = table.get(key);
    if (code !== undefined) {
      w = code;
      continue;
    }
    put(w);
    table.set(key, next++);
    grow();
    if (next >= 4093) {
      put(256);
      table.clear();
      next = 258;
      width = 9;
    }
    w = b;
  }
  if (w >= 0) put(w);
  next++;
  grow();
  put(257);
  if (held > 0) out.push(oldStyle ? acc % 256 : (acc * 2 ** (8 - held)) % 256);
  return new Uint8Array(out);
}

function samples(n: number, seed: number): Uint8Array {
  let s = seed;
  const out = new Uint8Array(n);
  // Runs and noise, so that codes of every width and table resets all occur.
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out[i] = s % 7 === 0 ? s % 256 : i > 0 ? out[i - 1] : 0;
  }
  return out;
}

const LENGTHS = [0, 1, 2, 255, 256, 511, 512, 1000, 4096, 20_000, 100_000];

for (const oldStyle of [false, true]) {
  const name = oldStyle ? 'old-style (TIFF 5) LZW' : 'LZW';
  test(`${name} decodes what its encoder writes, at ${LENGTHS.length} lengths`, (t) => {
    t.true(LENGTHS.length > 0);
    for (const n of LENGTHS) {
      const data = samples(n, n + 1);
      const encoded = lzwEncode(data, oldStyle);
      if (n > 0) t.is(encoded[0] === 0 && (encoded[1] & 1) === 1, oldStyle, `${n}: the first bytes tell the style`);
      t.deepEqual(lzwDecode(encoded, n), data, `${n} bytes`);
    }
  });
  test(`${name}: the output stops at the block's size, however much the data hold`, (t) => {
    const data = samples(50_000, 7);
    const encoded = lzwEncode(data, oldStyle);
    t.deepEqual(lzwDecode(encoded, 1000), data.subarray(0, 1000));
    t.is(lzwDecode(encoded, 100_000).length, 100_000, 'a short stream leaves the rest zero, as libtiff does');
  });
}

test('LZW data that are not LZW are a BlockError or a block of the declared size, never more', (t) => {
  let s = 3;
  for (let k = 0; k < 200; k++) {
    const garbage = new Uint8Array(1 + (k % 64)).map(() => (s = (s * 1103515245 + 12345) % 2 ** 31) % 256);
    try {
      t.is(lzwDecode(garbage, 500).length, 500);
    } catch (e) {
      t.true(e instanceof BlockError, String(e));
    }
  }
});

function packBitsEncode(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < data.length;) {
    let run = 1;
    while (i + run < data.length && run < 128 && data[i + run] === data[i]) run++;
    if (run > 1) {
      out.push(257 - run, data[i]);
      i += run;
      continue;
    }
    let literal = 1;
    while (i + literal < data.length && literal < 128 && data[i + literal] !== data[i + literal - 1]) literal++;
    out.push(literal - 1, ...data.subarray(i, i + literal));
    i += literal;
  }
  return new Uint8Array(out);
}

test('PackBits decodes what its encoder writes, and stops at the block size', (t) => {
  for (const n of LENGTHS) {
    const data = samples(n, n + 5);
    t.deepEqual(packBitsDecode(packBitsEncode(data), n), data, `${n} bytes`);
  }
  const data = samples(5000, 1);
  t.deepEqual(packBitsDecode(packBitsEncode(data), 100), data.subarray(0, 100));
  t.is(packBitsDecode(new Uint8Array([0x80, 0x80, 5]), 10).length, 10, '-128 is a no-op; short data leave zeros');
});
