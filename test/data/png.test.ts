import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ArgumentError } from '../../lib/errors.js';
import { decodePng, encodePng } from '../../lib/data/formats/png.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'data', 'png');
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as {
  files: { file: string; width: number; height: number; channels: number; depth: number; sha256: string }[];
  refused: Record<string, string>;
};

test('grey, grey + alpha, RGB, RGBA, 16-bit and interlaced files decode to the samples Pillow reads', (t) => {
  for (const e of expected.files) {
    const path = join(dir, e.file);
    const image = decodePng(readFileSync(path), path);
    t.like(image, { width: e.width, height: e.height, channels: e.channels, depth: e.depth }, e.file);
    // (16-bit samples hashed little-endian, as the script wrote them; this machine is little-endian)
    const bytes = new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
    t.is(createHash('sha256').update(bytes).digest('hex'), e.sha256, e.file);
  }
});

test('palettes and damaged files are FileErrors naming the file and the problem', (t) => {
  for (const [file, why] of Object.entries(expected.refused)) {
    const path = join(dir, file);
    t.throws(() => decodePng(readFileSync(path), path), {
      code: 'ERR_MMSSL_IO',
      message: new RegExp(`${file}: .*(${why})`),
    });
  }
  const rgba = readFileSync(join(dir, 'rgba.png'));
  const flipped = Uint8Array.from(rgba);
  flipped[60] ^= 0xff; // inside the first IDAT
  t.throws(() => decodePng(flipped, 'x.png'), {
    code: 'ERR_MMSSL_IO',
    message: /x\.png: not a readable PNG file: chunk IDAT at byte \d+: CRC mismatch/,
  });
  t.throws(() => decodePng(new Uint8Array([1, 2, 3]), 'y.png'), {
    code: 'ERR_MMSSL_IO',
    message: /y\.png: not a readable PNG file: no PNG signature/,
  });
});

// ---- encodePng ------------------------------------------------------------------------------------------------------

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-png-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

/** Deterministic bytes: a little LCG, so failures reproduce. */
function randomBytes(n: number, seed: number): Uint8Array {
  let state = seed >>> 0;
  return Uint8Array.from({ length: n }, () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) >>> 24);
}

const PILLOW_READS = `
import sys, json, hashlib
import numpy as np
from PIL import Image
out = []
for path in sys.argv[1:]:
    img = Image.open(path)
    img.load()
    a = np.asarray(img)
    out.append({'mode': img.mode, 'size': list(img.size), 'shape': list(a.shape), 'dtype': str(a.dtype),
                'sha256': hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()})
print(json.dumps(out))
`;

test('encodePng round trip: grey, grey + alpha, RGB and RGBA of odd sizes decode to the same samples, here and in Pillow', (t) => {
  const cases = [
    { channels: 1, width: 1, height: 1, mode: 'L' },
    { channels: 1, width: 37, height: 5, mode: 'L' },
    { channels: 2, width: 13, height: 9, mode: 'LA' },
    { channels: 3, width: 3, height: 101, mode: 'RGB' },
    { channels: 3, width: 255, height: 7, mode: 'RGB' },
    { channels: 4, width: 17, height: 23, mode: 'RGBA' },
    { channels: 4, width: 129, height: 65, mode: 'RGBA' },
  ];
  const images = cases.map((c, k) => {
    const data = randomBytes(c.width * c.height * c.channels, 1000 + k);
    if (c.channels === 4) {
      // alpha kept as stored, whatever the colour: transparent pixels with colour, opaque black
      data.set([200, 100, 50, 0], 0);
      data.set([0, 0, 0, 255], 4);
    }
    return { ...c, data, path: join(scratch, `${c.mode}-${c.width}x${c.height}.png`) };
  });
  for (const image of images) {
    const bytes = encodePng(image);
    writeFileSync(image.path, bytes);
    const decoded = decodePng(bytes, image.path);
    t.like(decoded, { width: image.width, height: image.height, channels: image.channels, depth: 8 }, image.path);
    t.deepEqual(Uint8Array.from(decoded.data), image.data, image.path);
  }
  const pillow = JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', PILLOW_READS, ...images.map((i) => i.path)], { encoding: 'utf8' }),
  ) as { mode: string; size: number[]; shape: number[]; dtype: string; sha256: string }[];
  for (const [k, image] of images.entries()) {
    const p = pillow[k];
    t.is(p.mode, image.mode, image.path);
    t.deepEqual(p.size, [image.width, image.height]);
    t.deepEqual(
      p.shape,
      image.channels === 1 ? [image.height, image.width] : [image.height, image.width, image.channels],
    );
    t.is(p.dtype, 'uint8');
    t.is(p.sha256, createHash('sha256').update(image.data).digest('hex'), image.path);
  }
});

test('encodePng of constants and full-range ramps (the Sub filter wraps modulo 256)', (t) => {
  const ramp = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 4) * 131) & 255);
  const cases = [
    { width: 31, height: 11, channels: 3, data: new Uint8Array(31 * 11 * 3).fill(255) },
    { width: 5, height: 3, channels: 1, data: new Uint8Array(15) },
    { width: 256, height: 3, channels: 3, data: ramp(256 * 3 * 3) },
    { width: 256, height: 3, channels: 4, data: ramp(256 * 3 * 4).reverse() },
    { width: 1, height: 300, channels: 2, data: ramp(600) },
  ];
  for (const image of cases) {
    const decoded = decodePng(encodePng(image), 'x.png');
    t.like(decoded, { width: image.width, height: image.height, channels: image.channels, depth: 8 });
    t.deepEqual(Uint8Array.from(decoded.data), image.data, `${image.width}x${image.height}x${image.channels}`);
  }
});

test('encodePng refuses a sample count that does not fit, or 5 channels', (t) => {
  t.throws(() => encodePng({ width: 3, height: 3, channels: 3, data: new Uint8Array(26) }), {
    instanceOf: ArgumentError,
    code: 'ERR_MMSSL_ARG',
    message: /26 samples for 3x3x3/,
  });
  t.throws(() => encodePng({ width: 1, height: 1, channels: 5, data: new Uint8Array(5) }), {
    instanceOf: ArgumentError,
    code: 'ERR_MMSSL_ARG',
  });
});

test('encodePng refuses dimensions that are not positive integers (PNG needs width, height >= 1)', (t) => {
  // 256 x 2.25 x 4 = 2304 samples: the count fits, the height is no height (the header would say 2, and the file not decode)
  t.throws(() => encodePng({ width: 256, height: 2.25, channels: 4, data: new Uint8Array(2304) }), {
    instanceOf: ArgumentError,
    code: 'ERR_MMSSL_ARG',
  });
  t.throws(() => encodePng({ width: 0, height: 4, channels: 1, data: new Uint8Array(0) }), {
    instanceOf: ArgumentError,
    code: 'ERR_MMSSL_ARG',
  });
});
