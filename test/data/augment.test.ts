import test from 'ava';

import { data, torch } from '../../lib/index.js';
import { randomArray, values } from '../helpers/reference.js';

const { Random, sampleTransform, applyTransforms } = data;

/** The largest difference relative to the largest magnitude: sampling positions carry float32 rounding (~1e-7). */
function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0,
    scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return a.length === b.length ? diff / scale : Infinity;
}

test('the same seed samples the same transforms; another seed, others', (t) => {
  const draw = (seed: number) => Array.from({ length: 50 }, (_, i) => sampleTransform(new Random(seed).fork(i)));
  t.deepEqual(draw(1), draw(1));
  t.notDeepEqual(draw(1), draw(2));
});

test('crops keep 90-100% of the area at aspect 3/4 to 4/3 (in pixels), inside the image; flips at p = 0.5', (t) => {
  const random = new Random(3);
  let fallbacks = 0,
    horizontal = 0,
    vertical = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) {
    const aspect = i % 2 ? 1 : 4 / 3; // square and 4:3 images
    const {
      box: [x, y, w, h],
      horizontalFlip,
      verticalFlip,
    } = sampleTransform(random, {}, aspect);
    horizontal += Number(horizontalFlip);
    vertical += Number(verticalFlip);
    if (w === 1 && h === 1) {
      fallbacks++;
      continue;
    }
    t.true(w * h >= 0.9 - 1e-12 && w * h <= 1 + 1e-12, `area ${w * h}`);
    const ratio = (w * aspect) / h;
    t.true(ratio >= 3 / 4 - 1e-12 && ratio <= 4 / 3 + 1e-12, `ratio ${ratio}`);
    t.true(x >= 0 && y >= 0 && x + w <= 1 + 1e-12 && y + h <= 1 + 1e-12, `box ${[x, y, w, h]}`);
  }
  // binomial(20000, 0.5): 5 sigma is 354
  t.true(Math.abs(horizontal - n / 2) < 354 && Math.abs(vertical - n / 2) < 354, `${horizontal}, ${vertical} flips`);
  // (about 0.82^10 of the draws find no box in ten tries and keep the whole image, as torchvision's would fall back)
  t.true(fallbacks < n * 0.3, `${fallbacks} whole-image fallbacks`);
  // A 2:1 image has no 3/4..4/3 box of 90% of its area: always the whole image, never a smaller crop.
  t.deepEqual(sampleTransform(random, {}, 2).box, [0, 0, 1, 1]);
  t.like(sampleTransform(random, { cropScale: false, horizontalFlip: 0, verticalFlip: 1 }), {
    box: [0, 0, 1, 1],
    horizontalFlip: false,
    verticalFlip: true,
  });
});

/** Bilinear sampling of one [H, W] plane at pixel coordinates, coordinates clamped to the image (border padding). */
function sample(plane: number[], hgt: number, wid: number, py: number, px: number): number {
  const y = Math.min(Math.max(py, 0), hgt - 1),
    x = Math.min(Math.max(px, 0), wid - 1);
  const y0 = Math.floor(y),
    x0 = Math.floor(x),
    y1 = Math.min(y0 + 1, hgt - 1),
    x1 = Math.min(x0 + 1, wid - 1);
  const fy = y - y0,
    fx = x - x0;
  const at = (yy: number, xx: number) => plane[yy * wid + xx];
  return (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
}

/** Crop-then-resize as torchvision computes it (align_corners false), then flips: a pure TypeScript reference. */
function reference(
  x: number[],
  [n, c, hgt, wid]: number[],
  transforms: data.ViewTransform[],
  [oh, ow]: [number, number],
): number[] {
  const out: number[] = [];
  for (let b = 0; b < n; b++) {
    const {
      box: [bx, by, bw, bh],
      horizontalFlip,
      verticalFlip,
    } = transforms[b];
    for (let ch = 0; ch < c; ch++) {
      const plane = x.slice((b * c + ch) * hgt * wid, (b * c + ch + 1) * hgt * wid);
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          const si = verticalFlip ? oh - 1 - i : i,
            sj = horizontalFlip ? ow - 1 - j : j;
          out.push(
            sample(
              plane,
              hgt,
              wid,
              by * hgt + (bh * hgt * (si + 0.5)) / oh - 0.5,
              bx * wid + (bw * wid * (sj + 0.5)) / ow - 0.5,
            ),
          );
        }
      }
    }
  }
  return out;
}

test('applied to a batch, each image matches crop-resize-flip computed in plain TypeScript', (t) => {
  const shape = [6, 3, 17, 23];
  const x = randomArray(
    shape.reduce((a, b) => a * b),
    5,
    -4,
    4,
  );
  const random = new Random(9);
  const transforms = Array.from({ length: 6 }, () => sampleTransform(random, {}, 23 / 17));
  transforms[0] = { box: [0, 0, 1, 1], horizontalFlip: false, verticalFlip: false };
  for (const size of [
    [17, 23],
    [12, 9],
  ] as [number, number][]) {
    torch.tidy(() => {
      const out = applyTransforms(torch.tensor(x).reshape(shape), transforms, size);
      t.deepEqual(out.shape, [6, 3, ...size]);
      t.true(scaledError(values(out), reference(x, shape, transforms, size)) < 1e-5, `size ${size}`);
    });
  }
});

