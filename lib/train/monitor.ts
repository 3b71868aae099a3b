/**
 * A collapse monitor for contrastive pre-training (a falling loss can hide a collapse): on the L2-normalised
 * embeddings of a batch, per modality the standard deviation of each dimension across the batch, averaged (about
 * 1/sqrt(d) when spread over the sphere, 0 when collapsed); and Wang & Isola's alignment (mean squared distance
 * between positives, lower is better) and uniformity (log of the mean of exp(-2 x squared distance) over pairs,
 * lower is more uniform).
 *
 * Everything is computed on the embeddings' device in O(V d), but uniformity, which is O(M² d) on at most
 * UNIFORMITY_VIEWS views (all of them below that, else that many evenly spaced), so the monitor neither grows with
 * the square of the batch nor reads anything until its values are wanted: one read of a small vector.
 */
import { normalize } from '../nn/functional.js';
import { arange, cat, stack } from '../torch/creation.js';
import { noGrad } from '../torch/autograd.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
import type { EmbeddingHealth } from '../runs/records.js';
import { modalityRows, type ViewLayout } from './views.js';

/** The most views uniformity is computed on (a 1024 x 1024 product, whatever the batch). */
export const UNIFORMITY_VIEWS = 1024;

/**
 * The monitor's values for embeddings z [T x N, d] laid out as `layout` says, on z's device: a float64 tensor
 * [modalities + 2] (each modality's std, then alignment and uniformity) that `readHealth` turns into the record.
 */
export function embeddingHealthOnDevice(z: Tensor, layout: ViewLayout, n: number): Tensor {
  return tidy(() =>
    noGrad(() => {
      const unit = normalize(z.detach().to({ dtype: 'float64' }), { dim: 1 });
      const [v, d] = unit.shape,
        t = layout.perLocation;
      const std = layout.modalities.map((m) => {
        const [start, end] = modalityRows(layout, m, n);
        return unit
          .narrow(0, start, end - start)
          .std(0, { unbiased: false })
          .mean();
      });
      // Row r is location r % n: over ordered pairs of a location's T views, sum |a - b|² = 2T(T-1) - 2(|s|² - T),
      // s the sum of its views.
      const sums = unit.reshape([t, n, d]).sum(0);
      const positiveDistances = sums
        .mul(sums)
        .sum()
        .sub(n * t)
        .mul(-2)
        .add(2 * n * t * (t - 1));
      const alignment = positiveDistances.div(n * t * (t - 1));
      const m = Math.min(v, UNIFORMITY_VIEWS);
      const sample =
        m === v
          ? unit
          : unit.indexSelect(
              0,
              arange(0, m, 1, { dtype: 'float64', device: unit.device })
                .mul(v / m)
                .long(),
            );
      // |a - b|² = 2 - 2 a.b on the unit sphere; the diagonal's M terms are exp(0) = 1, taken out of the sum.
      // (in place: one M x M buffer, not five)
      const kernel = sample.mm(sample.t()).mul_(-2).add_(2).clamp_({ min: 0 }).mul_(-2).exp();
      const uniformity = kernel
        .sum()
        .sub(m)
        .div(m * (m - 1))
        .log();
      return cat([stack(std), alignment.reshape([1]), uniformity.reshape([1])]);
    }),
  );
}

/** The record of `embeddingHealthOnDevice`'s values, read (`toNumbers()`). */
export function readHealth(values: readonly number[], layout: ViewLayout): EmbeddingHealth {
  const k = layout.modalities.length;
  return {
    std: Object.fromEntries(layout.modalities.map((m, i) => [m, values[i]])),
    alignment: values[k],
    uniformity: values[k + 1],
  };
}

/** The monitor's values for z, computed on its device and read (one host read). */
export function embeddingHealth(z: Tensor, layout: ViewLayout, n: number): EmbeddingHealth {
  using values = embeddingHealthOnDevice(z, layout, n);
  return readHealth(values.toNumbers(), layout);
}
