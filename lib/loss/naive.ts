/**
 * The multi-positive InfoNCE loss composed from tensor ops the obvious way: the full V x V similarity matrix and a
 * masked log-softmax. O(V²) memory; kept as the baseline the native loss is benchmarked against and as a second
 * check of it. Same definition as `infoNCEReference` (lib/loss/reference.ts).
 */
import { normalize as l2normalize, logSoftmax } from '../nn/functional.js';
import { arange, where } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';

export interface NaiveInfoNCEOptions {
  temperature?: number;
  positives?: 'sum' | 'mean';
  /** bool [V]: which views may be anchors (default: all). */
  anchorMask?: Tensor;
  normalize?: boolean;
}

/** z [V, d] float, groups [V] int64: the mean over anchors of each anchor's loss, as a scalar tensor. */
export function infoNCENaive(z: Tensor, groups: Tensor, options: NaiveInfoNCEOptions = {}): Tensor {
  const { temperature = 0.1, positives = 'mean', anchorMask, normalize = true } = options;
  return tidy(() => {
    const v = z.shape[0];
    const u = normalize ? l2normalize(z, { dim: 1 }) : z;
    const ids = arange(v, undefined, 1, { device: z.device });
    const self = ids.unsqueeze(1).eq(ids.unsqueeze(0));
    const logProb = logSoftmax(where(self, -Infinity, u.matmul(u.t()).div(temperature)), 1);
    const positive = groups.unsqueeze(1).eq(groups.unsqueeze(0)).mul(self.logicalNot());
    const perAnchor = where(positive, logProb, 0).sum(1).neg();
    const weighted = positives === 'sum' ? perAnchor : perAnchor.div(positive.sum(1));
    if (anchorMask === undefined) return weighted.mean();
    return where(anchorMask, weighted, 0).sum().div(anchorMask.sum());
  });
}
