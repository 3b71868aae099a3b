/** Random batches for the InfoNCE tests: one generator, so every implementation is checked on the same kind of data. */
import { randomArray, rng } from './reference.js';

export interface BatchLimits {
  /** V is 2 + floor(x * (maxViews - 1)) for x uniform in [0, 1), raised to `skew` (3 favours small batches). */
  maxViews: number;
  /** d is 1 + floor(x * maxDim), x raised to skew - 1, and at most 2e7 / V² so the O(V² d) reference stays quick. */
  maxDim: number;
  skew?: number;
}

/**
 * Views of a few locations (uneven counts, each location seen at least twice), ~20% of them Negative (not anchors,
 * view 0 always is an anchor), in half the batches some views of locations seen once (a Negative whose other
 * modalities are missing: no positive, never an anchor), tau in [0.05, 1], both positive modes, normalisation on
 * ~80% of the time, and a strip height that may or may not divide V.
 */
export function randomBatch(seed: number, { maxViews, maxDim, skew = 1 }: BatchLimits) {
  const r = rng(seed);
  const v = 2 + Math.floor(r() ** skew * (maxViews - 1));
  const d = Math.max(1, Math.min(1 + Math.floor(r() ** Math.max(1, skew - 1) * maxDim), Math.floor(2e7 / (v * v))));
  const locations = 1 + Math.floor(r() * Math.floor(v / 2));
  const singles = r() < 0.5 ? 0.3 : 0; // the share of the views beyond two per location that are a location's only one
  const single = Array.from({ length: v }, (_, i) => i >= 2 * locations && r() < singles);
  const groups = single.map((alone, i) =>
    alone ? locations + i : i < 2 * locations ? i % locations : Math.floor(r() * locations),
  );
  const anchorMask = single.map((alone) => !alone && r() < 0.8);
  anchorMask[0] = true;
  return {
    z: randomArray(v * d, seed + 1),
    shape: [v, d] as [number, number],
    groups,
    anchorMask,
    temperature: 0.05 + r() * 0.95,
    positives: r() < 0.5 ? ('sum' as const) : ('mean' as const),
    normalize: r() < 0.8,
    stripRows: r() < 0.3 ? v : 1 + Math.floor(r() * (v + 4)),
  };
}
