/**
 * LARS (You et al. 2017, "Large Batch Training of Convolutional Networks") in the form SimCLR trains with, run
 * natively. Per parameter: g = grad + weightDecay * p; trust = trustCoefficient * ||p|| / (||g|| + eps) when both
 * norms are positive, else 1; v = momentum * v + lr * trust * g; p -= v (Nesterov: p -= momentum * v + lr * trust * g).
 * A group with `exclude: true` gets neither weight decay nor adaptation: plain momentum SGD, SimCLR's treatment of
 * biases and BatchNorm parameters (see `larsParamGroups`).
 */
import { checkBool, checkOptions } from '../errors.js';
import type { Tensor } from '../torch/tensor.js';
import { Optimizer, type ParamGroupSpec, checkNonNegative } from './optimizer.js';

export interface LARSOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
  /** η in the paper, SimCLR's `eeta`: how far a layer's step may go relative to its weight norm. */
  trustCoefficient: number;
  /** Added to the gradient norm in the trust ratio's denominator; 0 is SimCLR's exact formula. */
  eps: number;
  nesterov: boolean;
  /** Skip weight decay and the trust ratio for this group's parameters. */
  exclude: boolean;
}

function validate(op: string, o: LARSOptions): void {
  checkNonNegative(op, 'lr', o.lr);
  checkNonNegative(op, 'momentum', o.momentum);
  checkNonNegative(op, 'weightDecay', o.weightDecay);
  checkNonNegative(op, 'trustCoefficient', o.trustCoefficient);
  checkNonNegative(op, 'eps', o.eps);
  checkBool(op, 'nesterov', o.nesterov);
  checkBool(op, 'exclude', o.exclude);
}

export class LARS extends Optimizer<LARSOptions> {
  /** `lr` is required; momentum 0.9, trustCoefficient 0.001 and no weight decay by default, as SimCLR's LARS. */
  constructor(
    params: readonly Tensor[] | readonly ParamGroupSpec<LARSOptions>[],
    options: Partial<LARSOptions> & { lr: number },
  ) {
    const { lr, ...rest } = checkOptions('LARS', options);
    super(
      'lars',
      params,
      { lr, momentum: 0.9, weightDecay: 0, trustCoefficient: 1e-3, eps: 0, nesterov: false, exclude: false, ...rest },
      validate,
    );
  }
}

/**
 * SimCLR's split: weights adapted and decayed; biases and BatchNorm weights/biases (the one-dimensional parameters of
 * conv, linear and BN layers) in a group of their own with `exclude: true`.
 */
export function larsParamGroups(parameters: readonly Tensor[]): ParamGroupSpec<LARSOptions>[] {
  const excluded = parameters.filter((p) => p.ndim <= 1);
  const adapted = parameters.filter((p) => p.ndim > 1);
  return [{ params: adapted }, { params: excluded, exclude: true }].filter((g) => g.params.length > 0);
}
