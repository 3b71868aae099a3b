/** Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (LibTorch's, as `torch.optim.SGD`). */
import { checkBool, checkOptions, invalidArg } from '../errors.js';
import type { Tensor } from '../torch/tensor.js';
import { Optimizer, type ParamGroupSpec, checkNonNegative } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

function validate(op: string, o: SGDOptions): void {
  checkNonNegative(op, 'lr', o.lr);
  checkNonNegative(op, 'momentum', o.momentum);
  checkNonNegative(op, 'dampening', o.dampening);
  checkNonNegative(op, 'weightDecay', o.weightDecay);
  if (checkBool(op, 'nesterov', o.nesterov) && (o.momentum <= 0 || o.dampening !== 0)) {
    throw invalidArg(op, 'nesterov', 'false unless momentum > 0 and dampening = 0', o.nesterov);
  }
}

export class SGD extends Optimizer<SGDOptions> {
  /** `lr` is required, as in PyTorch; the other options default to 0 / false. */
  constructor(
    params: readonly Tensor[] | readonly ParamGroupSpec<SGDOptions>[],
    options: Partial<SGDOptions> & { lr: number },
  ) {
    const { lr, ...rest } = checkOptions('SGD', options);
    super('sgd', params, { lr, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...rest }, validate);
  }
}
