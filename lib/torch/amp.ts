/**
 * Automatic mixed precision, as PyTorch's `torch.autocast` and `torch.amp.GradScaler`: `autocast(options, fn)` runs
 * `fn` with eligible ops (convolutions, matrix products) in float16 or bfloat16 and the others in float32 (native/amp.cc
 * keeps the scope per thread and clears the cast cache when the outermost one ends); `GradScaler` scales a float16
 * loss so that small gradients do not underflow, unscales the gradients before the step, skips the step when they
 * are not finite, and grows or backs off the scale (its state on the device, in checkpoints through `stateDict`).
 * `precision` names Lightning's settings: '32', 'bf16-mixed' (no scaler needed) and '16-mixed'.
 */
import { ArgumentError, checkBool, checkInt, checkNumber, checkOneOf, checkOptions, invalidArg } from '../errors.js';
import { native } from '../native.js';
import { full, zeros } from './creation.js';
import { type Device, checkDevice } from './device.js';
import { dtypeCode } from './dtype.js';
import { keep } from './scope.js';
import { countHostRead } from './sync.js';
import { Tensor } from './tensor.js';

export const PRECISIONS = ['32', 'bf16-mixed', '16-mixed'] as const;
export type Precision = (typeof PRECISIONS)[number];

export interface AutocastOptions {
  /** The device whose ops are autocast (its type: 'cuda:1' is CUDA). */
  device: Device;
  /** The lower precision: 'bfloat16' (the default) or 'float16'. */
  dtype?: 'bfloat16' | 'float16';
  /** False runs `fn` as it is (default true). */
  enabled?: boolean;
}

/** Runs `fn` (synchronous: a scope cannot follow an await) inside an autocast scope; scopes nest. */
export function autocast<T>(options: AutocastOptions, fn: () => T): T {
  const { device, dtype = 'bfloat16', enabled = true } = checkOptions('autocast', options);
  checkDevice('autocast', device);
  checkOneOf('autocast', 'dtype', dtype, ['bfloat16', 'float16']);
  if (typeof fn !== 'function') throw invalidArg('autocast', 'fn', 'a function', fn);
  if (!checkBool('autocast', 'enabled', enabled)) return fn();
  native.autocastEnter(device, dtypeCode('autocast', dtype));
  try {
    const result = fn();
    if (result instanceof Promise) {
      result.catch(() => undefined);
      throw new ArgumentError(
        'autocast: fn must be synchronous (it returned a Promise): a scope cannot follow an await',
      );
    }
    return result;
  } finally {
    native.autocastExit();
  }
}

/** `fn` under the autocast a precision asks for on `device` ('32': none). */
export function withPrecision<T>(precision: Precision, device: Device, fn: () => T): T {
  checkOneOf('withPrecision', 'precision', precision, PRECISIONS);
  if (precision === '32') return fn();
  return autocast({ device, dtype: precision === '16-mixed' ? 'float16' : 'bfloat16' }, fn);
}

/** `fn` with each call under the precision's autocast on `device` and its result in float32 (for inference). */
export function atPrecision<A extends unknown[]>(
  precision: Precision,
  device: Device,
  fn: (...args: A) => Tensor,
): (...args: A) => Tensor {
  checkOneOf('atPrecision', 'precision', precision, PRECISIONS);
  if (precision === '32') return fn;
  return (...args) => withPrecision(precision, device, () => fn(...args)).to({ dtype: 'float32' });
}

/**
 * Refuses before any work a precision `device` cannot run (float16 on CPU before LibTorch 2.3), as the first step
 * would, naming `op`.
 */
export function checkPrecision(op: string, precision: Precision, device: Device): void {
  try {
    withPrecision(precision, device, () => undefined);
  } catch (e) {
    if (!(e instanceof ArgumentError)) throw e;
    throw new ArgumentError(`${op}: precision '${String(precision)}': ${e.message}`, {
      op,
      field: 'precision',
    });
  }
}

export interface GradScalerOptions {
  /** Default 2^16, PyTorch's. */
  initScale?: number;
  /** Default 2. */
  growthFactor?: number;
  /** Default 0.5. */
  backoffFactor?: number;
  /** Steps without non-finite gradients before the scale grows. Default 2000. */
  growthInterval?: number;
  /** False makes every method a pass-through (default true). */
  enabled?: boolean;
}

/** `GradScaler.stateDict()`, with PyTorch's keys. */
export interface GradScalerState {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

/** What a scaler needs of an optimizer: its parameters, and the step. */
export interface Steppable {
  readonly paramGroups: readonly { readonly params: readonly Tensor[] }[];
  step(): void;
}

/**
 * PyTorch's `GradScaler`, one step at a time: `scale(loss).backward()`, optionally `unscale_(optimizer)` (before
 * gradient clipping), `step(optimizer)`, `update()`. The scale and the count of good steps stay on the device;
 * `step` reads one flag (whether any gradient was not finite), as PyTorch's does.
 */
export class GradScaler implements Disposable {
  readonly enabled: boolean;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  #scale: Tensor;
  #growthTracker: Tensor;
  /** Per optimizer this step: its found-inf flag, once unscaled. */
  #unscaled = new Map<Steppable, Tensor>();

