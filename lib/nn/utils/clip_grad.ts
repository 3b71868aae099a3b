/** `torch.nn.utils.clip_grad_norm_`: one native call over every parameter. */
import { checkBool, checkNumber, checkOptions, invalidArg } from '../../errors.js';
import { native } from '../../native.js';
import { Tensor } from '../../torch/tensor.js';
import { countHostRead } from '../../torch/sync.js';

export interface ClipGradNormOptions {
  /** The p of the p-norm; Infinity for the largest absolute value. Default 2. */
  normType?: number;
  /** Throw when the total norm is NaN or infinite, instead of scaling the gradients by it. */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the gradients of `parameters` in place so that their joint norm (as if concatenated into one vector) is at
 * most `maxNorm`, and returns the norm they had. Parameters without a gradient are skipped.
 */
export function clipGradNorm_(
  parameters: readonly Tensor[],
  maxNorm: number,
  options: ClipGradNormOptions = {},
): number {
  const { normType = 2, errorIfNonfinite = false } = checkOptions('clipGradNorm_', options);
  if (!Array.isArray(parameters)) throw invalidArg('clipGradNorm_', 'parameters', 'an array of tensors', parameters);
  const handles = parameters.map((p, i) => {
    if (!(p instanceof Tensor)) throw invalidArg('clipGradNorm_', `parameters[${i}]`, 'a Tensor', p);
    return p.handle;
  });
  if (!(checkNumber('clipGradNorm_', 'maxNorm', maxNorm) > 0))
    throw invalidArg('clipGradNorm_', 'maxNorm', 'a number > 0', maxNorm);
  countHostRead('clipGradNorm_');
  return native.clipGradNorm(
    handles,
    maxNorm,
    checkNumber('clipGradNorm_', 'normType', normType),
    checkBool('clipGradNorm_', 'errorIfNonfinite', errorIfNonfinite),
  );
}
