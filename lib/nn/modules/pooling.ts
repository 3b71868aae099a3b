/** `torch.nn.MaxPool2d` and `torch.nn.AdaptiveAvgPool2d`. */
import { checkBool, checkOptions } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { type MaxPool2dOptions, adaptiveAvgPool2d, maxPool2d } from '../functional.js';
import { Module } from '../module.js';
import { type Pair, pair } from './utils.js';

/** The maximum over each kernelSize window of [N, C, H, W]; the stride defaults to the kernel size. */
export class MaxPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly ceilMode: boolean;

  constructor(kernelSize: Pair, options: MaxPool2dOptions = {}) {
    const { stride = kernelSize, padding = 0, dilation = 1, ceilMode = false } = checkOptions('MaxPool2d', options);
    super();
    this.kernelSize = pair('MaxPool2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('MaxPool2d', 'stride', stride, 1);
    this.padding = pair('MaxPool2d', 'padding', padding, 0);
    this.dilation = pair('MaxPool2d', 'dilation', dilation, 1);
    this.ceilMode = checkBool('MaxPool2d', 'ceilMode', ceilMode);
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.kernelSize, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      ceilMode: this.ceilMode,
    });
  }
}

/** Averages [N, C, H, W] over windows chosen so that the output is outputSize, whatever the input size. */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number, number];

  constructor(outputSize: Pair) {
    super();
    this.outputSize = pair('AdaptiveAvgPool2d', 'outputSize', outputSize, 1);
  }

  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}