test('the CPU path equals affine_grid + grid_sample (the path of other devices and of gradients) on every edge shape', (t) => {
  const random = new Random(4);
  let cases = 0;
  for (const [h, w] of [
    [1, 1],
    [1, 7],
    [6, 1],
    [2, 3],
    [17, 23],
    [72, 72],
  ])
    for (const size of [undefined, [1, 1], [h + 3, w * 2], [Math.max(1, h >> 1), Math.max(1, w >> 1)]] as const)
      for (const dtype of ['float32', 'float64'] as const) {
        const transforms = [
          { box: [0, 0, 1, 1] as [number, number, number, number], horizontalFlip: false, verticalFlip: false },
          { box: [0, 0, 1, 1] as [number, number, number, number], horizontalFlip: true, verticalFlip: true },
          { box: [0.1, 0, 0.9, 1] as [number, number, number, number], horizontalFlip: false, verticalFlip: true },
          { box: [0, 0.05, 1, 0.95] as [number, number, number, number], horizontalFlip: true, verticalFlip: false },
          ...Array.from({ length: 4 }, () => sampleTransform(random, {}, w / h)),
        ];
        torch.tidy(() => {
          const x = torch.randn([transforms.length, 3, h, w], { dtype }).mul(100);
          const native = applyTransforms(x, transforms, size);
          // the oracle in float64: float32's grid rounds sampling positions (about 1e-5 of the values on 72 px)
          const grid = applyTransforms(x.double().requiresGrad_(true), transforms, size).detach();
          t.deepEqual(native.shape, grid.shape);
          t.is(native.dtype, dtype);
          const error = scaledError(values(native), values(grid));
          t.true(error < (dtype === 'float32' ? 1e-6 : 1e-12), `${h}x${w} -> ${size ?? 'same'} ${dtype}: ${error}`);
          cases++;
        });
      }
  t.is(cases, 48);
});

test('identity, flips and whole-pixel crops are exact rearrangements; values are never clipped', (t) => {
  torch.tidy(() => {
    const x = torch.randn([2, 5, 8, 10]).mul(1000);
    const close = (a: torch.Tensor, b: torch.Tensor) => scaledError(values(a), values(b)) < 1e-5;
    const id = { box: [0, 0, 1, 1] as [number, number, number, number], horizontalFlip: false, verticalFlip: false };
    t.true(close(applyTransforms(x, [id, id]), x), 'identity');
    t.true(
      close(
        applyTransforms(x, [
          { ...id, horizontalFlip: true },
          { ...id, horizontalFlip: true },
        ]),
        x.flip(3),
      ),
      'horizontal flip',
    );
    t.true(
      close(
        applyTransforms(x, [
          { ...id, verticalFlip: true, horizontalFlip: true },
          { ...id, verticalFlip: true, horizontalFlip: true },
        ]),
        x.flip(2, 3),
      ),
      'both flips',
    );
    const crop = { ...id, box: [2 / 10, 1 / 8, 6 / 10, 5 / 8] as [number, number, number, number] };
    t.true(close(applyTransforms(x, [crop, crop], [5, 6]), x.narrow(2, 1, 5).narrow(3, 2, 6)), 'crop of whole pixels');
    const out = applyTransforms(x, [sampleTransform(new Random(1)), sampleTransform(new Random(2))]);
    t.true(out.abs().max().item() > 1000, 'standardised values far outside [0, 1] pass through');
  });
});

test('bad options and batches are refused by name', (t) => {
  const random = new Random(0);
  t.throws(() => sampleTransform(random, { horizontalFlip: 2 }), {
    code: 'ERR_MMSSL_ARG',
    message: /horizontalFlip must be a probability/,
  });
  t.throws(() => sampleTransform(random, { cropScale: [0.9, 1.1] }), {
    code: 'ERR_MMSSL_ARG',
    message: /cropScale must be \[low, high\]/,
  });
  t.throws(() => sampleTransform(random, { cropRatio: [2, 1] }), { code: 'ERR_MMSSL_ARG', message: /cropRatio/ });
  torch.tidy(() => {
    t.throws(() => applyTransforms(torch.zeros([3, 4, 4]), []), {
      code: 'ERR_MMSSL_ARG',
      message: /x must be a \[N, C, H, W\] tensor/,
    });
    t.throws(() => applyTransforms(torch.zeros([2, 1, 4, 4]), [sampleTransform(random)]), {
      code: 'ERR_MMSSL_ARG',
      message: /one per image \(2\)/,
    });
  });
});
