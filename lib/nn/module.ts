/**
 * `torch.nn.Module`: a tree of layers owning named parameters, buffers and submodules. Keys are data, exactly
 * PyTorch's (`layer1.0.bn1.running_mean`), so state dicts move between mmssl and PyTorch unchanged.
 */
import { StateDictError, checkBool, checkOneOf, checkOptions, invalidArg } from '../errors.js';
import { noGrad, zeroGrad } from '../torch/autograd.js';
import { type Device, checkDevice } from '../torch/device.js';
import { type DType, isDType, isFloatingPoint } from '../torch/dtype.js';
import { keep } from '../torch/scope.js';
import { MEMORY_FORMATS, type MemoryFormat, Tensor } from '../torch/tensor.js';

export interface NamedOptions {
  /** Prepended to every name, followed by a dot. */
  prefix?: string;
  /** Include the members of every submodule, not only this module's own. */
  recurse?: boolean;
}

export interface ModuleToOptions {
  dtype?: DType;
  device?: Device;
  memoryFormat?: MemoryFormat;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

const join = (prefix: string, name: string) => (prefix === '' ? name : `${prefix}.${name}`);

/**
 * The base of every layer and model. Subclasses register their members in the constructor, in PyTorch's order
 * (`this.weight = this.registerParameter('weight', ...)`), and implement `forward`. Registered tensors leave every
 * `tidy()` scope (modules are often built inside one) and live until `dispose()`.
 */
export abstract class Module {
  /** Training mode (batch statistics, dropout) or evaluation mode; `train()` and `eval()` set it on the whole tree. */
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #children = new Map<string, Module | null>();

  abstract forward(...inputs: unknown[]): unknown;

  // ---- registration -----------------------------------------------------------------------------------------------

  /** A name is one path segment, and a parameter, a buffer and a submodule cannot share it (PyTorch's KeyError). */
  #checkName(op: string, name: unknown, own: Map<string, unknown>): string {
    if (typeof name !== 'string' || name === '' || name.includes('.'))
      throw invalidArg(op, 'name', "a non-empty string without '.'", name);
    const taken = [this.#parameters, this.#buffers, this.#children].some(
      (members) => members !== own && members.has(name),
    );
    if (taken) throw invalidArg(op, 'name', 'a name no other parameter, buffer or submodule of this module has', name);
    return name;
  }

  /**
   * Adds a parameter (PyTorch's `register_parameter` of `nn.Parameter(param)`): the module now owns this tensor, which
   * must be a leaf, and turns on its `requiresGrad` (freeze it afterwards with `requiresGrad_(false)`). `null`
   * reserves the name, as PyTorch does for an absent bias. Returns `param`.
   */
  registerParameter<T extends Tensor | null>(name: string, param: T): T {
    this.#checkName('Module.registerParameter', name, this.#parameters);
    if (param !== null) {
      if (!(param instanceof Tensor)) throw invalidArg('Module.registerParameter', 'param', 'a Tensor or null', param);
      if (!isFloatingPoint(param.dtype))
        throw invalidArg(
          'Module.registerParameter',
          'param',
          'a floating-point tensor (only those have gradients)',
          param.dtype,
        );
      if (!param.isLeaf)
        throw invalidArg('Module.registerParameter', 'param', 'a leaf tensor (detach() it first)', param);
      keep(param).requiresGrad = true;
    }
    this.#parameters.set(name, param);
    return param;
  }

  /**
   * Adds a buffer: state that is not trained (running statistics). Persistent buffers (the default) are part of the
   * state dict. The module owns the tensor. Returns `tensor`.
   */
  registerBuffer<T extends Tensor | null>(name: string, tensor: T, options: { persistent?: boolean } = {}): T {
    const { persistent = true } = checkOptions('Module.registerBuffer', options);
    this.#checkName('Module.registerBuffer', name, this.#buffers);
    if (tensor !== null && !(tensor instanceof Tensor))
      throw invalidArg('Module.registerBuffer', 'tensor', 'a Tensor or null', tensor);
    if (checkBool('Module.registerBuffer', 'persistent', persistent)) this.#nonPersistent.delete(name);
    else this.#nonPersistent.add(name);
    this.#buffers.set(name, tensor === null ? null : keep(tensor));
    return tensor;
  }

