/**
 * `infoNCE`: the multi-positive InfoNCE loss, native (native/loss.cc): the similarity matrix is walked in strips of
 * rows, so the extra memory is O(V d + stripRows V), never O(V²); numerically stable at small temperatures, on any
 * device, taking part in autograd. Definition and gradient: lib/loss/reference.ts.
 */
import { checkBool, checkInt, checkNumber, checkOneOf, checkOptions, invalidArg } from '../errors.js';
import { native } from '../native.js';
import { normalize as l2normalize } from '../nn/functional.js';
import { tensor } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import { Tensor } from '../torch/tensor.js';
import { checkBatch } from './reference.js';

export interface InfoNCELossOptions {
  /** tau > 0. Default 0.1. */
  temperature?: number;
  /** Each anchor's positive terms summed (the paper) or averaged (SupCon's L_out, the default). */
  positives?: 'sum' | 'mean';
  /** Which views may be anchors (default all): a bool tensor [V] or booleans. Others only appear in denominators. */
  anchorMask?: Tensor | readonly boolean[];
  /** L2-normalise the embeddings first (default true). */
  normalize?: boolean;
  /** Rows of the similarity matrix computed at once (default: about 4 Mi similarities' worth, 16 MiB in float32). */
  stripRows?: number;
  /**
   * Accumulate the log-sum-exps, positive terms and reductions in float64 (default false: in z's dtype). The
   * similarities themselves come from GEMMs in z's dtype either way.
   */
  accumulateInFloat64?: boolean;
  /**
   * 'auto' (default): fused CPU loops for float32/float64 CPU tensors, ATen ops on the strip elsewhere (CUDA).
   * 'aten': ATen ops everywhere, the device-generic path, selectable on CPU to check it.
   */
  kernel?: 'auto' | 'aten';
}

const OP = 'infoNCE';

/** The first view whose embedding is not finite, or -1. */
function firstNonFinite(z: Tensor): number {
  return tidy(() =>
    z
      .isfinite()
      .logicalNot()
      .sum(1)
      .toNumbers()
      .findIndex((n) => n > 0),
  );
}

/**
 * A batch's location ids (int64 [V]) and anchor flags (bool [V]; default: every view an anchor) as tensors on z's
 * device, one per view of z [V, d]: what both losses (one process, across ranks) take.
 */
export function idsAndMask(
  op: string,
  z: Tensor,
  groups: Tensor | readonly number[],
  anchorMask: Tensor | readonly boolean[] | undefined,
): { ids: Tensor; mask: Tensor } {
  if (!(z instanceof Tensor) || z.ndim !== 2) throw invalidArg(op, 'z', 'a [V, d] tensor', z);
  const [v] = z.shape,
    device = z.device;
  const ids = (groups instanceof Tensor ? groups : tensor(groups as number[], { dtype: 'int64' })).to({
    dtype: 'int64',
    device,
  });
  const mask = (
    anchorMask === undefined
      ? tensor(new Array<boolean>(v).fill(true))
      : anchorMask instanceof Tensor
        ? anchorMask
        : tensor([...anchorMask])
  ).to({ device });
  if (ids.ndim !== 1 || ids.shape[0] !== v) throw invalidArg(op, 'groups', `one location id per view (${v})`, groups);
  if (mask.ndim !== 1 || mask.shape[0] !== v)
    throw invalidArg(op, 'anchorMask', `one flag per view (${v})`, anchorMask);
  return { ids, mask };
}

/**
 * The loss over a batch of V embeddings z [V, d] with their location ids `groups` ([V] int64 tensor or numbers):
 * a scalar tensor. Views of one location are each other's positives; every other view is a negative.
 */
export function infoNCE(z: Tensor, groups: Tensor | readonly number[], options: InfoNCELossOptions = {}): Tensor {
  const {
    temperature = 0.1,
    positives = 'mean',
    anchorMask,
    normalize = true,
    stripRows,
    accumulateInFloat64 = false,
    kernel = 'auto',
  } = checkOptions(OP, options);
  if (!(checkNumber(OP, 'temperature', temperature) > 0) || !Number.isFinite(temperature))
    throw invalidArg(OP, 'temperature', 'a finite number > 0', temperature);
  checkOneOf(OP, 'positives', positives, ['sum', 'mean']);
  checkBool(OP, 'normalize', normalize);
  if (stripRows !== undefined && checkInt(OP, 'stripRows', stripRows) < 1)
    throw invalidArg(OP, 'stripRows', 'a positive integer', stripRows);
  checkBool(OP, 'accumulateInFloat64', accumulateInFloat64);
  checkOneOf(OP, 'kernel', kernel, ['auto', 'aten']);
  return tidy(() => {
    const { ids, mask } = idsAndMask(OP, z, groups, anchorMask);
    checkBatch(OP, ids.toNumbers(), mask.toBooleans());
    const bad = firstNonFinite(z);
    if (bad >= 0) throw invalidArg(OP, `z (view ${bad})`, 'finite', 'NaN or an infinity');
    const u = normalize ? l2normalize(z, { dim: 1 }) : z;
    return new Tensor(
      native.infoNCE(
        u.handle,
        ids.handle,
        mask.handle,
        temperature,
        positives === 'sum',
        stripRows ?? 0,
        accumulateInFloat64,
        kernel === 'auto',
      ),
    );
  });
}
