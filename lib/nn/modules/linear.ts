/** `torch.nn.Identity` and `torch.nn.Linear`. */
import { checkBool, checkOptions } from '../../errors.js';
import { empty } from '../../torch/creation.js';
import { Tensor } from '../../torch/tensor.js';
import { linear } from '../functional.js';
import { Module } from '../module.js';
import { checkInput, checkPositiveInt, resetWeightAndBias } from './utils.js';

/** Returns its input: a placeholder where a layer is optional (a backbone's removed head). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** y = x · Wᵀ + b over the last dimension; weight [outFeatures, inFeatures], bias [outFeatures]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    const { bias = true } = checkOptions('Linear', options);
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    checkBool('Linear', 'bias', bias);
    super();
    this.weight = this.registerParameter('weight', empty([outFeatures, inFeatures]));
    this.bias = this.registerParameter('bias', bias ? empty([outFeatures]) : null);
    this.resetParameters();
  }

  /** PyTorch's default init (kaiming_uniform_ with a = sqrt(5), bias U(±1/sqrt(inFeatures))). */
  resetParameters(): void {
    resetWeightAndBias(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    checkInput(
      'Linear',
      x,
      `a tensor whose last dimension is ${this.inFeatures}`,
      (s) => s.length > 0 && s[s.length - 1] === this.inFeatures,
    );
    return linear(x, this.weight, this.bias);
  }
}
