/**
 * mmssl's errors: every one carries a stable `code` and says what went wrong and where (op, argument, shape).
 * Argument errors are `TypeError`s thrown before any native code runs; LibTorch's own errors arrive as `TorchError`.
 */

export type ErrorCode =
  | 'ERR_MMSSL_ARG'
  | 'ERR_MMSSL_TORCH'
  | 'ERR_MMSSL_DISPOSED'
  | 'ERR_MMSSL_LOAD'
  | 'ERR_MMSSL_DEVICE'
  | 'ERR_MMSSL_IO'
  | 'ERR_MMSSL_STATE_DICT'
  | 'ERR_MMSSL_DIST'
  | 'ERR_MMSSL_BUSY';

export class MmsslError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An error raised by LibTorch (c10::Error or a C++ exception), with the op that raised it. */
export class TorchError extends MmsslError {
  readonly op: string;
  constructor(message: string, op: string) {
    super('ERR_MMSSL_TORCH', message);
    this.op = op;
  }
}

/** A tensor used after `dispose()` (or after the `tidy` scope that owned it ended). */
export class DisposedError extends MmsslError {
  constructor(message = 'tensor used after dispose() (or after the tidy() scope that owned it ended)') {
    super('ERR_MMSSL_DISPOSED', message);
  }
}

/** The native addon or its LibTorch could not be loaded; the message lists what was tried and how to fix it. */
export class LoadError extends MmsslError {
  constructor(message: string) {
    super('ERR_MMSSL_LOAD', message);
  }
}

/** A file that cannot be read or written as asked (missing, truncated, corrupt, wrong format); names the file. */
export class FileError extends MmsslError {
  readonly path: string;
  constructor(path: string, message: string) {
    super('ERR_MMSSL_IO', `${path}: ${message}`);
    this.path = path;
  }
}

/** A state dict that does not fit a module or optimizer: keys missing or unexpected, shapes that differ, by name. */
export class StateDictError extends MmsslError {
  constructor(
    message: string,
    readonly missingKeys: readonly string[] = [],
    readonly unexpectedKeys: readonly string[] = [],
    readonly shapeMismatches: readonly string[] = [],
  ) {
    super('ERR_MMSSL_STATE_DICT', message);
  }
}

/** A process group that could not form, or a collective that failed: another rank died or did not arrive in time. */
export class DistributedError extends MmsslError {
  constructor(message: string) {
    super('ERR_MMSSL_DIST', message);
  }
}

/** A wrong argument type or value, found before any native code ran. */
export class ArgumentError extends TypeError {
  readonly code = 'ERR_MMSSL_ARG' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ArgumentError';
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'string') return `string '${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

/** The one message shape for bad arguments: `op: name must be EXPECTED, got VALUE`. */
export function invalidArg(op: string, name: string, expected: string, value: unknown): ArgumentError {
  return new ArgumentError(`${op}: ${name} must be ${expected}, got ${describe(value)}`);
}

export function checkInt(op: string, name: string, value: unknown): number {
  if (!Number.isSafeInteger(value)) throw invalidArg(op, name, 'an integer', value);
  return value as number;
}

export function checkNumber(op: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidArg(op, name, 'a number', value);
  return value;
}

export function checkBool(op: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidArg(op, name, 'a boolean', value);
  return value;
}

export function checkInts(op: string, name: string, value: unknown): number[] {
  if (!Array.isArray(value) || !value.every(Number.isSafeInteger)) throw invalidArg(op, name, 'an array of integers', value);
  return value;
}

export function checkShape(op: string, name: string, value: unknown): number[] {
  if (!Array.isArray(value) || !value.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw invalidArg(op, name, 'a shape (an array of non-negative integers)', value);
  }
  return value;
}

export function checkOneOf<T extends string>(op: string, name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw invalidArg(op, name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  return value as T;
}

/** An object that is not an array or null: what JSON objects, options and state dicts are. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Checks that `options` is absent or a plain object, so that `x.sum(1, true)` style mistakes are caught. */
export function checkOptions<T extends object>(op: string, options: T | undefined): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArg(op, 'options', 'an options object', options);
  }
  return options;
}
