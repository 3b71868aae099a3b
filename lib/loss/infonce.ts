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

/** The options `infoNCE` and `infoNCEAcrossRanks` share, checked, with their defaults. */
export function lossOptions(op: string, options: Omit<InfoNCELossOptions, 'anchorMask'>) {
  const {
    temperature = 0.1,
    positives = 'mean',
    normalize = true,
    stripRows,
    accumulateInFloat64 = false,
    kernel = 'auto',
  } = options;
  if (!(checkNumber(op, 'temperature', temperature) > 0) || !Number.isFinite(temperature))
    throw invalidArg(op, 'temperature', 'a finite number > 0', temperature);
  checkOneOf(op, 'positives', positives, ['sum', 'mean']);
  checkBool(op, 'normalize', normalize);
  if (stripRows !== undefined && checkInt(op, 'stripRows', stripRows) < 1)
    throw invalidArg(op, 'stripRows', 'a positive integer', stripRows);
  checkBool(op, 'accumulateInFloat64', accumulateInFloat64);
  checkOneOf(op, 'kernel', kernel, ['auto', 'aten']);
  return { temperature, positives, normalize, stripRows, accumulateInFloat64, kernel };
}

/**
 * A batch's location ids and anchor flags, one per view of z [V, d]: as host arrays (read from the device when given
 * as tensors, which costs a host read each) and as tensors on z's device (copied there when given as arrays).
 */
export function batchMeta(
  op: string,
  z: Tensor,
  groups: Tensor | readonly number[],
  anchorMask: Tensor | readonly boolean[] | undefined,
): { ids: Tensor; mask: Tensor; hostIds: number[]; hostMask: boolean[] } {
  if (!(z instanceof Tensor) || z.ndim !== 2) throw invalidArg(op, 'z', 'a [V, d] tensor', z);
  const [v] = z.shape,
    device = z.device;
  const isTensor = groups instanceof Tensor;
  if (!isTensor && !Array.isArray(groups)) throw invalidArg(op, 'groups', 'a tensor or an array of ids', groups);
  if (isTensor ? groups.ndim !== 1 || groups.shape[0] !== v : groups.length !== v)
    throw invalidArg(op, 'groups', `one location id per view (${v})`, groups);
  const maskIsTensor = anchorMask instanceof Tensor;
  if (anchorMask !== undefined && !maskIsTensor && !Array.isArray(anchorMask))
    throw invalidArg(op, 'anchorMask', 'a bool tensor or an array of booleans', anchorMask);
  if (
    anchorMask !== undefined &&
    (maskIsTensor ? anchorMask.ndim !== 1 || anchorMask.shape[0] !== v : anchorMask.length !== v)
  )
    throw invalidArg(op, 'anchorMask', `one flag per view (${v})`, anchorMask);
  const hostIds = isTensor ? groups.toNumbers() : [...groups];
  const hostMask =
    anchorMask === undefined
      ? new Array<boolean>(v).fill(true)
      : maskIsTensor
        ? anchorMask.toBooleans()
        : anchorMask.map(Boolean);
  const ids = isTensor ? groups.to({ dtype: 'int64', device }) : tensor(hostIds, { dtype: 'int64', device });
  const mask = maskIsTensor ? anchorMask.to({ dtype: 'bool', device }) : tensor(hostMask, { device });
  return { ids, mask, hostIds, hostMask };
}

/**
 * The native loss over z [V, d] with ids and anchor flags on its device, `absent` (bool [V] or undefined) marking
 * padding rows that are in no denominator: what both losses call once their batch is checked.
 */
export function lossOf(
  z: Tensor,
  ids: Tensor,
  mask: Tensor,
  absent: Tensor | undefined,
  options: ReturnType<typeof lossOptions>,
): Tensor {
  return tidy(() => {
    const u = options.normalize ? l2normalize(z, { dim: 1 }) : z;
    return new Tensor(
      native.infoNCE(
        u.handle,
        ids.handle,
        mask.handle,
        options.temperature,
        options.positives === 'sum',
        options.stripRows ?? 0,
        options.accumulateInFloat64,
        options.kernel === 'auto',
        absent?.handle,
      ),
    );
  });
}

/**
 * The loss over a batch of V embeddings z [V, d] with their location ids `groups` ([V] int64 tensor or numbers):
 * a scalar tensor. Views of one location are each other's positives; every other view is a negative. The batch is
 * checked on the host (every anchor has a positive): given as arrays, ids and flags are not read back from the device.
 * Embeddings that are not finite give a loss that is not: check it where it is read.
 */
export function infoNCE(z: Tensor, groups: Tensor | readonly number[], options: InfoNCELossOptions = {}): Tensor {
  const { anchorMask, ...rest } = checkOptions(OP, options);
  const resolved = lossOptions(OP, rest);
  return tidy(() => {
    const { ids, mask, hostIds, hostMask } = batchMeta(OP, z, groups, anchorMask);
    checkBatch(OP, hostIds, hostMask);
    return lossOf(z, ids, mask, undefined, resolved);
  });
}
