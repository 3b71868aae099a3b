// Weighted k-NN on embeddings (lib/eval/knn.ts) against hand-worked cases and a pure-TypeScript reference.
import test from 'ava';

import { evaluation, torch } from '../../lib/index.js';
import { randomArray, rng } from '../helpers/reference.js';

const { knnPredict, knnAccuracy } = evaluation;
const rows = (data: number[][]) => torch.tensor(data, { dtype: 'float64' });

/** The reference: cosine similarities, the k best, exp(s / T) votes, the first class with the most. */
function knnReference(
  gallery: number[][],
  labels: number[],
  query: number[],
  k: number,
  temperature: number,
  numClasses: number,
): number {
  const norm = (v: number[]) => Math.hypot(...v);
  const sims = gallery.map((g, j) => ({
    j,
    s: g.reduce((acc, x, i) => acc + x * query[i], 0) / (norm(g) * norm(query)),
  }));
  sims.sort((a, b) => b.s - a.s);
  const votes = new Array<number>(numClasses).fill(0);
  for (const { j, s } of sims.slice(0, k)) votes[labels[j]] += Math.exp(s / temperature);
  return votes.indexOf(Math.max(...votes));
}

test('weighted votes: one close neighbour outweighs two distant ones at T = 0.07, not when votes are nearly counts', (t) => {
  torch.tidy(() => {
    // the query (1, 0); class 0 at cosine 1, class 1 twice at cosine 0.5
    const gallery = rows([
      [1, 0],
      [0.5, Math.sqrt(3) / 2],
      [0.5, -Math.sqrt(3) / 2],
    ]);
    const query = rows([[1, 0]]);
    t.deepEqual(knnPredict(gallery, [0, 1, 1], query, { numClasses: 2, k: 3 }), [0]);
    t.deepEqual(knnPredict(gallery, [0, 1, 1], query, { numClasses: 2, k: 3, temperature: 10 }), [1]);
    // only the nearest votes with k = 1
    t.deepEqual(knnPredict(gallery, [0, 1, 1], query, { numClasses: 2, k: 1, temperature: 10 }), [0]);
  });
});

test('equal votes go to the lower class index; a gallery smaller than k votes whole', (t) => {
  torch.tidy(() => {
    const twins = rows([
      [1, 0],
      [1, 0],
    ]);
    t.deepEqual(knnPredict(twins, [3, 1], rows([[2, 0]]), { numClasses: 4, k: 2 }), [1]);
    t.deepEqual(knnPredict(twins, [1, 3], rows([[2, 0]]), { numClasses: 4, k: 2 }), [1]);
    // k = 20 over 3 rows: all vote; with near-count votes, the two of class 2 win
    const gallery = rows([
      [1, 0],
      [-1, 0.1],
      [-1, -0.1],
    ]);
    t.deepEqual(knnPredict(gallery, [1, 2, 2], rows([[1, 0.2]]), { numClasses: 3, k: 20, temperature: 100 }), [2]);
    t.deepEqual(knnPredict(gallery, [1, 2, 2], rows([[1, 0.2]]), { numClasses: 3, k: 20 }), [1]);
  });
});

test('agrees with the TypeScript reference on random embeddings, chunked or not', (t) => {
  torch.tidy(() => {
    for (let seed = 0; seed < 20; seed++) {
      const r = rng(seed);
      const d = 2 + Math.floor(r() * 6),
        g = 5 + Math.floor(r() * 40),
        q = 1 + Math.floor(r() * 15),
        classes = 2 + Math.floor(r() * 5);
      const k = 1 + Math.floor(r() * 25),
        temperature = [0.07, 0.5, 3][seed % 3];
      const gal = Array.from({ length: g }, (_, i) => randomArray(d, seed * 1000 + i));
      const qs = Array.from({ length: q }, (_, i) => randomArray(d, seed * 1000 + 500 + i));
      const labels = Array.from({ length: g }, () => Math.floor(r() * classes));
      const expected = qs.map((v) => knnReference(gal, labels, v, k, temperature, classes));
      const options = { numClasses: classes, k, temperature };
      t.deepEqual(knnPredict(rows(gal), labels, rows(qs), options), expected, `seed ${seed}`);
      t.deepEqual(
        knnPredict(rows(gal), labels, rows(qs), { ...options, chunkSize: 2 }),
        expected,
        `seed ${seed}, chunks of 2`,
      );
      const queryLabels = expected.map((p, i) => (i % 2 === 0 ? p : (p + 1) % classes));
      t.is(knnAccuracy(rows(gal), labels, rows(qs), queryLabels, options), Math.ceil(q / 2) / q);
    }
  });
});

test('bad inputs name what is wrong', (t) => {
  torch.tidy(() => {
    const g = rows([
      [1, 0],
      [0, 1],
    ]);
    t.throws(() => knnPredict(g, [0, 1], rows([[1, 0, 0]]), { numClasses: 2 }), {
      message: /knnPredict: queries must be a \[rows, 2\] tensor, got a float64 tensor of shape \[1, 3\] on cpu/,
      code: 'ERR_MMSSL_ARG',
    });
    t.throws(() => knnPredict(g, [0], rows([[1, 0]]), { numClasses: 2 }), {
      message: /galleryLabels must be 2 labels, one per gallery row/,
    });
    t.throws(() => knnPredict(g, [0, 2], rows([[1, 0]]), { numClasses: 2 }), {
      message: /galleryLabels\[1\] must be a class in \[0, 2\)/,
    });
    t.throws(() => knnPredict(g, [0, 1], rows([[1, 0]]), { numClasses: 2, k: 0 }), {
      message: /k must be an integer >= 1/,
    });
    t.throws(() => knnPredict(g, [0, 1], rows([[1, 0]]), { numClasses: 2, temperature: 0 }), {
      message: /temperature must be a positive number/,
    });
    t.throws(() => knnAccuracy(g, [0, 1], rows([[1, 0]]), [0, 1], { numClasses: 2 }), {
      message: /queryLabels must be 1 labels/,
    });
  });
});
