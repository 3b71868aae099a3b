/** `torch.nn.Dropout`. */
import { checkNumber, invalidArg } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { dropout } from '../functional.js';
import { Module } from '../module.js';

/** In training mode, zeroes each element with probability p and scales the others by 1/(1-p); the identity in eval. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    if (checkNumber('Dropout', 'p', p) < 0 || p > 1) throw invalidArg('Dropout', 'p', 'a probability in [0, 1]', p);
    super();
  }

  forward(x: Tensor): Tensor {
    return dropout(x, { p: this.p, training: this.training });
  }
}
