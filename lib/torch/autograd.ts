/** Grad mode and the autograd helpers beside `Tensor.backward()`. */
import { ArgumentError, checkBool, checkOptions, invalidArg } from '../errors.js';
import { type Handle, native } from '../native.js';
import { Tensor } from './tensor.js';

function withGradMode<T>(op: string, enabled: boolean, fn: () => T): T {
  if (typeof fn !== 'function') throw invalidArg(op, 'fn', 'a function', fn);
  const previous = native.isGradEnabled();
  native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) {
      result.catch(() => undefined);
      throw new ArgumentError(
        `${op}: fn must be synchronous (it returned a Promise): grad mode cannot follow an await`,
      );
    }
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` with gradient recording off (PyTorch's `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode('noGrad', false, fn);
}

/** Runs `fn` with gradient recording on, e.g. inside `noGrad` (PyTorch's `torch.enable_grad()`). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode('enableGrad', true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

function handlesOf(op: string, name: string, tensors: readonly Tensor[]): Handle[] {
  if (!Array.isArray(tensors)) throw invalidArg(op, name, 'an array of tensors', tensors);
  return tensors.map((t, i) => {
    if (!(t instanceof Tensor)) throw invalidArg(op, `${name}[${i}]`, 'a Tensor', t);
    return t.handle;
  });
}

/** Clears the gradients of all `parameters` in one native call: set to null (default, as PyTorch 2) or zeroed. */
export function zeroGrad(parameters: readonly Tensor[], options: { setToNone?: boolean } = {}): void {
  const { setToNone = true } = checkOptions('zeroGrad', options);
  native.zeroGrad(handlesOf('zeroGrad', 'parameters', parameters), checkBool('zeroGrad', 'setToNone', setToNone));
}

export interface GradOptions {
  gradOutputs?: readonly Tensor[];
  retainGraph?: boolean;
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on, instead of throwing. */
  allowUnused?: boolean;
}

/** PyTorch's `torch.autograd.grad`: the gradients of `outputs` with respect to `inputs`, without accumulating. */
export function grad(
  outputs: readonly Tensor[],
  inputs: readonly Tensor[],
  options: GradOptions = {},
): (Tensor | null)[] {
  const { gradOutputs, retainGraph, createGraph = false, allowUnused = false } = checkOptions('grad', options);
  const grads = native.autogradGrad(
    handlesOf('grad', 'outputs', outputs),
    handlesOf('grad', 'inputs', inputs),
    gradOutputs === undefined ? undefined : handlesOf('grad', 'gradOutputs', gradOutputs),
    retainGraph === undefined ? undefined : checkBool('grad', 'retainGraph', retainGraph),
    checkBool('grad', 'createGraph', createGraph),
    checkBool('grad', 'allowUnused', allowUnused),
  );
  return grads.map((g) => (g === null ? null : new Tensor(g)));
}
