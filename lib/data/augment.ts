/**
 * Augmentation as the method uses it: per view, a random horizontal flip, a random vertical flip and a random resized
 * crop keeping 90-100% of the area (aspect 3/4 to 4/3). Parameters are sampled here, in TypeScript, from a seeded
 * `Random`; they are applied natively to a whole batch at once (one affine grid, one bilinear `gridSample`), on any
 * device, without clipping values: inputs are standardised floats with any number of bands.
 */
import { checkOptions, invalidArg } from '../errors.js';
import { affineGrid, gridSample } from '../nn/functional.js';
import { tensor } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import { Tensor } from '../torch/tensor.js';
import { native } from '../native.js';
import type { Random } from './random.js';

export interface AugmentationOptions {
  /** Probability of a horizontal flip (default 0.5). */
  horizontalFlip?: number;
  /** Probability of a vertical flip (default 0.5; overhead imagery has no up). */
  verticalFlip?: number;
  /** Range of the crop's area as a fraction of the image (default [0.9, 1]), or false for no crop. */
  cropScale?: readonly [number, number] | false;
  /** Range of the crop's aspect ratio, width / height, sampled log-uniformly (default [3/4, 4/3]). */
  cropRatio?: readonly [number, number];
}

/** One view's transform: the crop box in fractions of the image (x, y of its corner, width, height), then flips. */
export interface ViewTransform {
  box: [number, number, number, number];
  horizontalFlip: boolean;
  verticalFlip: boolean;
}

const IDENTITY_BOX: [number, number, number, number] = [0, 0, 1, 1];

/**
 * torchvision's RandomResizedCrop.get_params (ten tries, then the whole image), on an image of aspect `aspect`
 * (width / height), in fractions of the image and without rounding to whole pixels: the crop is resampled anyway, and
 * unrounded boxes keep the area exactly within the bounds.
 */
function sampleCrop(
  random: Random,
  aspect: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
): [number, number, number, number] {
  const [logLow, logHigh] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = random.uniform(scale[0], scale[1]);
    const r = Math.exp(random.uniform(logLow, logHigh)) / aspect; // the box's ratio in image fractions
    const w = Math.sqrt(area * r),
      h = Math.sqrt(area / r);
    if (w <= 1 && h <= 1) return [random.uniform(0, 1 - w), random.uniform(0, 1 - h), w, h];
  }
  return IDENTITY_BOX;
}

export function checkAugmentation(options: AugmentationOptions): Required<AugmentationOptions> {
  const {
    horizontalFlip = 0.5,
    verticalFlip = 0.5,
    cropScale = [0.9, 1],
    cropRatio = [3 / 4, 4 / 3],
  } = checkOptions('augmentation', options);
  for (const [name, p] of [
    ['horizontalFlip', horizontalFlip],
    ['verticalFlip', verticalFlip],
  ] as const) {
    if (typeof p !== 'number' || !(p >= 0 && p <= 1))
      throw invalidArg('augmentation', name, 'a probability in [0, 1]', p);
  }
  const range = (name: string, r: unknown, low: number, high: number) => {
    if (
      !Array.isArray(r) ||
      r.length !== 2 ||
      !r.every((x) => typeof x === 'number' && x >= low && x <= high) ||
      r[0] > r[1]
    ) {
      throw invalidArg('augmentation', name, `[low, high] with ${low} <= low <= high <= ${high}`, r);
    }
  };
  if (cropScale !== false) range('cropScale', cropScale, Number.MIN_VALUE, 1);
  range('cropRatio', cropRatio, Number.MIN_VALUE, Infinity);
  return { horizontalFlip, verticalFlip, cropScale, cropRatio };
}

/** Samples one view's transform for an image of aspect `aspect` (width / height). */
export function sampleTransform(random: Random, options: AugmentationOptions = {}, aspect = 1): ViewTransform {
  const { horizontalFlip, verticalFlip, cropScale, cropRatio } = checkAugmentation(options);
  const box = cropScale === false ? IDENTITY_BOX : sampleCrop(random, aspect, cropScale, cropRatio);
  return {
    box: [...box],
    horizontalFlip: random.bernoulli(horizontalFlip),
    verticalFlip: random.bernoulli(verticalFlip),
  };
}

/**
 * The affine map, in grid coordinates normalised to [-1, 1] over pixel edges (alignCorners false), from an output
 * pixel to the input point it samples: the box's centre plus the box's half-size times the (flipped) output position.
 * Sampling bilinearly there is crop-then-resize as torchvision's resized_crop computes it (align_corners false).
 */
function theta({ box: [x, y, w, h], horizontalFlip, verticalFlip }: ViewTransform): number[] {
  return [horizontalFlip ? -w : w, 0, 2 * x + w - 1, 0, verticalFlip ? -h : h, 2 * y + h - 1];
}

/** theta's diagonal and offsets, (scaleX, offsetX, scaleY, offsetY): the map has no rotation or shear. */
function axisMap(t: ViewTransform): number[] {
  const [a, , b, , d, e] = theta(t);
  return [a, b, d, e];
}

/**
 * Applies one transform per image of `x` [N, C, H, W] (float, any device): [N, C, size[0], size[1]] (default: the
 * input's size). Bilinear; points falling a rounding error outside the image take the border value.
 */
export function applyTransforms(
  x: Tensor,
  transforms: readonly ViewTransform[],
  size?: readonly [number, number],
): Tensor {
  if (x.ndim !== 4) throw invalidArg('applyTransforms', 'x', 'a [N, C, H, W] tensor', x);
  if (transforms.length !== x.shape[0])
    throw invalidArg(
      'applyTransforms',
      'transforms',
      `one per image (${x.shape[0]})`,
      `${transforms.length} transforms`,
    );
  const [n, c] = x.shape;
  const [height, width] = size ?? [x.shape[2], x.shape[3]];
  // On CPU, for data (no gradient), the same sampling done separably natively: several times faster.
  if (x.device === 'cpu' && !x.requiresGrad && (x.dtype === 'float32' || x.dtype === 'float64'))
    return new Tensor(native.resampleAxisAligned(x.handle, transforms.flatMap(axisMap), [height, width]));
  return tidy(() => {
    const thetas = tensor(Float64Array.from(transforms.flatMap(theta)), { dtype: x.dtype, device: x.device }).reshape([
      n,
      2,
      3,
    ]);
    const grid = affineGrid(thetas, [n, c, height, width]);
    return gridSample(x, grid, { mode: 'bilinear', paddingMode: 'border' });
  });
}
