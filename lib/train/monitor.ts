/**
 * A collapse monitor for contrastive pre-training (a falling loss can hide a collapse): on the L2-normalised
 * embeddings of a batch, per modality the standard deviation of each dimension across the batch, averaged (about
 * 1/sqrt(d) when spread over the sphere, 0 when collapsed); and Wang & Isola's alignment (mean squared distance
 * between positives, lower is better) and uniformity (log of the mean of exp(-2 x squared distance) over all pairs,
 * lower is more uniform).
 */
import { normalize } from '../nn/functional.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
import type { EmbeddingHealth } from '../runs/records.js';
import { modalityRows, type ViewLayout } from './views.js';

/** The monitor's values for embeddings z [T x N, d] laid out as `layout` says (no gradient is recorded). */
export function embeddingHealth(z: Tensor, layout: ViewLayout, n: number): EmbeddingHealth {
  return tidy(() => {
    const unit = normalize(z.detach(), { dim: 1 });
    const std = Object.fromEntries(
      layout.modalities.map((m) => {
        const [start, end] = modalityRows(layout, m, n);
        return [
          m,
          unit
            .narrow(0, start, end - start)
            .std(0, { unbiased: false })
            .mean()
            .item() as number,
        ];
      }),
    );
    const v = unit.shape[0];
    // |a - b|^2 = 2 - 2 a.b on the unit sphere; the V x V pairs are few (V is a batch's views), summed here.
    const dot = unit.mm(unit.t()).toTypedArray() as Float32Array;
    let aligned = 0,
      positives = 0,
      spread = 0;
    for (let i = 0; i < v; i++) {
      for (let j = 0; j < v; j++) {
        if (i === j) continue;
        const squared = Math.max(0, 2 - 2 * dot[i * v + j]);
        spread += Math.exp(-2 * squared);
        if (i % n === j % n) [aligned, positives] = [aligned + squared, positives + 1];
      }
    }
    const alignment = aligned / positives,
      uniformity = Math.log(spread / (v * (v - 1)));
    return { std, alignment, uniformity };
  });
}
