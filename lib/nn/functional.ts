/** `torch.nn.functional`: the stateless layers that the backbones and losses are built from. */
import { checkBool, checkInt, checkNumber, checkOneOf, checkOptions, checkShape, invalidArg } from '../errors.js';
import { type Handle, native } from '../native.js';
import { type DType, optDtypeCode } from '../torch/dtype.js';
import { Tensor } from '../torch/tensor.js';
import { type Pair, pair } from './modules/utils.js';

function input(op: string, name: string, t: unknown): Handle {
  if (!(t instanceof Tensor)) throw invalidArg(op, name, 'a Tensor', t);
  return t.handle;
}

function optInput(op: string, name: string, t: unknown): Handle | undefined {
  return t === undefined || t === null ? undefined : input(op, name, t);
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  const { stride = 1, padding = 0, dilation = 1, groups = 1 } = checkOptions('conv2d', options);
  return new Tensor(
    native.conv2d(
      input('conv2d', 'input', x),
      input('conv2d', 'weight', weight),
      optInput('conv2d', 'bias', bias),
      pair('conv2d', 'stride', stride),
      pair('conv2d', 'padding', padding),
      pair('conv2d', 'dilation', dilation),
      checkInt('conv2d', 'groups', groups),
    ),
  );
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Normalise with batch statistics and update the running ones (training), or use the running ones (eval). */
  training?: boolean;
  momentum?: number;
  eps?: number;
}

export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  options: BatchNormOptions = {},
): Tensor {
  const { weight, bias, training = false, momentum = 0.1, eps = 1e-5 } = checkOptions('batchNorm', options);
  return new Tensor(
    native.batchNorm(
      input('batchNorm', 'input', x),
      optInput('batchNorm', 'weight', weight),
      optInput('batchNorm', 'bias', bias),
      optInput('batchNorm', 'runningMean', runningMean),
      optInput('batchNorm', 'runningVar', runningVar),
      checkBool('batchNorm', 'training', training),
      checkNumber('batchNorm', 'momentum', momentum),
      checkNumber('batchNorm', 'eps', eps),
    ),
  );
}

/** x · weightᵀ + bias. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(
    native.linear(input('linear', 'input', x), input('linear', 'weight', weight), optInput('linear', 'bias', bias)),
  );
}

/** max(x, 0); with `inplace`, overwrites x and returns it (saves an allocation when x is not needed elsewhere). */
export function relu(x: Tensor, options: { inplace?: boolean } = {}): Tensor {
  const h = input('relu', 'input', x);
  if (!checkBool('relu', 'inplace', checkOptions('relu', options).inplace ?? false)) return new Tensor(native.relu(h));
  native.relu_(h);
  return x;
}

