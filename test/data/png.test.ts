import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodePng } from '../../lib/data/formats/png.js';

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
    t.throws(() => decodePng(readFileSync(path), path), { code: 'ERR_MMSSL_IO', message: new RegExp(`${file}: .*(${why})`) });
  }
  const rgba = readFileSync(join(dir, 'rgba.png'));
  const flipped = Uint8Array.from(rgba);
  flipped[60] ^= 0xff;   // inside the first IDAT
  t.throws(() => decodePng(flipped, 'x.png'), { code: 'ERR_MMSSL_IO', message: /x\.png: not a readable PNG file: chunk IDAT at byte \d+: CRC mismatch/ });
  t.throws(() => decodePng(new Uint8Array([1, 2, 3]), 'y.png'), { code: 'ERR_MMSSL_IO', message: /y\.png: not a readable PNG file: no PNG signature/ });
});
