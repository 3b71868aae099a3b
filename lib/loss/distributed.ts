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
import { checkOptions, invalidArg } from '../errors.js';
import { cat, tensor, zeros } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import { Tensor } from '../torch/tensor.js';
import { idsAndMask, infoNCE, type InfoNCELossOptions } from './infonce.js';

/** What the loss needs of a process group (lib/distributed's ProcessGroup). */
export interface GatherGroup {
  readonly rank: number;
  readonly worldSize: number;
  /** The ranks' tensors (equal shapes) concatenated along dim 0; differentiable. */
  allGather(x: Tensor): Tensor;
}

const OP = 'infoNCEAcrossRanks';

/**
 * This rank's share of the loss over every rank's views: z [V_r, d] and `groups` (location ids, [V_r]) are this rank's;
 * V_r may differ between ranks. Ids need only be unique within a rank: rank r's become (r, id). `anchorMask` is this
 * rank's too. Returns a scalar tensor; the mean over ranks of its value is the loss of the concatenated batch.
 */
export function infoNCEAcrossRanks(
  z: Tensor,
  groups: Tensor | readonly number[],
  group: GatherGroup,
  options: InfoNCELossOptions = {},
): Tensor {
  const { anchorMask, ...rest } = checkOptions(OP, options);
  return tidy(() => {
    const { ids, mask } = idsAndMask(OP, z, groups, anchorMask);
    const [v, d] = z.shape,
      device = z.device;
    // Ranks may hold different numbers of views (skipped samples): gather padded to the largest, keep the real rows.
    const sizes = group.allGather(tensor([v], { dtype: 'int64', device })).toNumbers();
    const most = Math.max(...sizes);
    const pad = <T extends Tensor>(t: T, fill: () => Tensor) => (most > v ? cat([t, fill()]) : t);
    const keep = tensor(
      sizes.flatMap((n, r) => Array.from({ length: n }, (_, i) => r * most + i)),
      { dtype: 'int64', device },
    );
    const all = group.allGather(pad(z, () => zeros([most - v, d], { dtype: z.dtype, device }))).indexSelect(0, keep);
    // Ids as (rank, id) in one int64 (ids below 2^40, ranks below 2^23), gathered with the anchor flags in one call.
    const meta = cat([ids.add(group.rank * 2 ** 40).reshape([v, 1]), mask.to({ dtype: 'int64' }).reshape([v, 1])], 1);
    const allMeta = group
      .allGather(pad(meta, () => zeros([most - v, 2], { dtype: 'int64', device })))
      .indexSelect(0, keep);
    const allIds = allMeta.select(1, 0);
    const flags = allMeta.select(1, 1).toBooleans();
    const owner = sizes.flatMap((n, r) => new Array<number>(n).fill(r));
    const own = flags.map((f, i) => f && owner[i] === group.rank);
    const anchorsOwn = own.filter(Boolean).length,
      anchorsAll = flags.filter(Boolean).length;
    if (anchorsAll === 0) throw invalidArg(OP, 'anchorMask', 'at least one anchor on some rank', 'none on any');
    // A rank without anchors still takes part in the gather's backward, with a zero gradient.
    if (anchorsOwn === 0) return all.sum().mul(0);
    return infoNCE(all, allIds, { ...rest, anchorMask: own }).mul((group.worldSize * anchorsOwn) / anchorsAll);
  });
}
