// InfoNCE against PyTorch (test/fixtures/infonce_pytorch.py, float64 autograd) as an independent oracle: random
// batches that include views without a positive (a Negative location seen once), and batches made of such views.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loss, torch } from '../../lib/index.js';
import { randomBatch } from '../helpers/infonce.js';
import { randomArray, values } from '../helpers/reference.js';

const script = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'test',
  'fixtures',
  'infonce_pytorch.py',
);

interface Batch {
  z: number[];
  shape: [number, number];
  groups: number[];
  anchorMask: boolean[];
  temperature: number;
  positives: 'sum' | 'mean';
  normalize: boolean;
}

function pytorch(batches: Batch[]): { loss: number; grad: number[] }[] {
  const run = spawnSync('/usr/bin/python3', [script], {
    input: JSON.stringify(batches),
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  if (run.status !== 0) throw new Error(`infonce_pytorch.py: ${run.stderr}`);
  return JSON.parse(run.stdout) as { loss: number; grad: number[] }[];
}

/** Two locations with three views each, then `singles` views of Negative locations seen once (never anchors). */
function withSingles(singles: number, positives: 'sum' | 'mean', seed: number): Batch {
  const v = 6 + singles,
    d = 5;
  return {
    z: Array.from(randomArray(v * d, seed)),
    shape: [v, d],
    temperature: 0.2,
    positives,
    normalize: true,
    groups: Array.from({ length: v }, (_, i) => (i < 6 ? i % 2 : 10 + i)),
    anchorMask: Array.from({ length: v }, (_, i) => i < 6),
  };
}

/**
 * Whether `actual` is within `rtol` of `expected`'s largest magnitude, plus `atol`: some gradients are exactly 0
 * (one location pair: a constant loss; d = 1 with normalisation: u = ±1), where float32 leaves rounding divided by
 * a small norm (up to ~4e-6 seen).
 */
function gradientClose(actual: number[], expected: number[], rtol: number, atol: number): boolean {
  const scale = Math.max(...expected.map(Math.abs));
  return expected.every((e, i) => Math.abs(actual[i] - e) <= rtol * scale + atol);
}

const cases: [string, Batch][] = [
  ...[1, 3, 12].flatMap((n) =>
    (['mean', 'sum'] as const).map((p, k): [string, Batch] => [
      `${n} single-view Negatives, positives '${p}'`,
      withSingles(n, p, 40 + 2 * n + k),
    ]),
  ),
  ...Array.from({ length: 60 }, (_, seed): [string, Batch] => [
    `random batch ${seed}`,
    randomBatch(500 + seed, { maxViews: 96, maxDim: 24 }),
  ]),
];

test('native InfoNCE (both kernels, float32 and float64) equals PyTorch on batches with single-view non-anchors', (t) => {
  const singles = cases.filter(([, c]) =>
    c.groups.some((g, i) => c.groups.indexOf(g) === i && c.groups.lastIndexOf(g) === i),
  );
  t.true(singles.length >= 20, `${singles.length} of the ${cases.length} cases hold a view without a positive`);
  const expected = pytorch(cases.map(([, c]) => c));
  torch.tidy(() => {
    for (const [k, [name, c]] of cases.entries()) {
      for (const dtype of ['float64', 'float32'] as const) {
        for (const kernel of ['auto', 'aten'] as const) {
          const z = torch.tensor(c.z, { dtype }).reshape(c.shape).requiresGrad_();
          const value = loss.infoNCE(z, c.groups, { ...c, kernel });
          value.backward();
          const tol = dtype === 'float64' ? 1e-9 : 1e-4;
          const where = `${name} (${dtype}, ${kernel})`;
          t.true(
            Math.abs(value.item() - expected[k].loss) <= tol * Math.abs(expected[k].loss) + 1e-6,
            `${where}: loss ${value.item()} vs PyTorch ${expected[k].loss}`,
          );
          t.true(
            dtype === 'float64'
              ? gradientClose(values(z.grad!), expected[k].grad, 1e-9, 1e-12)
              : gradientClose(values(z.grad!), expected[k].grad, 1e-4, 1e-5),
            `${where}: gradient`,
          );
        }
      }
      const naive = torch.tensor(c.z, { dtype: 'float64' }).reshape(c.shape).requiresGrad_();
      const value = loss.infoNCENaive(naive, torch.tensor(c.groups), { ...c, anchorMask: torch.tensor(c.anchorMask) });
      value.backward();
      t.true(
        Math.abs(value.item() - expected[k].loss) <= 1e-9 * Math.abs(expected[k].loss) + 1e-12,
        `${name} (naive): loss ${value.item()}`,
      );
      t.true(gradientClose(values(naive.grad!), expected[k].grad, 1e-9, 1e-12), `${name} (naive): gradient`);
      const reference = loss.infoNCEReference(c.z, c.shape, c.groups, c);
      t.true(
        Math.abs(reference.loss - expected[k].loss) <= 1e-9 * Math.abs(expected[k].loss) + 1e-12,
        `${name} (TypeScript reference): loss ${reference.loss}`,
      );
      t.true(
        gradientClose(Array.from(reference.grad), expected[k].grad, 1e-9, 1e-12),
        `${name} (TypeScript reference): gradient`,
      );
    }
  });
});