  constructor(device: Device, options: GradScalerOptions = {}) {
    const op = 'GradScaler';
    const {
      initScale = 2 ** 16,
      growthFactor = 2,
      backoffFactor = 0.5,
      growthInterval = 2000,
      enabled = true,
    } = checkOptions(op, options);
    checkDevice(op, device);
    if (!(checkNumber(op, 'initScale', initScale) > 0) || !Number.isFinite(initScale))
      throw invalidArg(op, 'initScale', 'a finite number > 0', initScale);
    if (!(checkNumber(op, 'growthFactor', growthFactor) > 1))
      throw invalidArg(op, 'growthFactor', 'a number > 1', growthFactor);
    if (!(checkNumber(op, 'backoffFactor', backoffFactor) > 0 && backoffFactor < 1))
      throw invalidArg(op, 'backoffFactor', 'a number in (0, 1)', backoffFactor);
    if (checkInt(op, 'growthInterval', growthInterval) < 1)
      throw invalidArg(op, 'growthInterval', 'a positive integer', growthInterval);
    this.enabled = checkBool(op, 'enabled', enabled);
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
    // The scaler's own tensors outlive the scope of any step that creates or uses them.
    this.#scale = keep(full([1], initScale, { dtype: 'float32', device }));
    this.#growthTracker = keep(zeros([1], { dtype: 'int32', device }));
  }

  /** `loss` times the scale (the loss itself when disabled). */
  scale(loss: Tensor): Tensor {
    if (!(loss instanceof Tensor)) throw invalidArg('GradScaler.scale', 'loss', 'a Tensor', loss);
    return this.enabled ? loss.mul(this.#scale.to({ dtype: loss.dtype })) : loss;
  }

  /** Divides the optimizer's gradients by the scale, in place, noting whether any was not finite (once a step). */
  unscale_(optimizer: Steppable): void {
    if (!this.enabled) return;
    if (this.#unscaled.has(optimizer))
      throw new ArgumentError('GradScaler.unscale_: already called for this optimizer since the last update()');
    const grads = optimizer.paramGroups.flatMap((g) => g.params.map((p) => p.grad)).filter((g) => g !== null);
    const foundInf = keep(zeros([1], { dtype: 'float32', device: this.#scale.device }));
    // In float64 then rounded, as PyTorch's GradScaler computes it.
    const invScale = this.#scale.to({ dtype: 'float64' }).pow(-1).to({ dtype: 'float32' });
    try {
      native.ampUnscale(
        grads.map((g) => g.handle),
        foundInf.handle,
        invScale.handle,
      );
    } finally {
      grads.forEach((g) => g.dispose());
      invScale.dispose();
    }
    this.#unscaled.set(optimizer, foundInf);
  }

  /** Unscales (unless done) and steps the optimizer unless a gradient was not finite; returns whether it stepped. */
  step(optimizer: Steppable): boolean {
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    if (!this.#unscaled.has(optimizer)) this.unscale_(optimizer);
    countHostRead('GradScaler.step');
    const skipped = (native.item(this.#unscaled.get(optimizer)!.handle) as number) > 0;
    if (!skipped) optimizer.step();
    return !skipped;
  }

  /** Backs off the scale after non-finite gradients, grows it after `growthInterval` good steps; ends the step. */
  update(): void {
    if (!this.enabled) return;
    const flags = [...this.#unscaled.values()];
    if (flags.length === 0)
      throw new ArgumentError('GradScaler.update: no optimizer was unscaled or stepped since the last update()');
    const found = flags.reduce((a, b) => a.maximum(b));
    native.ampUpdateScale(
      this.#scale.handle,
      this.#growthTracker.handle,
      found.handle,
      this.growthFactor,
      this.backoffFactor,
      this.growthInterval,
    );
    if (found !== flags[0]) found.dispose();
    flags.forEach((f) => f.dispose());
    this.#unscaled.clear();
  }

  /** The current scale (a host read). */
  getScale(): number {
    return this.enabled ? (this.#scale.item() as number) : 1;
  }

  /** PyTorch's state dict: the scale, the factors and the count of good steps (host reads). */
  stateDict(): GradScalerState {
    return {
      scale: this.getScale(),
      growth_factor: this.growthFactor,
      backoff_factor: this.backoffFactor,
      growth_interval: this.growthInterval,
      _growth_tracker: this.#growthTracker.item() as number,
    };
  }

  /** Restores `stateDict()`'s values (the factors must be this scaler's). */
  loadStateDict(state: GradScalerState): void {
    const op = 'GradScaler.loadStateDict';
    for (const [key, mine] of [
      ['growth_factor', this.growthFactor],
      ['backoff_factor', this.backoffFactor],
      ['growth_interval', this.growthInterval],
    ] as const)
      if (state?.[key] !== mine) throw invalidArg(op, key, `this scaler's ${mine}`, state?.[key]);
    if (!(checkNumber(op, 'scale', state.scale) > 0)) throw invalidArg(op, 'scale', 'a number > 0', state.scale);
    if (checkInt(op, '_growth_tracker', state._growth_tracker) < 0)
      throw invalidArg(op, '_growth_tracker', 'an integer >= 0', state._growth_tracker);
    this.#scale.fill_(state.scale);
    this.#growthTracker.fill_(state._growth_tracker);
  }

  dispose(): void {
    [this.#scale, this.#growthTracker, ...this.#unscaled.values()].forEach((t) => t.dispose());
    this.#unscaled.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
