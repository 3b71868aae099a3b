/**
 * Helpers shared by the layers (PyTorch's torch/nn/modules/utils.py): argument readers, which `nn.functional` uses
 * too, and the default init of Linear and Conv2d.
 */
import { checkInt, invalidArg } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from '../init.js';

/** A 2-D size given as one number or a [height, width] pair. */
export type Pair = number | readonly [number, number];

/** PyTorch's `_pair`: [height, width] from a number or a pair of integers, each at least `min` when it is given. */
export function pair(op: string, name: string, v: Pair, min?: number): [number, number] {
  const values: readonly unknown[] = typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 ? v : [];
  if (
    values.length !== 2 ||
    !values.every((n) => Number.isSafeInteger(n) && (min === undefined || (n as number) >= min))
  ) {
    throw invalidArg(
      op,
      name,
      min === undefined
        ? 'an integer or a [height, width] pair'
        : `an integer >= ${min} or a [height, width] pair of them`,
      v,
    );
  }
  return [values[0] as number, values[1] as number];
}

export function checkPositiveInt(op: string, name: string, value: unknown): number {
  if (checkInt(op, name, value) < 1) throw invalidArg(op, name, 'a positive integer', value);
  return value as number;
}

/** Checks a layer's input before any native code runs: a Tensor whose shape passes `fits`, described by `expected`. */
export function checkInput(
  op: string,
  x: unknown,
  expected: string,
  fits: (shape: readonly number[]) => boolean,
  name = 'input',
): Tensor {
  if (!(x instanceof Tensor)) throw invalidArg(op, name, 'a Tensor', x);
  if (!fits(x.shape)) throw invalidArg(op, name, expected, x);
  return x;
}

/**
 * The default init of Linear and Conv2d (their `reset_parameters`): kaiming_uniform_ with a = sqrt(5), i.e.
 * U(±1/sqrt(fan_in)) for the weight, then the bias from U(±1/sqrt(fan_in)). The weight is drawn first, as in PyTorch.
 */
export function resetWeightAndBias(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias === null) return;
  const bound = 1 / Math.sqrt(calculateFanInAndFanOut(weight)[0]);
  uniform_(bias, -bound, bound);
}
