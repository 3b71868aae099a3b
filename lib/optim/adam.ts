/** Adam and AdamW (decoupled weight decay), LibTorch's implementations, as `torch.optim.Adam` / `AdamW`. */
import { checkBool, checkOptions, invalidArg } from '../errors.js';
import type { Tensor } from '../torch/tensor.js';
import { Optimizer, type ParamGroupSpec, checkNonNegative, checkUnitInterval } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}

function validate(op: string, o: AdamOptions): void {
  checkNonNegative(op, 'lr', o.lr);
  if (!Array.isArray(o.betas) || o.betas.length !== 2) throw invalidArg(op, 'betas', 'a [beta1, beta2] pair', o.betas);
  checkUnitInterval(op, 'betas[0]', o.betas[0]);
  checkUnitInterval(op, 'betas[1]', o.betas[1]);
  checkNonNegative(op, 'eps', o.eps);
  checkNonNegative(op, 'weightDecay', o.weightDecay);
  checkBool(op, 'amsgrad', o.amsgrad);
}

/** What Adam and AdamW optimize: parameters, or parameter groups with their own options. */
export type AdamParams = readonly Tensor[] | readonly ParamGroupSpec<AdamOptions>[];
const defaults = { lr: 1e-3, betas: [0.9, 0.999] as const, eps: 1e-8, amsgrad: false };

/** Adam; `weightDecay` (default 0) is added to the gradient (L2), as in PyTorch. */
export class Adam extends Optimizer<AdamOptions> {
  constructor(params: AdamParams, options: Partial<AdamOptions> = {}) {
    super('adam', params, { ...defaults, weightDecay: 0, ...checkOptions('Adam', options) }, validate);
  }
}

/** AdamW; `weightDecay` (default 0.01) shrinks the weights directly, decoupled from the gradient. */
export class AdamW extends Optimizer<AdamOptions> {
  constructor(params: AdamParams, options: Partial<AdamOptions> = {}) {
    super('adamw', params, { ...defaults, weightDecay: 1e-2, ...checkOptions('AdamW', options) }, validate);
  }
}
