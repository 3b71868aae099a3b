// The collapse monitor against a plain TypeScript reference written from its definitions (float64 number arrays):
// per-modality spread, Wang and Isola's alignment over every ordered pair of a location's views, and uniformity over
// every pair of distinct views (of the evenly spaced subsample above UNIFORMITY_VIEWS views); small and large
// batches, one and three modalities, with and without augmentations, and a collapsed batch.
import test from 'ava';

import { torch } from '../../lib/index.js';
import { embeddingHealth, UNIFORMITY_VIEWS } from '../../lib/train/monitor.js';
import { viewLayout, type ViewLayout } from '../../lib/train/views.js';
import { rng } from '../helpers/reference.js';

/** Row r of z (laid out as `layout`) is view floor(r / n) of location r % n. */
function reference(rows: number[][], layout: ViewLayout, n: number) {
  const unit = rows.map((r) => {
    const norm = Math.max(Math.hypot(...r), 1e-12);
    return r.map((x) => x / norm);
  });
  const d = unit[0].length,
    perModality = layout.views * n;
  const std = Object.fromEntries(
    layout.modalities.map((m, k) => {
      const block = unit.slice(k * perModality, (k + 1) * perModality);
      const spread = Array.from({ length: d }, (_, j) => {
        const mean = block.reduce((s, r) => s + r[j], 0) / block.length;
        return Math.sqrt(block.reduce((s, r) => s + (r[j] - mean) ** 2, 0) / block.length);
      });
      return [m, spread.reduce((a, b) => a + b, 0) / d];
    }),
  );
  const squared = (a: number[], b: number[]) => a.reduce((s, x, j) => s + (x - b[j]) ** 2, 0);
  let pairs = 0,
    distances = 0;
  for (let i = 0; i < unit.length; i++)
    for (let j = 0; j < unit.length; j++)
      if (i !== j && i % n === j % n) {
        pairs++;
        distances += squared(unit[i], unit[j]);
      }
  const m = Math.min(unit.length, UNIFORMITY_VIEWS);
  const sample = Array.from({ length: m }, (_, i) => unit[Math.floor((i * unit.length) / m)]);
  let kernel = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < m; j++) if (i !== j) kernel += Math.exp(-2 * squared(sample[i], sample[j]));
  return { std, alignment: distances / pairs, uniformity: Math.log(kernel / (m * (m - 1))) };
}

const CASES = [
  { modalities: ['s2'], augment: true, n: 5, d: 3 },
  { modalities: ['s1', 's2', 'naip'], augment: true, n: 7, d: 8 },
  { modalities: ['s1', 's2'], augment: false, n: 4, d: 2 },
  { modalities: ['s1', 's2', 'naip'], augment: true, n: 200, d: 4 }, // 1200 views: uniformity on a subsample
] as const;

for (const { modalities, augment, n, d } of CASES) {
  const layout = viewLayout([...modalities], augment);
  const v = layout.perLocation * n;
  test(`${modalities.join('+')}, ${augment ? 'two views' : 'one view'} each, ${n} locations (${v} views), d ${d}: the reference's values within 1e-9`, (t) => {
    const random = rng(v * d);
    const rows = Array.from({ length: v }, () => Array.from({ length: d }, () => random() * 2 - 1));
    using z = torch.tensor(rows, { dtype: 'float32' });
    const got = embeddingHealth(z, layout, n);
    const rowsOf32 = z.toArray() as number[][]; // the reference sees the float32 values the monitor sees
    const expected = reference(rowsOf32, layout, n);
    for (const m of modalities)
      t.true(Math.abs(got.std[m] - expected.std[m]) <= 1e-9, `std ${m}: ${got.std[m]} vs ${expected.std[m]}`);
    t.true(Math.abs(got.alignment - expected.alignment) <= 1e-9, `alignment ${got.alignment} vs ${expected.alignment}`);
    t.true(
      Math.abs(got.uniformity - expected.uniformity) <= 1e-9,
      `uniformity ${got.uniformity} vs ${expected.uniformity}`,
    );
  });
}

test('a collapsed batch: no spread, positives at distance 0, uniformity 0', (t) => {
  const layout = viewLayout(['s1', 's2'], true);
  using z = torch.ones([layout.perLocation * 6, 4]);
  const got = embeddingHealth(z, layout, 6);
  t.deepEqual(got.std, { s1: 0, s2: 0 });
  t.is(got.alignment, 0);
  t.true(Math.abs(got.uniformity) <= 1e-12);
});
