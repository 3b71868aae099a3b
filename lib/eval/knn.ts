/**
 * Weighted k-nearest-neighbour classification of embeddings, as solo-learn's and DINO's k-NN monitors do it: cosine
 * similarity between L2-normalised rows, the k most similar gallery rows vote for their class with weight
 * exp(similarity / temperature), and the class with the largest total wins (ties go to the lower class index).
 * Computed in the embeddings' dtype, queries in chunks, so memory stays O(chunk x gallery).
 */
import { checkInt, checkNumber, checkOptions, invalidArg } from '../errors.js';
import { normalize, oneHot } from '../nn/functional.js';
import { noGrad } from '../torch/autograd.js';
import { tensor } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';

export interface KnnOptions {
  /** Classes are 0..numClasses-1. */
  numClasses: number;
  /** Neighbours that vote (default 20); a gallery smaller than k votes whole. */
  k?: number;
  /** Votes weigh exp(similarity / temperature) (default 0.07, DINO's and solo-learn's). */
  temperature?: number;
  /** Queries compared at once (default 1024). */
  chunkSize?: number;
}

const OP = 'knnPredict';

function checkEmbeddings(name: string, x: Tensor, width?: number): void {
  const shape = x.shape;
  if (shape.length !== 2 || (width !== undefined && shape[1] !== width)) {
    throw invalidArg(OP, name, `a [rows, ${width ?? 'width'}] tensor`, x);
  }
}

/** The predicted class of each query row, from the labelled gallery rows. */
export function knnPredict(
  gallery: Tensor,
  galleryLabels: readonly number[],
  queries: Tensor,
  options: KnnOptions,
): number[] {
  const { numClasses, k = 20, temperature = 0.07, chunkSize = 1024 } = checkOptions(OP, options);
  checkEmbeddings('gallery', gallery);
  checkEmbeddings('queries', queries, gallery.shape[1]);
  if (galleryLabels.length !== gallery.shape[0])
    throw invalidArg(OP, 'galleryLabels', `${gallery.shape[0]} labels, one per gallery row`, `${galleryLabels.length}`);
  if (checkInt(OP, 'numClasses', numClasses) < 1) throw invalidArg(OP, 'numClasses', 'an integer >= 1', numClasses);
  const bad = galleryLabels.findIndex((l) => !Number.isInteger(l) || l < 0 || l >= numClasses);
  if (bad >= 0) throw invalidArg(OP, `galleryLabels[${bad}]`, `a class in [0, ${numClasses})`, galleryLabels[bad]);
  if (checkInt(OP, 'k', k) < 1) throw invalidArg(OP, 'k', 'an integer >= 1', k);
  if (!(checkNumber(OP, 'temperature', temperature) > 0))
    throw invalidArg(OP, 'temperature', 'a positive number', temperature);
  if (checkInt(OP, 'chunkSize', chunkSize) < 1) throw invalidArg(OP, 'chunkSize', 'an integer >= 1', chunkSize);
  if (gallery.shape[0] === 0) throw invalidArg(OP, 'gallery', 'at least one row', 'an empty gallery');
  const neighbours = Math.min(k, gallery.shape[0]);
  return tidy(() =>
    noGrad(() => {
      const g = normalize(gallery, { dim: 1 });
      const labels = oneHot(tensor([...galleryLabels], { dtype: 'int64', device: gallery.device }), numClasses).to({
        dtype: gallery.dtype,
      });
      const predictions: number[] = [];
      for (let start = 0; start < queries.shape[0]; start += chunkSize) {
        tidy(() => {
          const q = normalize(queries.narrow(0, start, Math.min(chunkSize, queries.shape[0] - start)), { dim: 1 });
          const { values, indices } = q.matmul(g.t()).topk(neighbours, { dim: 1 });
          // votes[i, c] = sum over the neighbours j of query i that have class c of exp(s_ij / T)
          const votes = labels
            .indexSelect(0, indices.flatten())
            .view([-1, neighbours, numClasses])
            .mul(values.div(temperature).exp().unsqueeze(2))
            .sum(1);
          predictions.push(...(votes.argmax(1).toArray() as number[]));
        });
      }
      return predictions;
    }),
  );
}

/** The fraction of queries whose k-NN prediction equals their label. */
export function knnAccuracy(
  gallery: Tensor,
  galleryLabels: readonly number[],
  queries: Tensor,
  queryLabels: readonly number[],
  options: KnnOptions,
): number {
  if (queryLabels.length !== queries.shape[0])
    throw invalidArg(
      'knnAccuracy',
      'queryLabels',
      `${queries.shape[0]} labels, one per query row`,
      `${queryLabels.length}`,
    );
  if (queryLabels.length === 0) throw invalidArg('knnAccuracy', 'queries', 'at least one row', 'none');
  const predicted = knnPredict(gallery, galleryLabels, queries, options);
  return predicted.filter((p, i) => p === queryLabels[i]).length / predicted.length;
}
