/**
 * 2-D maps of embeddings: PCA (the two leading principal components, by power iteration on the centred Gram matrix,
 * which LibTorch computes) and UMAP (umap-js, seeded).
 */

import { Random } from '../data/random.js';
import { tensor } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';

/** Rows [n, d] (row-major) projected on their two leading principal components: [n][2]. */
export function pca2(rows: Float32Array, n: number, d: number): [number, number][] {
  const gram = tidy(() => {
    const x = tensor(rows).double().reshape([n, d]);
    const centred = x.sub(x.mean([0], { keepdim: true }));
    return centred.matmul(centred.t()).toTypedArray() as Float64Array;
  });
  const units: Float64Array[] = [],
    scores: Float64Array[] = [];
  const random = new Random(0);
  for (let c = 0; c < 2; c++) {
    let v = Float64Array.from({ length: n }, () => random.normal());
    let lambda = 0;
    for (let iteration = 0; iteration < 200; iteration++) {
      const w = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += gram[i * n + j] * v[j];
        w[i] = s;
      }
      for (const u of units) {
        // deflation: stay orthogonal to the components found
        const dot = w.reduce((acc, x, i) => acc + x * u[i], 0);
        for (let i = 0; i < n; i++) w[i] -= dot * u[i];
      }
      const norm = Math.hypot(...w);
      if (norm === 0) break;
      const next = w.map((x) => x / norm);
      const converged = Math.abs(norm - lambda) <= 1e-10 * norm;
      v = next;
      lambda = norm;
      if (converged) break;
    }
    units.push(v);
    scores.push(v.map((x) => x * Math.sqrt(lambda))); // scores: eigenvector x sqrt(eigenvalue)
  }
  return Array.from({ length: n }, (_, i) => [scores[0][i], scores[1][i]]);
}

/** UMAP of rows [n, d] to 2-D: [n][2], seeded. umap-js loads here, with the first map (not with `import 'mmssl'`). */
export async function umap2(rows: Float32Array, n: number, d: number, seed = 0): Promise<[number, number][]> {
  const { UMAP } = await import('umap-js');
  const random = new Random(seed);
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: Math.min(15, n - 1),
    minDist: 0.1,
    random: () => random.random(),
  });
  const data = Array.from({ length: n }, (_, i) => Array.from(rows.subarray(i * d, (i + 1) * d)));
  return umap.fit(data) as [number, number][];
}
