/** `torch.nn.Flatten`. */
import { checkInt, invalidArg } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { Module } from '../module.js';

/** Flattens dims startDim..endDim into one; the defaults keep the batch dimension ([N, C, H, W] -> [N, C·H·W]). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    checkInt('Flatten', 'startDim', startDim);
    checkInt('Flatten', 'endDim', endDim);
    super();
  }

  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) throw invalidArg('Flatten', 'input', 'a Tensor', x);
    return x.flatten(this.startDim, this.endDim);
  }
}
