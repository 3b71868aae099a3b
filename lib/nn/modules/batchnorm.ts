/**
 * `torch.nn.BatchNorm1d` and `torch.nn.BatchNorm2d`, over their common base (PyTorch's `_BatchNorm`), and their
 * synchronised form across data-parallel ranks (`convertSyncBatchNorm`).
 */
import { checkBool, checkNumber, checkOptions, invalidArg } from '../../errors.js';
import { noGrad } from '../../torch/autograd.js';
import { cat, empty, ones, tensor, zeros } from '../../torch/creation.js';
import { Tensor } from '../../torch/tensor.js';
import { batchNorm } from '../functional.js';
import { ones_, zeros_ } from '../init.js';
import { Module } from '../module.js';
import { checkInput, checkPositiveInt } from './utils.js';

/** What synchronised BatchNorm needs of a process group (lib/distributed's ProcessGroup). */
export interface StatsGroup {
  readonly worldSize: number;
  /** The sum over ranks, differentiable. */
  allReduceSum(x: Tensor): Tensor;
}

export interface BatchNormOptions {
  eps?: number;
  /** Weight of the new batch in the running statistics; null for a cumulative average. Default 0.1. */
  momentum?: number | null;
  /** Learn a per-channel scale (`weight`) and shift (`bias`). Default true. */
  affine?: boolean;
  /** Keep running statistics for eval mode; without them eval mode normalises by batch statistics too. Default true. */
  trackRunningStats?: boolean;
}

/**
 * Normalises each channel (dim 1) by batch statistics in training mode and by running statistics in eval mode. Buffers
 * `running_mean`, `running_var` and the int64 scalar `num_batches_tracked`, counted in every training forward.
 */
export abstract class BatchNorm extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  /** The input ranks the subclass accepts. */
  protected abstract readonly inputRanks: readonly number[];
  /** Set by convertSyncBatchNorm: training statistics over every rank's batch (PyTorch's SyncBatchNorm). */
  syncGroup: StatsGroup | null = null;

  constructor(
    readonly numFeatures: number,
    options: BatchNormOptions = {},
  ) {
    const op = new.target.name;
    const { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true } = checkOptions(op, options);
    checkPositiveInt(op, 'numFeatures', numFeatures);
    if (momentum !== null) checkNumber(op, 'momentum', momentum);
    super();
    this.eps = checkNumber(op, 'eps', eps);
    this.momentum = momentum;
    this.affine = checkBool(op, 'affine', affine);
    this.trackRunningStats = checkBool(op, 'trackRunningStats', trackRunningStats);
    this.weight = this.registerParameter('weight', affine ? empty([numFeatures]) : null);
    this.bias = this.registerParameter('bias', affine ? empty([numFeatures]) : null);
    this.runningMean = this.registerBuffer('running_mean', trackRunningStats ? zeros([numFeatures]) : null);
    this.runningVar = this.registerBuffer('running_var', trackRunningStats ? ones([numFeatures]) : null);
    this.numBatchesTracked = this.registerBuffer(
      'num_batches_tracked',
      trackRunningStats ? tensor(0, { dtype: 'int64' }) : null,
    );
    this.resetParameters();
  }

  resetRunningStats(): void {
    noGrad(() => {
      this.runningMean?.zero_();
      this.runningVar?.fill_(1);
      this.numBatchesTracked?.zero_();
    });
  }

  /** Running statistics reset, weight 1 and bias 0. */
  resetParameters(): void {
    this.resetRunningStats();
    if (this.weight !== null) ones_(this.weight);
    if (this.bias !== null) zeros_(this.bias);
  }

  forward(x: Tensor): Tensor {
    const op = this.constructor.name;
    const ranks = this.inputRanks;
    checkInput(
      op,
      x,
      `a ${ranks.join('-D or ')}-D tensor with ${this.numFeatures} channels (dim 1)`,
      (s) => ranks.includes(s.length) && s[1] === this.numFeatures,
    );
    if (this.training && x.numel() === this.numFeatures) {
      throw invalidArg(op, 'input', 'more than 1 value per channel in training mode', x);
    }
    let momentum = this.momentum ?? 0;
    if (this.training && this.numBatchesTracked !== null) {
      this.numBatchesTracked.add_(1);
      if (this.momentum === null) momentum = 1 / this.numBatchesTracked.item();
    }
    // Without running statistics, eval mode too normalises by the batch.
    const useBatchStats = this.training || this.runningMean === null;
    if (useBatchStats && this.syncGroup && this.syncGroup.worldSize > 1)
      return this.#syncForward(x, this.syncGroup, momentum);
    return batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight,
      bias: this.bias,
      training: useBatchStats,
      momentum,
      eps: this.eps,
    });
  }

  /**
   * Statistics over every rank's batch, in two passes (sum, then squared deviations from the global mean) for the
   * accuracy of the one-process kernel; differentiable through the group's all-reduce, so the gradients are those of
   * one batch holding every rank's.
   */
  #syncForward(x: Tensor, group: StatsGroup, momentum: number): Tensor {
    const c = this.numFeatures;
    const dims = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2)];
    const shape = [1, c, ...Array.from({ length: x.ndim - 2 }, () => 1)];
    const totals = group.allReduceSum(
      cat([x.sum(dims), tensor([x.numel() / c], { dtype: x.dtype, device: x.device })]),
    );
    const count = totals.narrow(0, c, 1);
    const mean = totals.narrow(0, 0, c).div(count);
    const centred = x.sub(mean.reshape(shape));
    const variance = group.allReduceSum(centred.mul(centred).sum(dims)).div(count);
    let y = centred.mul(variance.add(this.eps).rsqrt().reshape(shape));
    if (this.weight && this.bias) y = y.mul(this.weight.reshape(shape)).add(this.bias.reshape(shape));
    if (this.runningMean && this.runningVar) {
      // The running variance is unbiased: n / (n - 1), on the device (reading n would wait for it every step).
      noGrad(() => {
        const unbiased = count.div(count.sub(1).clamp({ min: 1 })).mul(momentum);
        this.runningMean!.mul_(1 - momentum).add_(mean.detach().mul(momentum));
        this.runningVar!.mul_(1 - momentum).add_(variance.detach().mul(unbiased));
      });
    }
    return y;
  }
}

/**
 * PyTorch's `SyncBatchNorm.convert_sync_batchnorm`, in place: every BatchNorm of `module` normalises by statistics
 * over all ranks of `group` in training mode (no change in eval mode, nor with one rank). Returns `module`.
 */
export function convertSyncBatchNorm<M extends Module>(module: M, group: StatsGroup | null): M {
  for (const m of module.modules()) if (m instanceof BatchNorm) m.syncGroup = group;
  return module;
}

/** Batch normalisation of [N, C] or [N, C, L] inputs (the projection heads' hidden layers). */
export class BatchNorm1d extends BatchNorm {
  protected readonly inputRanks = [2, 3];
}

/** Batch normalisation of [N, C, H, W] inputs. */
export class BatchNorm2d extends BatchNorm {
  protected readonly inputRanks = [4];
}