export interface MaxPool2dOptions {
  /** Default: the kernel size, as in PyTorch. */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

export function maxPool2d(x: Tensor, kernelSize: Pair, options: MaxPool2dOptions = {}): Tensor {
  const { stride = kernelSize, padding = 0, dilation = 1, ceilMode = false } = checkOptions('maxPool2d', options);
  return new Tensor(
    native.maxPool2d(
      input('maxPool2d', 'input', x),
      pair('maxPool2d', 'kernelSize', kernelSize),
      pair('maxPool2d', 'stride', stride),
      pair('maxPool2d', 'padding', padding),
      pair('maxPool2d', 'dilation', dilation),
      checkBool('maxPool2d', 'ceilMode', ceilMode),
    ),
  );
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return new Tensor(
    native.adaptiveAvgPool2d(
      input('adaptiveAvgPool2d', 'input', x),
      pair('adaptiveAvgPool2d', 'outputSize', outputSize),
    ),
  );
}

/** Zeroes elements with probability p and scales the rest by 1/(1-p) while training; the identity otherwise. */
export function dropout(x: Tensor, options: { p?: number; training?: boolean } = {}): Tensor {
  const { p = 0.5, training = true } = checkOptions('dropout', options);
  if (checkNumber('dropout', 'p', p) < 0 || p > 1) throw invalidArg('dropout', 'p', 'a probability in [0, 1]', p);
  return new Tensor(native.dropout(input('dropout', 'input', x), p, checkBool('dropout', 'training', training)));
}

/** x / max(‖x‖_p, eps) along `dim` (F.normalize). */
export function normalize(x: Tensor, options: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const { p = 2, dim = 1, eps = 1e-12 } = checkOptions('normalize', options);
  return new Tensor(
    native.normalize(
      input('normalize', 'input', x),
      checkNumber('normalize', 'p', p),
      checkInt('normalize', 'dim', dim),
      checkNumber('normalize', 'eps', eps),
    ),
  );
}

export function softmax(x: Tensor, dim: number, options: { dtype?: DType } = {}): Tensor {
  return new Tensor(
    native.softmax(
      input('softmax', 'input', x),
      checkInt('softmax', 'dim', dim),
      optDtypeCode('softmax', checkOptions('softmax', options).dtype),
    ),
  );
}

export function logSoftmax(x: Tensor, dim: number, options: { dtype?: DType } = {}): Tensor {
  return new Tensor(
    native.logSoftmax(
      input('logSoftmax', 'input', x),
      checkInt('logSoftmax', 'dim', dim),
      optDtypeCode('logSoftmax', checkOptions('logSoftmax', options).dtype),
    ),
  );
}

export type Reduction = 'none' | 'mean' | 'sum';

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** Cross-entropy of logits `x` [N, C] against class indices [N] (or class probabilities [N, C]). */
export function crossEntropy(x: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const { weight, reduction = 'mean', ignoreIndex = -100, labelSmoothing = 0 } = checkOptions('crossEntropy', options);
  return new Tensor(
    native.crossEntropy(
      input('crossEntropy', 'input', x),
      input('crossEntropy', 'target', target),
      optInput('crossEntropy', 'weight', weight),
      checkOneOf('crossEntropy', 'reduction', reduction, ['none', 'mean', 'sum']),
      checkInt('crossEntropy', 'ignoreIndex', ignoreIndex),
      checkNumber('crossEntropy', 'labelSmoothing', labelSmoothing),
    ),
  );
}

export interface InterpolateOptions {
  /** Output [height, width]; give this or `scaleFactor`. */
  size?: Pair;
  scaleFactor?: number | readonly [number, number];
  mode?: 'nearest' | 'bilinear';
  alignCorners?: boolean;
  /** Bilinear only: widen the filter when shrinking so the result does not alias (PyTorch's `antialias`). */
  antialias?: boolean;
}

/** Resizes a [N, C, H, W] batch (F.interpolate); with `scaleFactor`, the output is floor(size * scale) as in PyTorch. */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  const { size, scaleFactor, mode = 'nearest', alignCorners, antialias = false } = checkOptions('interpolate', options);
  const h = input('interpolate', 'input', x);
  checkOneOf('interpolate', 'mode', mode, ['nearest', 'bilinear']);
  if (alignCorners !== undefined && mode === 'nearest')
    throw invalidArg('interpolate', 'alignCorners', "unset for mode 'nearest'", alignCorners);
  if (checkBool('interpolate', 'antialias', antialias) && mode !== 'bilinear')
    throw invalidArg('interpolate', 'antialias', "false unless mode is 'bilinear'", antialias);
  if ((size === undefined) === (scaleFactor === undefined))
    throw invalidArg('interpolate', 'options', 'exactly one of size and scaleFactor', options);
  if (x.ndim !== 4) throw invalidArg('interpolate', 'input', 'a 4-D [N, C, H, W] tensor', x);
  let outSize: number[];
  let scales: [number | undefined, number | undefined] = [undefined, undefined];
  if (size !== undefined) {
    outSize = pair('interpolate', 'size', size);
  } else {
    const [sh, sw] = typeof scaleFactor === 'number' ? [scaleFactor, scaleFactor] : (scaleFactor as readonly number[]);
    scales = [checkNumber('interpolate', 'scaleFactor', sh), checkNumber('interpolate', 'scaleFactor', sw)];
    outSize = [Math.floor(x.shape[2] * sh), Math.floor(x.shape[3] * sw)];
  }
  return new Tensor(
    native.interpolate(
      h,
      outSize,
      mode,
      checkBool('interpolate', 'alignCorners', alignCorners ?? false),
      ...scales,
      antialias,
    ),
  );
}

/**
 * Sampling grids [N, H, W, 2] for affine maps `theta` [N, 2, 3] from output to input coordinates, both normalised to
 * [-1, 1] (F.affine_grid); `size` is the output's [N, C, H, W].
 */
export function affineGrid(theta: Tensor, size: readonly number[], options: { alignCorners?: boolean } = {}): Tensor {
  const { alignCorners = false } = checkOptions('affineGrid', options);
  if (theta.ndim !== 3 || theta.shape[1] !== 2 || theta.shape[2] !== 3)
    throw invalidArg('affineGrid', 'theta', 'a [N, 2, 3] tensor', theta);
  const shape = checkShape('affineGrid', 'size', size);
  if (shape.length !== 4 || shape[0] !== theta.shape[0])
    throw invalidArg('affineGrid', 'size', `[N, C, H, W] with N = ${theta.shape[0]}`, size);
  return new Tensor(
    native.affineGrid(
      input('affineGrid', 'theta', theta),
      shape,
      checkBool('affineGrid', 'alignCorners', alignCorners),
    ),
  );
}

export interface GridSampleOptions {
  mode?: 'bilinear' | 'nearest' | 'bicubic';
  paddingMode?: 'zeros' | 'border' | 'reflection';
  alignCorners?: boolean;
}

/** Samples `x` [N, C, H, W] at `grid` [N, Ho, Wo, 2] (normalised x, y), F.grid_sample: [N, C, Ho, Wo]. */
export function gridSample(x: Tensor, grid: Tensor, options: GridSampleOptions = {}): Tensor {
  const { mode = 'bilinear', paddingMode = 'zeros', alignCorners = false } = checkOptions('gridSample', options);
  checkOneOf('gridSample', 'mode', mode, ['bilinear', 'nearest', 'bicubic']);
  checkOneOf('gridSample', 'paddingMode', paddingMode, ['zeros', 'border', 'reflection']);
  return new Tensor(
    native.gridSample(
      input('gridSample', 'input', x),
      input('gridSample', 'grid', grid),
      mode,
      paddingMode,
      checkBool('gridSample', 'alignCorners', alignCorners),
    ),
  );
}

/** One-hot encoding of int64 class indices; numClasses -1 infers max + 1. */
export function oneHot(x: Tensor, numClasses = -1): Tensor {
  return new Tensor(native.oneHot(input('oneHot', 'input', x), checkInt('oneHot', 'numClasses', numClasses)));
}
