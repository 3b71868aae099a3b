/**
 * Retrieval of the same location across two sets of embeddings (S1 -> S2, or two augmented views of one modality):
 * row i of `queries` and row i of `gallery` are the same location. A query's rank is 1 + the number of gallery rows
 * more similar to it (cosine) than its own location's, so ties count in the query's favour; recall@k is the fraction
 * of queries ranked k or better, and the median rank is the median over queries (the mean of the two middle ranks
 * for an even count), as in CLIP-style retrieval reports.
 */
import { checkInt, checkOptions, invalidArg } from '../errors.js';
import { normalize } from '../nn/functional.js';
import { noGrad } from '../torch/autograd.js';
import { arange } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';

export interface RetrievalOptions {
  /** The k of recall@k (default [1, 5, 10]). */
  ks?: readonly number[];
  /** Queries compared at once (default 1024). */
  chunkSize?: number;
}

export interface RetrievalResult {
  /** recall@k for each k asked, in [0, 1]. */
  recall: Record<number, number>;
  medianRank: number;
  /** Locations compared. */
  count: number;
}

const OP = 'retrieval';

/** Each query's rank of its own location among all gallery rows (1 = first). */
export function retrievalRanks(
  queries: Tensor,
  gallery: Tensor,
  options: Pick<RetrievalOptions, 'chunkSize'> = {},
): number[] {
  const { chunkSize = 1024 } = checkOptions(OP, options);
  const [n, width] = gallery.shape;
  if (gallery.shape.length !== 2 || n === 0)
    throw invalidArg(OP, 'gallery', 'a [locations, width] tensor with a row', gallery);
  if (queries.shape.length !== 2 || queries.shape[0] !== n || queries.shape[1] !== width) {
    throw invalidArg(
      OP,
      'queries',
      `a [${n}, ${width}] tensor, row i the same location as the gallery's row i`,
      queries,
    );
  }
  if (checkInt(OP, 'chunkSize', chunkSize) < 1) throw invalidArg(OP, 'chunkSize', 'an integer >= 1', chunkSize);
  return tidy(() =>
    noGrad(() => {
      const g = normalize(gallery, { dim: 1 });
      const ranks: number[] = [];
      for (let start = 0; start < n; start += chunkSize) {
        tidy(() => {
          const rows = Math.min(chunkSize, n - start);
          const q = normalize(queries.narrow(0, start, rows), { dim: 1 });
          const similarity = q.matmul(g.t());
          // s_ii read from the same product, so a gallery row equal to the own one ties rather than differing by a ulp
          const own = similarity.gather(
            1,
            arange(start, start + rows, 1, { dtype: 'int64', device: q.device }).unsqueeze(1),
          );
          ranks.push(
            ...(similarity
              .gt(own.expand([rows, n]))
              .sum(1)
              .add(1)
              .toArray() as number[]),
          );
        });
      }
      return ranks;
    }),
  );
}

/** recall@k and the median rank of finding each query's own location in the gallery. */
export function retrieval(queries: Tensor, gallery: Tensor, options: RetrievalOptions = {}): RetrievalResult {
  const { ks = [1, 5, 10], chunkSize } = checkOptions(OP, options);
  ks.forEach((k, i) => {
    if (checkInt(OP, `ks[${i}]`, k) < 1) throw invalidArg(OP, `ks[${i}]`, 'an integer >= 1', k);
  });
  const ranks = retrievalRanks(queries, gallery, { chunkSize });
  const sorted = [...ranks].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const medianRank = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  const recall = Object.fromEntries(ks.map((k) => [k, ranks.filter((r) => r <= k).length / ranks.length]));
  return { recall, medianRank, count: ranks.length };
}
