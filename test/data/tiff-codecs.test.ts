// The block codecs decoded here (lib/data/formats/tiff/codecs.ts) against reference encoders written from the
// specifications: LZW as TIFF 6 writes it (MSB-first codes, the width growing one code early; GDAL's LZW files in
// geotiff-matrix.test.ts check it against libtiff) and as TIFF 5 did (LSB-first, no early change: libtiff's
// "compat" decoding, which it tells apart by the first bytes 00 01), and PackBits. Random data of every length class,
// truncated and garbage inputs: the output never exceeds the block's size and bad data is a BlockError.
import test from 'ava';
import { execFileSync } from 'node:child_process';

import { BlockError, blockDecoder, lzwDecode, packBitsDecode } from '../../lib/data/formats/tiff/codecs.js';
import { type Layout, SampleFormat } from '../../lib/data/formats/tiff/layout.js';

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

// JPEG and WebP blocks go to libjpeg-turbo and libwebp in the addon. Streams Pillow writes (baseline 4:2:0,
// progressive, greyscale; lossy and lossless RGBA) decode within 1 of Pillow's own decoding, then damaged copies:
// each decodes to the block's size or is a BlockError, never a crash (a crash here would end the test process).
const PILLOW_BLOCKS = `
import base64, io, json, sys
from PIL import Image
img = Image.frombytes('RGB', (40, 24), bytes((x * 7 + y * 3 + c * 50) % 256 for y in range(24) for x in range(40) for c in range(3)))
out = {}
for name, im, fmt, options in [
    ('jpeg_420', img, 'JPEG', {'quality': 85, 'subsampling': 2}),
    ('jpeg_progressive', img, 'JPEG', {'quality': 85, 'progressive': True}),
    ('jpeg_grey', img.convert('L'), 'JPEG', {'quality': 90}),
    ('webp_lossy', img, 'WEBP', {'quality': 80}),
    ('webp_lossless_rgba', img.convert('RGBA'), 'WEBP', {'lossless': True}),
]:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    decoded = Image.open(io.BytesIO(buf.getvalue())).convert(im.mode)
    out[name] = {'bytes': base64.b64encode(buf.getvalue()).decode(), 'pixels': base64.b64encode(decoded.tobytes()).decode()}
json.dump(out, sys.stdout)
`;

test('JPEG and WebP blocks decode as their libraries do; damaged ones are BlockErrors, never a crash', async (t) => {
  const streams: Record<string, { bytes: string; pixels: string }> = JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', PILLOW_BLOCKS], { encoding: 'utf8' }),
  );
  const names = Object.keys(streams);
  t.is(names.length, 5);
  let damaged = 0,
    refused = 0;
  for (const name of names) {
    const channels = name.includes('grey') ? 1 : name.includes('rgba') ? 4 : 3;
    const layout = blockLayout(name.startsWith('jpeg') ? 7 : 50001, channels);
    const decode = await blockDecoder(layout, {});
    const stream = Buffer.from(streams[name].bytes, 'base64'),
      pillow = Buffer.from(streams[name].pixels, 'base64');
    const size = 40 * 24 * channels;
    const pixels = await decode(stream, size);
    t.is(pixels.length, size, name);
    // Pillow decodes with Debian's libjpeg-turbo and libwebp too.
    t.true(
      pixels.every((v, i) => Math.abs(v - pillow[i]) <= 1),
      `${name}: within 1 of Pillow's decoding`,
    );
    for (let k = 0; k < 300; k++) {
      const copy = Uint8Array.from(stream);
      if (k < 100) copy[(k * 7919) % copy.length] ^= 1 << (k % 8);
      else if (k < 200) copy.fill(k, (k * 31) % copy.length, ((k * 31) % copy.length) + 8);
      const input = k < 200 ? copy : copy.subarray(0, Math.floor((copy.length * (k - 200)) / 100));
      damaged++;
      try {
        t.is((await decode(input, size)).length, size);
      } catch (e) {
        if (!(e instanceof BlockError)) throw e;
        refused++;
      }
    }
  }
  t.true(refused > damaged / 10, `${refused} of ${damaged} damaged blocks refused`);
  t.log(`${damaged} damaged JPEG and WebP blocks: ${refused} refused, the others decoded to their size`);
});

function blockLayout(compression: number, samples: number): Layout {
  return {
    ...{ width: 40, height: 24, blockWidth: 40, blockHeight: 24, blocksAcross: 1, blocksDown: 1 },
    ...{ samples, bits: 8, format: SampleFormat.Unsigned, littleEndian: true, planar: false, tiled: true },
    ...{ compression, predictor: 1, photometric: samples === 1 ? 1 : 2, ycbcr: compression === 7 && samples === 3 },
  };
}
