/**
 * Deterministic tensor lifetime. The JS garbage collector cannot see native (or GPU) memory, so tensors are freed
 * by `dispose()`, `using`, or a `tidy()` scope; the native finaliser of each handle is only a safety net.
 */
import { ArgumentError, invalidArg } from '../errors.js';
import { type Handle, native } from '../native.js';
import { Tensor } from './tensor.js';

/** A scope opened by `tidy()`: the tensors created while it is the innermost one. */
export class Scope {
  readonly tensors: Tensor[] = [];
  constructor(readonly parent: Scope | null) {}
}

let current: Scope | null = null;

/** Registers a new tensor with the innermost scope (called by the Tensor constructor). */
export function track(tensor: Tensor): Scope | null {
  if (current) current.tensors.push(tensor);
  return current;
}

function collect(value: unknown, into: Set<Tensor>, seen = new Set<unknown>()): Set<Tensor> {
  if (value instanceof Tensor) {
    into.add(value);
  } else if (value && typeof value === 'object' && !seen.has(value) && !ArrayBuffer.isView(value)) {
    seen.add(value);
    const items = value instanceof Map ? value.values() : Array.isArray(value) ? value : Object.values(value);
    for (const item of items) collect(item, into, seen);
  }
  return into;
}

/**
 * Runs `fn` and frees every tensor created inside it, except the tensors it returns (alone, or inside arrays,
 * plain objects and Maps) and those passed to `keep()`. Returned tensors move to the enclosing scope. Scopes nest.
 * `fn` must be synchronous: a scope cannot follow an `await`.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw invalidArg('tidy', 'fn', 'a function', fn);
  const scope = new Scope(current);
  current = scope;
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) {
      result.catch(() => undefined);
      throw new ArgumentError('tidy: fn must be synchronous (it returned a Promise); await outside tidy()');
    }
  } catch (e) {
    current = scope.parent;
    release(scope, new Set());
    throw e;
  }
  current = scope.parent;
  release(scope, collect(result, new Set()));
  return result;
}

/** Ends a scope: its returned tensors move to the enclosing scope, the others are released in one native call. */
function release(scope: Scope, returned: Set<Tensor>): void {
  const handles: Handle[] = [];
  for (const t of scope.tensors) {
    if (t.scope !== scope) continue;
    if (returned.has(t)) {
      t.moveToScope(scope.parent);
    } else {
      const handle = t.takeHandle();
      if (handle !== null) handles.push(handle);
    }
  }
  if (handles.length > 0) native.disposeAll(handles);
}

/** Exempts a tensor from every enclosing `tidy()`: it lives until disposed (or collected). */
export function keep<T extends Tensor>(tensor: T): T {
  tensor.moveToScope(null);
  return tensor;
}

export function currentScope(): Scope | null {
  return current;
}
