/**
 * `torch.nn.init`: in-place initialisers, each run under noGrad and returning its tensor. The random ones draw from
 * LibTorch's default generator with the same ops and arithmetic as PyTorch, so after the same `manualSeed` they give
 * the same bits.
 */
import { checkNumber, checkOneOf, checkOptions, invalidArg } from '../errors.js';
import { noGrad } from '../torch/autograd.js';
import { Tensor } from '../torch/tensor.js';

/** The nonlinearities `calculateGain` and the Kaiming initialisations know, as PyTorch names them. */
export const nonlinearities = [
  'linear',
  'conv1d',
  'conv2d',
  'conv3d',
  'convTranspose1d',
  'convTranspose2d',
  'convTranspose3d',
  'sigmoid',
  'tanh',
  'relu',
  'leakyRelu',
  'selu',
] as const;
export type Nonlinearity = (typeof nonlinearities)[number];

export interface KaimingOptions {
  /** The negative slope of the leaky ReLU that follows (0 for ReLU). */
  a?: number;
  /** Preserve the variance of the activations ('fanIn') or of the gradients ('fanOut'). Default 'fanIn'. */
  mode?: 'fanIn' | 'fanOut';
  /** Default 'leakyRelu', as in PyTorch. */
  nonlinearity?: Nonlinearity;
}

function target(op: string, tensor: unknown): Tensor {
  if (!(tensor instanceof Tensor)) throw invalidArg(op, 'tensor', 'a Tensor', tensor);
  return tensor;
}

function gain(op: string, nonlinearity: unknown, param?: number): number {
  switch (checkOneOf(op, 'nonlinearity', nonlinearity, nonlinearities)) {
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.sqrt(2);
    case 'leakyRelu': {
      const slope = param === undefined ? 0.01 : checkNumber(op, 'param', param);
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      return 1;
  }
}

/** The factor that scales a standard deviation for `nonlinearity` (`param`: leaky ReLU's slope, default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  return gain('calculateGain', nonlinearity, param);
}

/** [fanIn, fanOut] of a weight [out, in, ...kernel]: in (or out) times the receptive field size. */
export function calculateFanInAndFanOut(tensor: Tensor): [number, number] {
  const t = target('calculateFanInAndFanOut', tensor);
  if (t.ndim < 2) throw invalidArg('calculateFanInAndFanOut', 'tensor', 'a tensor of at least 2 dimensions', t);
  const receptive = t.shape.slice(2).reduce((a, b) => a * b, 1);
  return [t.shape[1] * receptive, t.shape[0] * receptive];
}

/** gain / sqrt(fan), evaluated in PyTorch's order so the bound is the same double. */
function kaimingStd(op: string, tensor: Tensor, options: KaimingOptions): number {
  const { a = 0, mode = 'fanIn', nonlinearity = 'leakyRelu' } = checkOptions(op, options);
  const [fanIn, fanOut] = calculateFanInAndFanOut(tensor);
  const fan = checkOneOf(op, 'mode', mode, ['fanIn', 'fanOut']) === 'fanIn' ? fanIn : fanOut;
  return gain(op, nonlinearity, checkNumber(op, 'a', a)) / Math.sqrt(fan);
}

/** He et al.'s uniform init: U(-bound, bound) with bound = gain * sqrt(3 / fan). Empty tensors are left as they are. */
export function kaimingUniform_(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  if (target('kaimingUniform_', tensor).numel() === 0) return tensor;
  const bound = Math.sqrt(3) * kaimingStd('kaimingUniform_', tensor, options);
  return uniform_(tensor, -bound, bound);
}

/** He et al.'s normal init: N(0, std²) with std = gain / sqrt(fan). Empty tensors are left as they are. */
export function kaimingNormal_(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  if (target('kaimingNormal_', tensor).numel() === 0) return tensor;
  return normal_(tensor, 0, kaimingStd('kaimingNormal_', tensor, options));
}

/** Fills with U(a, b). */
export function uniform_(tensor: Tensor, a = 0, b = 1): Tensor {
  const t = target('uniform_', tensor);
  return noGrad(() => t.uniform_(a, b));
}

/** Fills with N(mean, std²). */
export function normal_(tensor: Tensor, mean = 0, std = 1): Tensor {
  const t = target('normal_', tensor);
  return noGrad(() => t.normal_(mean, std));
}

export function constant_(tensor: Tensor, val: number): Tensor {
  const t = target('constant_', tensor);
  return noGrad(() => t.fill_(checkNumber('constant_', 'val', val)));
}

export function zeros_(tensor: Tensor): Tensor {
  const t = target('zeros_', tensor);
  return noGrad(() => t.zero_());
}

export function ones_(tensor: Tensor): Tensor {
  const t = target('ones_', tensor);
  return noGrad(() => t.fill_(1));
}