  /** Adds a submodule under `name` (its members' keys start with `name.`). Returns `module`. */
  registerModule<T extends Module | null>(name: string, module: T): T {
    this.#checkName('Module.registerModule', name, this.#children);
    if (module !== null && !(module instanceof Module))
      throw invalidArg('Module.registerModule', 'module', 'a Module or null', module);
    this.#children.set(name, module);
    return module;
  }

  // ---- traversal (arrays; shared parameters, buffers and modules appear once, as in PyTorch) -----------------------

  /** This module and every submodule, depth first in registration order, with their dotted paths ('' for this one). */
  namedModules(options: { prefix?: string } = {}): [string, Module][] {
    const prefix = checkPrefix('Module.namedModules', checkOptions('Module.namedModules', options).prefix);
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (module: Module, path: string) => {
      if (seen.has(module)) return;
      seen.add(module);
      out.push([path, module]);
      for (const [name, child] of module.#children) if (child !== null) visit(child, join(path, name));
    };
    visit(this, prefix);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** The direct submodules. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    for (const [name, child] of this.#children) {
      if (child === null || seen.has(child)) continue;
      seen.add(child);
      out.push([name, child]);
    }
    return out;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  #namedMembers(
    op: string,
    options: NamedOptions,
    members: (m: Module) => Map<string, Tensor | null>,
  ): [string, Tensor][] {
    const { prefix: given, recurse = true } = checkOptions(op, options);
    const prefix = checkPrefix(op, given);
    const modules: [string, Module][] = checkBool(op, 'recurse', recurse)
      ? this.namedModules({ prefix })
      : [[prefix, this]];
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [path, module] of modules) {
      for (const [name, t] of members(module)) {
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        out.push([join(path, name), t]);
      }
    }
    return out;
  }

  /** The parameters with their dotted names, this module's own first, then each submodule's. */
  namedParameters(options: NamedOptions = {}): [string, Tensor][] {
    return this.#namedMembers('Module.namedParameters', options, (m) => m.#parameters);
  }

  /** The parameters, as optimizers take them. */
  parameters(options: { recurse?: boolean } = {}): Tensor[] {
    return this.namedParameters(options).map(([, t]) => t);
  }

  /** The buffers (persistent or not) with their dotted names. */
  namedBuffers(options: NamedOptions = {}): [string, Tensor][] {
    return this.#namedMembers('Module.namedBuffers', options, (m) => m.#buffers);
  }

  buffers(options: { recurse?: boolean } = {}): Tensor[] {
    return this.namedBuffers(options).map(([, t]) => t);
  }

  // ---- state dict -------------------------------------------------------------------------------------------------

