/**
 * `infoNCEAcrossRanks`: the multi-positive InfoNCE loss with global negatives in data-parallel training. Every rank's
 * embeddings are gathered (differentiably), so each anchor meets the views of all ranks; each rank takes the anchors
 * of its own rows, weighted so that the mean of the ranks' losses is the one-process loss over the concatenated batch,
 * and, with the gradients averaged over ranks (DDP's convention), so are the parameter gradients.
 *
 * The two classic mistakes are avoided by construction: gradients flow back to each rank's own rows through the
 * gather's backward (a sum over ranks, not a copy), and the self-mask and group ids are of the gathered matrix (rank
 * r's rows sit at its offset; ids are made unique per rank), not of the local batch.
 */
import { checkInt, checkOptions, invalidArg } from '../errors.js';
import { cat, tensor, zeros } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
import { batchMeta, type InfoNCELossOptions, lossOf, lossOptions } from './infonce.js';
import { checkBatch } from './reference.js';

/** What the loss needs of a process group (lib/distributed's ProcessGroup). */
export interface GatherGroup {
  readonly rank: number;
  readonly worldSize: number;
  /** The ranks' tensors (equal shapes) concatenated along dim 0; differentiable. */
  allGather(x: Tensor): Tensor;
}

export interface InfoNCEAcrossRanksOptions extends InfoNCELossOptions {
  /**
   * The most views any rank holds, the same on every rank (pre-training: the per-rank batch times the views per
   * location). Given, the loss reads nothing back from the device; otherwise the ranks' sizes are gathered and read.
   */
  maxViewsPerRank?: number;
}

const OP = 'infoNCEAcrossRanks';
// Ids become (rank, id) in one int64: ids below 2^39, ranks below 2^13 (exact in a double); padding rows take
// ids from 2^39 on, each its own.
const RANK_STRIDE = 2 ** 40,
  PADDING = 2 ** 39;

/**
 * This rank's share of the loss over every rank's views: z [V_r, d] and `groups` (location ids, [V_r]) are this rank's;
 * V_r may differ between ranks. Ids need only be unique within a rank. `anchorMask` is this rank's too. Returns a
 * scalar tensor; the mean over ranks of its value is the loss of the concatenated batch (0 when no rank has an
 * anchor).
 */
export function infoNCEAcrossRanks(
  z: Tensor,
  groups: Tensor | readonly number[],
  group: GatherGroup,
  options: InfoNCEAcrossRanksOptions = {},
): Tensor {
  const { anchorMask, maxViewsPerRank, ...rest } = checkOptions(OP, options);
  const resolved = lossOptions(OP, rest);
  return tidy(() => {
    const { hostIds, hostMask } = batchMeta(OP, z, groups, anchorMask);
    const anchorsOwn = hostMask.filter(Boolean).length;
    if (anchorsOwn > 0) checkBatch(OP, hostIds, hostMask); // positives are a rank's own views
    if (hostIds.some((id) => !(id >= 0 && id < PADDING))) throw invalidArg(OP, 'groups', `ids in [0, 2^39)`, groups);
    const [v, d] = z.shape,
      device = z.device;
    const most = maxViewsPerRank ?? Math.max(...group.allGather(tensor([v], { dtype: 'int64', device })).toNumbers());
    if (checkInt(OP, 'maxViewsPerRank', most) < v)
      throw invalidArg(OP, 'maxViewsPerRank', `at least this rank's ${v} views`, most);
    const padding = most - v;
    const padded = padding > 0 ? cat([z, zeros([padding, d], { dtype: z.dtype, device })]) : z;
    const all = group.allGather(padded);
    // Each row's (rank, id), anchor flag and presence, built here and gathered in one call.
    const base = group.rank * RANK_STRIDE;
    const meta = Array.from({ length: most }, (_, i) =>
      i < v ? [base + hostIds[i], hostMask[i] ? 1 : 0, 1] : [base + PADDING + i, 0, 0],
    ).flat();
    const allMeta = group.allGather(tensor(meta, { dtype: 'int64', device }).reshape([most, 3]));
    // This rank takes the anchors of its own rows; the others' are theirs.
    const own = new Array<boolean>(group.worldSize * most).fill(false);
    hostMask.forEach((a, i) => (own[group.rank * most + i] = a));
    // A rank without anchors still takes part in the gather's backward, with a zero gradient.
    if (anchorsOwn === 0) return all.sum().mul(0);
    const absent = allMeta.select(1, 2).eq(0);
    const anchorsAll = allMeta.select(1, 1).sum();
    return lossOf(all, allMeta.select(1, 0), tensor(own, { device }), absent, resolved)
      .mul(group.worldSize * anchorsOwn)
      .div(anchorsAll);
  });
}
