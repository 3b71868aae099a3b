/** `torch.nn.ReLU`. */
import { checkBool, checkOptions } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { relu } from '../functional.js';
import { Module } from '../module.js';

/** max(x, 0), element-wise; `inplace` overwrites the input, as torchvision's backbones do. */
export class ReLU extends Module {
  readonly inplace: boolean;

  constructor(options: { inplace?: boolean } = {}) {
    const { inplace = false } = checkOptions('ReLU', options);
    super();
    this.inplace = checkBool('ReLU', 'inplace', inplace);
  }

  forward(x: Tensor): Tensor {
    return relu(x, { inplace: this.inplace });
  }
}
