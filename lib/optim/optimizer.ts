/**
 * `Optimizer`: the base of SGD, Adam, AdamW and LARS. The update itself runs natively, one call per `step()` over
 * every parameter; this class keeps PyTorch's surface: mutable `paramGroups` (a scheduler or the user may change any
 * option between steps), `zeroGrad`, and `stateDict`/`loadStateDict` in PyTorch's layout.
 */
import { ArgumentError, DisposedError, StateDictError, checkOptions, invalidArg } from '../errors.js';
import { native, type ObjectHandle } from '../native.js';
import { zeroGrad } from '../torch/autograd.js';
import { Tensor } from '../torch/tensor.js';

/** A parameter group: its tensors and, optionally, options that override the optimizer's defaults. */
export type ParamGroupSpec<O> = { params: readonly Tensor[] } & Partial<O>;

/** A group as the optimizer holds it: every option resolved, each one mutable between steps (PyTorch's dicts). */
export type ParamGroup<O> = { params: readonly Tensor[] } & O;

/** Per-parameter state: tensors and numbers under PyTorch's keys (`momentum_buffer`, `exp_avg`, `step`, ...). */
export type ParamState = Record<string, Tensor | number>;

/**
 * PyTorch's optimizer state dict: `state` by parameter index (in group order), `param_groups` with their options under
 * PyTorch's names (`weight_decay`, ...) and the indices of their parameters.
 */
export interface OptimizerStateDict {
  state: Record<number, ParamState>;
  param_groups: Record<string, unknown>[];
}

