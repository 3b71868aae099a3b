/**
 * The multi-positive InfoNCE loss in plain TypeScript: float64, no LibTorch. It exists to check the native loss (and
 * documents the definition); it is O(V² d) and allocates V x V, so it is not for training.
 *
 * A batch holds V embeddings z_i (rows of a [V, d] array), each with a location id g_i and whether it may be an
 * anchor. With s_ij = <z_i, z_j> / tau (on L2-normalised z when `normalize`), P(i) = {j != i : g_j = g_i} and
 * Omega(i) = {j != i}:
 *
 *   L_i = - sum_{p in P(i)} w_i (s_ip - log sum_{a in Omega(i)} exp(s_ia)),  L = mean of L_i over the anchors,
 *
 * with w_i = 1 for `positives: 'sum'` (the paper's form) or 1 / |P(i)| for 'mean' (SupCon's L_out). Views that are
 * not anchors (METER-ML's Negative class) stay in every anchor's denominator.
 *
 * Gradient: for anchor i, dL_i/ds_ij = W_i p_ij - w_i [j in P(i)], where p_ij is the softmax of s_i. over Omega(i)
 * and W_i = |P(i)| w_i; then dL/dz_i = (1/tau) sum_j (G_ij + G_ji) z_j / (number of anchors), and through the
 * normalisation dL/dz_raw = (g - u (u . g)) / ||z_raw||.
 */
import { checkBool, checkNumber, checkOneOf, checkOptions, invalidArg } from '../errors.js';

export interface InfoNCEOptions {
  /** tau > 0. Default 0.1. */
  temperature?: number;
  /** Whether each anchor's positive terms are summed (the paper) or averaged (SupCon). Default 'mean'. */
  positives?: 'sum' | 'mean';
  /** Which views may be anchors (default: all). The others only ever appear in denominators. */
  anchorMask?: ArrayLike<boolean>;
  /** L2-normalise the embeddings inside the loss. Default true. */
  normalize?: boolean;
}

export interface InfoNCEResult {
  loss: number;
  /** dL/dz, row-major [V, d]. */
  grad: Float64Array;
}

const OP = 'infoNCEReference';

function checkInputs(
  z: ArrayLike<number>,
  shape: readonly [number, number],
  groups: ArrayLike<number>,
  anchorMask: ArrayLike<boolean> | undefined,
): void {
  const [v, d] = shape;
  if (!Number.isSafeInteger(v) || !Number.isSafeInteger(d) || v < 1 || d < 1)
    throw invalidArg(OP, 'shape', 'a positive [V, d] pair', shape);
  if (z.length !== v * d) throw invalidArg(OP, 'z', `${v * d} values for shape [${v}, ${d}]`, `${z.length} values`);
  if (groups.length !== v) throw invalidArg(OP, 'groups', `one location id per view (${v})`, `${groups.length} ids`);
  if (anchorMask !== undefined && anchorMask.length !== v)
    throw invalidArg(OP, 'anchorMask', `one flag per view (${v})`, `${anchorMask.length} flags`);
  for (let i = 0; i < v * d; i++) {
    if (!Number.isFinite(z[i]))
      throw invalidArg(OP, `z (view ${Math.floor(i / d)}, component ${i % d})`, 'finite', z[i]);
  }
}

/** Rows of z, L2-normalised when asked, with their original norms (for the backward pass). */
function rows(z: ArrayLike<number>, v: number, d: number, normalize: boolean): { u: Float64Array[]; norms: number[] } {
  const u: Float64Array[] = [];
  const norms: number[] = [];
  for (let i = 0; i < v; i++) {
    const row = Float64Array.from({ length: d }, (_, k) => z[i * d + k]);
    const norm = Math.hypot(...row);
    if (normalize && norm === 0)
      throw invalidArg(OP, `z (view ${i})`, 'a non-zero embedding when normalize is on', 'all zeros');
    norms.push(norm);
    u.push(normalize ? row.map((x) => x / norm) : row);
  }
  return { u, norms };
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, x, k) => s + x * b[k], 0);

/**
 * The batch's own consistency, shared by every implementation of the loss: at least one anchor, and a positive (a
 * view of the same location) for each anchor. Returns the anchor flags.
 */
export function checkBatch(
  op: string,
  groups: ArrayLike<number | bigint>,
  anchorMask: ArrayLike<boolean> | undefined,
): boolean[] {
  const anchors = Array.from({ length: groups.length }, (_, i) => anchorMask === undefined || Boolean(anchorMask[i]));
  if (!anchors.includes(true)) throw invalidArg(op, 'anchorMask', 'at least one anchor', 'none');
  const counts = new Map<number | bigint, number>();
  for (let i = 0; i < groups.length; i++) counts.set(groups[i], (counts.get(groups[i]) ?? 0) + 1);
  const lonely = anchors.findIndex((a, i) => a && counts.get(groups[i]) === 1);
  if (lonely >= 0)
    throw invalidArg(
      op,
      `groups (view ${lonely})`,
      'shared by at least one other view: an anchor needs a positive',
      groups[lonely],
    );
  return anchors;
}

export function infoNCEReference(
  z: ArrayLike<number>,
  shape: readonly [number, number],
  groups: ArrayLike<number>,
  options: InfoNCEOptions = {},
): InfoNCEResult {
  const { temperature = 0.1, positives = 'mean', anchorMask, normalize = true } = checkOptions(OP, options);
  if (!(checkNumber(OP, 'temperature', temperature) > 0) || !Number.isFinite(temperature))
    throw invalidArg(OP, 'temperature', 'a finite number > 0', temperature);
  checkOneOf(OP, 'positives', positives, ['sum', 'mean']);
  checkBool(OP, 'normalize', normalize);
  checkInputs(z, shape, groups, anchorMask);
  const [v, d] = shape;
  const anchors = checkBatch(OP, groups, anchorMask);
  const { u, norms } = rows(z, v, d, normalize);

  // G[i][j] = dL/ds_ij (before dividing by the anchor count), accumulated row by row.
  const G = Array.from({ length: v }, () => new Float64Array(v));
  let total = 0;
  let count = 0;
  for (let i = 0; i < v; i++) {
    if (!anchors[i]) continue;
    const s = u.map((uj) => dot(u[i], uj) / temperature);
    const others = s.map((_, j) => j).filter((j) => j !== i);
    const pos = others.filter((j) => groups[j] === groups[i]);
    const max = Math.max(...others.map((j) => s[j]));
    const lse = max + Math.log(others.reduce((acc, j) => acc + Math.exp(s[j] - max), 0));
    const w = positives === 'sum' ? 1 : 1 / pos.length;
    total += -w * pos.reduce((acc, p) => acc + s[p] - lse, 0);
    count += 1;
    for (const j of others) G[i][j] += w * pos.length * Math.exp(s[j] - lse);
    for (const p of pos) G[i][p] -= w;
  }

  const grad = new Float64Array(v * d);
  for (let i = 0; i < v; i++) {
    const g = new Float64Array(d);
    for (let j = 0; j < v; j++) {
      const c = (G[i][j] + G[j][i]) / (temperature * count);
      if (c !== 0) for (let k = 0; k < d; k++) g[k] += c * u[j][k];
    }
    // Through u = z / ||z||: the component along u vanishes, the rest scales by 1 / ||z||.
    const along = normalize ? dot(u[i], g) : 0;
    for (let k = 0; k < d; k++) grad[i * d + k] = normalize ? (g[k] - u[i][k] * along) / norms[i] : g[k];
  }
  return { loss: total / count, grad };
}
