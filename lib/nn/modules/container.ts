/** `torch.nn.Sequential`. */
import { checkInt, invalidArg } from '../../errors.js';
import { Tensor } from '../../torch/tensor.js';
import { Module } from '../module.js';

/** A module whose forward maps one tensor to one tensor: what Sequential can chain. */
export interface Layer extends Module {
  forward(x: Tensor): Tensor;
}

/** Runs its layers in order. They are its children '0', '1', ..., so their keys are `0.weight`, `1.running_mean`, .... */
export class Sequential extends Module {
  // Kept as a list as well, so a layer added twice runs twice, as in PyTorch.
  readonly #layers: Layer[];

  constructor(...layers: Layer[]) {
    layers.forEach((layer, i) => {
      if (!(layer instanceof Module)) throw invalidArg('Sequential', `layers[${i}]`, 'a Module', layer);
    });
    super();
    layers.forEach((layer, i) => this.registerModule(String(i), layer));
    this.#layers = layers;
  }

  get length(): number {
    return this.#layers.length;
  }

  /** The layer at `index`; negative indices count from the end (PyTorch's `seq[i]`). */
  at(index: number): Layer {
    const n = this.#layers.length;
    if (checkInt('Sequential.at', 'index', index) < -n || index >= n)
      throw invalidArg('Sequential.at', 'index', `in [${-n}, ${n - 1}]`, index);
    return this.#layers[index < 0 ? index + n : index];
  }

  forward(x: Tensor): Tensor {
    return chain(x, this.#layers);
  }
}

/**
 * Runs `layers` in order on `x`, disposing each intermediate handle as soon as the next layer has consumed it, as
 * Python's refcounting would: memory autograd does not keep is reused at once, while it is still in cache, instead of
 * piling up until the enclosing tidy() ends.
 */
export function chain(x: Tensor, layers: readonly Layer[]): Tensor {
  let h = x;
  for (const layer of layers) {
    const next = layer.forward(h);
    if (h !== x && next !== h) h.dispose();
    h = next;
  }
  return h;
}