/** Which native step an optimizer runs. */
export type OptimizerKind = 'sgd' | 'adam' | 'adamw' | 'lars';

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export abstract class Optimizer<O extends object> implements Disposable {
  readonly defaults: Readonly<O>;
  readonly paramGroups: ParamGroup<O>[];
  #native: ObjectHandle | null;
  readonly #op: string;

  /**
   * @param params the tensors to optimise, or parameter groups with their own options
   * @param validate throws for an option outside its domain (called on every step, since options may change)
   */
  protected constructor(
    kind: OptimizerKind,
    params: readonly Tensor[] | readonly ParamGroupSpec<O>[],
    defaults: O,
    private readonly validate: (op: string, options: O) => void,
  ) {
    this.#op = new.target.name;
    this.defaults = Object.freeze({ ...defaults });
    this.paramGroups = toGroups(this.#op, params).map((g, i) => {
      const unknown = Object.keys(g).find((k) => k !== 'params' && !(k in defaults));
      if (unknown)
        throw invalidArg(
          this.#op,
          `paramGroups[${i}].${unknown}`,
          `one of ${Object.keys(defaults).join(', ')}`,
          unknown,
        );
      return { ...defaults, ...g };
    });
    const seen = new Set<Tensor>();
    for (const [i, group] of this.paramGroups.entries()) {
      group.params.forEach((p, j) => {
        if (!(p instanceof Tensor)) throw invalidArg(this.#op, `paramGroups[${i}].params[${j}]`, 'a Tensor', p);
        if (seen.has(p))
          throw new ArgumentError(`${this.#op}: a parameter appears more than once (paramGroups[${i}].params[${j}])`);
        seen.add(p);
      });
    }
    this.#native = native.optimizerCreate(
      kind,
      this.paramGroups.map((g) => ({ params: g.params.map((p) => p.handle), options: this.#options(g) })),
    );
  }

  /** Updates every parameter that has a gradient, with each group's current options. */
  step(): void {
    native.optimizerStep(
      this.#handle(),
      this.paramGroups.map((g) => this.#options(g)),
    );
  }

  /** Clears every parameter's gradient in one native call: set to null (default, as PyTorch 2) or zeroed. */
  zeroGrad(options: { setToNone?: boolean } = {}): void {
    zeroGrad(this.#parameters(), options);
  }

  /**
   * The state in PyTorch's layout. Its tensors are new references to the optimizer's buffers (dispose them, or call
   * this inside `tidy()`); `loadStateDict` copies, so a saved state never aliases a live one.
   */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamState> = {};
    native.optimizerState(this.#handle()).forEach((s, i) => {
      if (s === null) return;
      const tensors = Object.entries(s.tensors).map(([k, h]) => [k, new Tensor(h)]);
      state[i] = { ...s.numbers, ...Object.fromEntries(tensors) };
    });
    let next = 0;
    const param_groups = this.paramGroups.map((g) => {
      const { params, ...options } = g;
      const entries = Object.entries(options).map(([k, v]) => [snakeCase(k), Array.isArray(v) ? [...v] : v]);
      return { ...Object.fromEntries(entries), params: params.map(() => next++) };
    });
    return { state, param_groups };
  }

  /** Restores options and state from `stateDict()` (of an optimizer of the same kind over the same parameters). */
  loadStateDict(stateDict: OptimizerStateDict): void {
    const { state, param_groups: groups } = checkOptions(`${this.#op}.loadStateDict`, stateDict);
    if (!Array.isArray(groups) || groups.length !== this.paramGroups.length) {
      throw new StateDictError(
        `${this.#op}.loadStateDict: the state dict has ${Array.isArray(groups) ? groups.length : 'no'} parameter groups, the optimizer ${this.paramGroups.length}`,
      );
    }
    const options = this.paramGroups.map((g, i) => this.#loadedOptions(g, groups[i], i));
    const perParam = this.#parameters().map((_, i) => state?.[i] ?? null);
    native.optimizerLoadState(
      this.#handle(),
      perParam.map(
        (s) => s && Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v instanceof Tensor ? v.handle : v])),
      ),
    );
    options.forEach((o, i) => Object.assign(this.paramGroups[i], o));
  }

  /** Frees the optimizer's state now (its buffers can be large); the optimizer cannot be used afterwards. */
  dispose(): void {
    if (this.#native === null) return;
    native.optimizerDispose(this.#native);
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #handle(): ObjectHandle {
    if (this.#native === null) throw new DisposedError(`${this.#op}: the optimizer was disposed`);
    return this.#native;
  }

  #parameters(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** A group's options, validated, without its params: what the native step reads. */
  #options(group: ParamGroup<O>): O {
    const { params: _params, ...options } = group;
    this.validate(this.#op, options as unknown as O);
    return options as unknown as O;
  }

  /** The options a saved group carries (PyTorch's names), checked against this group before anything changes. */
  #loadedOptions(group: ParamGroup<O>, saved: Record<string, unknown>, i: number): O {
    const where = `${this.#op}.loadStateDict: param_groups[${i}]`;
    if (!Array.isArray(saved?.params) || saved.params.length !== group.params.length) {
      throw new StateDictError(
        `${where} has ${Array.isArray(saved?.params) ? saved.params.length : 'no'} parameters, the optimizer's group ${group.params.length}`,
      );
    }
    const options = Object.fromEntries(
      Object.keys(this.defaults).map((k) => {
        if (!(snakeCase(k) in saved)) throw new StateDictError(`${where} lacks '${snakeCase(k)}'`, [snakeCase(k)]);
        return [k, saved[snakeCase(k)]];
      }),
    ) as O;
    this.validate(where, options);
    return options;
  }
}

function toGroups<O>(op: string, params: readonly Tensor[] | readonly ParamGroupSpec<O>[]): ParamGroupSpec<O>[] {
  if (!Array.isArray(params) || params.length === 0)
    throw invalidArg(op, 'params', 'a non-empty array of tensors or parameter groups', params);
  if (params.every((p) => p instanceof Tensor)) return [{ params } as unknown as ParamGroupSpec<O>];
  return params.map((g, i) => {
    if (
      g === null ||
      typeof g !== 'object' ||
      !Array.isArray((g as ParamGroupSpec<O>).params) ||
      (g as ParamGroupSpec<O>).params.length === 0
    ) {
      throw invalidArg(op, `params[${i}]`, 'a Tensor or a group {params: Tensor[] (non-empty), ...options}', g);
    }
    return g as ParamGroupSpec<O>;
  });
}

// ---- option checks shared by the optimizers ---------------------------------------------------------------------

export function checkNonNegative(op: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0) || value === Infinity)
    throw invalidArg(op, name, 'a finite number >= 0', value);
  return value;
}

export function checkUnitInterval(op: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) throw invalidArg(op, name, 'a number in [0, 1)', value);
  return value;
}
