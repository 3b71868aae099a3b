/** `torch.nn.Conv2d`. */
import { checkBool, checkOptions, invalidArg } from '../../errors.js';
import { empty } from '../../torch/creation.js';
import { Tensor } from '../../torch/tensor.js';
import * as functional from '../functional.js';
import { Module } from '../module.js';
import { type Pair, checkInput, checkPositiveInt, pair, resetWeightAndBias } from './utils.js';

/** `nn.functional.conv2d`'s options (groups must divide both channel counts), and whether to learn a bias. */
export interface Conv2dOptions extends functional.Conv2dOptions {
  bias?: boolean;
}

/** 2-D convolution over [N, C, H, W]; weight [outChannels, inChannels / groups, kH, kW], bias [outChannels]. */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    options: Conv2dOptions = {},
  ) {
    const { stride = 1, padding = 0, dilation = 1, groups = 1, bias = true } = checkOptions('Conv2d', options);
    checkPositiveInt('Conv2d', 'inChannels', inChannels);
    checkPositiveInt('Conv2d', 'outChannels', outChannels);
    if (inChannels % checkPositiveInt('Conv2d', 'groups', groups) !== 0 || outChannels % groups !== 0) {
      throw invalidArg(
        'Conv2d',
        'groups',
        `a divisor of inChannels (${inChannels}) and outChannels (${outChannels})`,
        groups,
      );
    }
    checkBool('Conv2d', 'bias', bias);
    super();
    this.kernelSize = pair('Conv2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('Conv2d', 'stride', stride, 1);
    this.padding = pair('Conv2d', 'padding', padding, 0);
    this.dilation = pair('Conv2d', 'dilation', dilation, 1);
    this.groups = groups;
    this.weight = this.registerParameter('weight', empty([outChannels, inChannels / groups, ...this.kernelSize]));
    this.bias = this.registerParameter('bias', bias ? empty([outChannels]) : null);
    this.resetParameters();
  }

  /** PyTorch's default init (kaiming_uniform_ with a = sqrt(5), bias U(±1/sqrt(fan_in))). */
  resetParameters(): void {
    resetWeightAndBias(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    checkInput(
      'Conv2d',
      x,
      `a [N, ${this.inChannels}, H, W] tensor`,
      (s) => s.length === 4 && s[1] === this.inChannels,
    );
    return functional.conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}