  /**
   * Parameters and persistent buffers by key, in PyTorch's order: own parameters, own buffers, then each submodule's
   * (a module reachable by two paths appears under both). The values are the module's own tensors, not copies: do not
   * dispose them, and `clone()` them for a snapshot that later training does not change.
   */
  stateDict(): Map<string, Tensor> {
    const dict = new Map<string, Tensor>();
    const save = (module: Module, prefix: string) => {
      for (const [name, p] of module.#parameters) if (p !== null) dict.set(prefix + name, p);
      for (const [name, b] of module.#buffers)
        if (b !== null && !module.#nonPersistent.has(name)) dict.set(prefix + name, b);
      for (const [name, child] of module.#children) if (child !== null) save(child, `${prefix}${name}.`);
    };
    save(this, '');
    return dict;
  }

  /**
   * Copies a state dict into this module's tensors (converting dtype and device). Everything is checked first: with
   * `strict` (the default) missing or unexpected keys, and always shapes that differ, throw a `StateDictError` naming
   * them, and nothing is modified. Without `strict` the keys that did not match are returned.
   */
  loadStateDict(
    stateDict: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadStateDictResult {
    const op = 'Module.loadStateDict';
    const strict = checkBool(op, 'strict', checkOptions(op, options).strict ?? true);
    if (stateDict === null || typeof stateDict !== 'object')
      throw invalidArg(op, 'stateDict', 'a Map or an object of tensors', stateDict);
    const source = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((key) => !source.has(key));
    const unexpectedKeys = [...source.keys()].filter((key) => !own.has(key));
    const shapeMismatches: string[] = [];
    for (const [key, value] of source) {
      if (!(value instanceof Tensor)) throw invalidArg(op, `stateDict['${key}']`, 'a Tensor', value);
      const target = own.get(key);
      if (target !== undefined && !sameShape(target.shape, value.shape)) {
        shapeMismatches.push(
          `${key}: [${value.shape.join(', ')}] in the state dict, [${target.shape.join(', ')}] in the module`,
        );
      }
    }
    if (shapeMismatches.length > 0 || (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0))) {
      const missing = strict ? missingKeys : [];
      const unexpected = strict ? unexpectedKeys : [];
      const parts = [
        ['missing keys', missing],
        ['unexpected keys', unexpected],
        ['shape mismatches', shapeMismatches],
      ] as const;
      const detail = parts
        .filter(([, list]) => list.length > 0)
        .map(([what, list]) => `${what}: ${list.join('; ')}`)
        .join('. ');
      throw new StateDictError(
        `${op}: the state dict does not fit ${this.constructor.name} (nothing was loaded). ${detail}`,
        missing,
        unexpected,
        shapeMismatches,
      );
    }
    noGrad(() => {
      for (const [key, target] of own) {
        const value = source.get(key);
        if (value !== undefined) target.copy_(value);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---- modes, devices, gradients, lifetime ------------------------------------------------------------------------

  /** Sets training mode on this module and every submodule. */
  train(mode = true): this {
    checkBool('Module.train', 'mode', mode);
    for (const module of this.modules()) module.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Moves every parameter, buffer and gradient to a device and/or a floating dtype and/or a memory format, in place:
   * each tensor keeps its identity (PyTorch's `t.data = ...`), so optimizers already holding the parameters stay
   * valid. As in PyTorch, the dtype applies to floating tensors only (`num_batches_tracked` stays int64) and the memory
   * format to 4-D ones (convolution weights).
   */
  to(target: Device | DType | ModuleToOptions): this {
    const op = 'Module.to';
    const { dtype, device, memoryFormat } =
      typeof target === 'string'
        ? isDType(target)
          ? { dtype: target }
          : { device: checkDevice(op, target) }
        : checkOptions(op, target);
    if (dtype !== undefined && !isFloatingPoint(dtype)) throw invalidArg(op, 'dtype', 'a floating-point dtype', dtype);
    if (device !== undefined) checkDevice(op, device);
    if (memoryFormat !== undefined) checkOneOf(op, 'memoryFormat', memoryFormat, MEMORY_FORMATS);
    const move = (t: Tensor) => {
      const moved = t.to({
        dtype: isFloatingPoint(t.dtype) ? dtype : undefined,
        device,
        memoryFormat: t.ndim === 4 ? memoryFormat : undefined,
      });
      t.data = moved;
      moved.dispose();
    };
    noGrad(() => {
      for (const p of this.parameters()) {
        move(p);
        const grad = p.grad;
        if (grad !== null) {
          move(grad);
          grad.dispose();
        }
      }
      for (const b of this.buffers()) move(b);
    });
    return this;
  }

  /** Clears the gradients of every parameter in one native call: set to null (the default) or zeroed. */
  zeroGrad(options: { setToNone?: boolean } = {}): void {
    zeroGrad(this.parameters(), options);
  }

  /** Calls `fn` on every submodule (children first) and then on this module, as PyTorch's `apply`. */
  apply(fn: (module: Module) => void): this {
    if (typeof fn !== 'function') throw invalidArg('Module.apply', 'fn', 'a function', fn);
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  /** Frees every parameter and buffer of the tree now; the module cannot be used afterwards. */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function checkPrefix(op: string, prefix: unknown = ''): string {
  if (typeof prefix !== 'string') throw invalidArg(op, 'prefix', 'a string', prefix);
  return prefix;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}
