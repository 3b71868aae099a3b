/** `torch.nn.ReLU`. */
import { Tensor } from '../../torch/tensor.js';
import { relu } from '../functional.js';
import { Module } from '../module.js';

/** max(x, 0), element-wise. */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}
