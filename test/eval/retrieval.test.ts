// Cross-modal retrieval metrics (lib/eval/retrieval.ts) on constructed cases with known answers and against counting
// in TypeScript.
import test from 'ava';

import { evaluation, torch } from '../../lib/index.js';
import { randomArray, rng } from '../helpers/reference.js';

const { retrieval, retrievalRanks } = evaluation;
const rows = (data: number[][]) => torch.tensor(data, { dtype: 'float64' });
const identity = (n: number) =>
  Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));

test('identical embeddings: every location is found first', (t) => {
  torch.tidy(() => {
    const x = rows(
      randomArray(40, 1).reduce<number[][]>(
        (acc, v, i) => (i % 4 === 0 ? [...acc, [v]] : (acc[acc.length - 1].push(v), acc)),
        [],
      ),
    );
    t.deepEqual(retrieval(x, x), { recall: { 1: 1, 5: 1, 10: 1 }, medianRank: 1, count: 10 });
    t.deepEqual(retrieval(rows(identity(12)), rows(identity(12))).recall, { 1: 1, 5: 1, 10: 1 });
  });
});

test('a derangement of orthogonal embeddings puts every own location second', (t) => {
  torch.tidy(() => {
    const n = 9;
    const shifted = identity(n).map((_, i) => identity(n)[(i + 1) % n]); // location i's gallery row is e_{i+1}
    // query e_i: the gallery row e_i (location i - 1) has similarity 1, its own 0, the others 0 (ties count for it)
    t.deepEqual(retrievalRanks(rows(identity(n)), rows(shifted)), new Array(n).fill(2));
    t.deepEqual(retrieval(rows(identity(n)), rows(shifted), { ks: [1, 2] }), {
      recall: { 1: 0, 2: 1 },
      medianRank: 2,
      count: n,
    });
  });
});

test('ranks agree with counting in TypeScript; the median of an even count is the mean of the middle two', (t) => {
  torch.tidy(() => {
    for (let seed = 0; seed < 10; seed++) {
      const r = rng(seed);
      const n = 2 + Math.floor(r() * 30),
        d = 2 + Math.floor(r() * 5);
      const q = Array.from({ length: n }, (_, i) => randomArray(d, seed * 100 + i));
      const g = Array.from({ length: n }, (_, i) => randomArray(d, seed * 100 + 50 + i));
      const cos = (a: number[], b: number[]) =>
        a.reduce((s, x, i) => s + x * b[i], 0) / (Math.hypot(...a) * Math.hypot(...b));
      const expected = q.map((v, i) => 1 + g.filter((w) => cos(v, w) > cos(v, g[i]) + 1e-12).length);
      t.deepEqual(retrievalRanks(rows(q), rows(g), { chunkSize: 3 }), expected, `seed ${seed}`);
      const sorted = [...expected].sort((a, b) => a - b);
      const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
      const result = retrieval(rows(q), rows(g));
      t.is(result.medianRank, median);
      t.is(result.recall[5], expected.filter((x) => x <= 5).length / n);
    }
  });
});

test('mismatched sets name the shapes', (t) => {
  torch.tidy(() => {
    t.throws(
      () =>
        retrieval(
          rows([[1, 0]]),
          rows([
            [1, 0],
            [0, 1],
          ]),
        ),
      {
        message:
          /retrieval: queries must be a \[2, 2\] tensor, row i the same location as the gallery's row i, got a float64 tensor of shape \[1, 2\] on cpu/,
        code: 'ERR_MMSSL_ARG',
      },
    );
    t.throws(() => retrieval(rows([[1, 0]]), rows([[1, 0]]), { ks: [0] }), {
      message: /ks\[0\] must be an integer >= 1/,
    });
  });
});
