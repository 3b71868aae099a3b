/**
 * mmssl's errors: one base class, `MmsslError`, and a stable `code` on every error the package throws, argument errors
 * included (as Node's own errors carry `code`). Each says what went wrong and where (op, argument, file, field).
 * The native addon throws these same classes (lib/native.ts registers them with it), and errors cross worker and
 * process boundaries as plain data (`toErrorData`) rebuilt into their class (`fromErrorData`).
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
  | 'ERR_MMSSL_BUSY'
  | 'ERR_MMSSL_HOST_READ'
  | 'ERR_MMSSL_NONFINITE'
  | 'ERR_MMSSL_INTERNAL';

/** Where an error points: the op that raised it, the file, the request field; and what caused it. */
export interface ErrorDetails {
  op?: string;
  path?: string;
  field?: string;
  cause?: unknown;
}

export class MmsslError extends Error {
  readonly code: ErrorCode;
  // (declared, not initialised: an error has these own properties only where they say something)
  declare readonly op?: string;
  declare readonly path?: string;
  declare readonly field?: string;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    for (const key of ['op', 'path', 'field'] as const)
      if (details[key] !== undefined) Object.defineProperty(this, key, { value: details[key], enumerable: true });
  }
}

/** A wrong argument type or value, found before any work was done (in TypeScript, or by the native layer). */
export class ArgumentError extends MmsslError {
  constructor(message: string, details?: ErrorDetails) {
    super('ERR_MMSSL_ARG', message, details);
  }
}

/** An error raised by LibTorch (c10::Error or a C++ exception), with the op that raised it. */
export class TorchError extends MmsslError {
  declare readonly op: string;
  constructor(message: string, op: string) {
    super('ERR_MMSSL_TORCH', message, { op });
  }
}

/** A tensor, optimizer or process group used after it was disposed (or after the tidy() scope that owned it ended). */
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

/** A device this machine does not have (CUDA without a GPU, or with a CPU-only LibTorch), or a CUDA-only query. */
export class DeviceError extends MmsslError {
  constructor(message: string) {
    super('ERR_MMSSL_DEVICE', message);
  }
}

/** A file that cannot be read or written as asked (missing, truncated, corrupt, wrong format); names the file. */
export class FileError extends MmsslError {
  declare readonly path: string;
  constructor(path: string, message: string, details: Omit<ErrorDetails, 'path'> = {}) {
    super('ERR_MMSSL_IO', `${path}: ${message}`, { ...details, path });
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
  constructor(message: string, details?: ErrorDetails) {
    super('ERR_MMSSL_DIST', message, details);
  }
}

/** A bad input in a request to a model (serving): `field` names the modality, or the part of the request. */
export class InputError extends MmsslError {
  declare readonly field: string;
  constructor(field: string, message: string) {
    super('ERR_MMSSL_ARG', `${field}: ${message}`, { field });
  }
}

/** A bounded queue is full: retry later (HTTP 503). */
export class QueueFullError extends MmsslError {
  constructor(depth: number) {
    super('ERR_MMSSL_BUSY', `the inference queue is full (${depth} requests waiting): retry later`);
  }
}

/**
 * Tensor data read into JavaScript inside a region that forbids it (`setSyncDebugMode('error')`): `op` is the read
 * (`item`, `toTypedArray`, ...), the message names the region.
 */
export class HostReadError extends MmsslError {
  declare readonly op: string;
  constructor(message: string, op: string) {
    super('ERR_MMSSL_HOST_READ', message, { op });
  }
}

/**
 * Training met a loss that is not finite (NaN or an infinity: a diverging run, or inputs that were): the message
 * names the epoch, and the step and the batch's samples where it knows them.
 */
export class NonFiniteError extends MmsslError {
  constructor(
    message: string,
    /** The epoch (0-based), and for pre-training the step and the batch's sample ids. */
    readonly at: { epoch: number; step?: number; ids?: readonly string[] },
  ) {
    super('ERR_MMSSL_NONFINITE', message);
  }
}

/** A failure that is mmssl's own fault, not the caller's (a worker that died, a broken invariant): a bug to report. */
export class InternalError extends MmsslError {
  constructor(message: string, details?: ErrorDetails) {
    super('ERR_MMSSL_INTERNAL', message, details);
  }
}

/** A worker thread that exited while it held requests: killed by what it was doing, or out of memory. */
export class WorkerExitError extends InternalError {}

const CLASSES: Record<string, abstract new (...args: never[]) => Error> = {
  MmsslError,
  ArgumentError,
  TorchError,
  DisposedError,
  LoadError,
  DeviceError,
  FileError,
  StateDictError,
  DistributedError,
  InputError,
  QueueFullError,
  HostReadError,
  NonFiniteError,
  InternalError,
  WorkerExitError,
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** An error as plain data, for structured cloning (worker threads) or JSON (child processes). */
export interface ErrorData {
  name: string;
  message: string;
  code?: string;
  op?: string;
  path?: string;
  field?: string;
  stack?: string;
  /** A class's own fields (StateDictError's key lists, NonFiniteError's step and ids). */
  fields?: Record<string, unknown>;
  cause?: ErrorData;
}

const COMMON_FIELDS = new Set(['code', 'op', 'path', 'field']);

/** The fields an mmssl error class adds to the common ones (its own enumerable properties). */
const ownFields = (error: MmsslError) =>
  Object.fromEntries(Object.entries(error).filter(([key]) => !COMMON_FIELDS.has(key)));

/** `error` as data: its class name, code, message, where it points, its stack and its cause. */
export function toErrorData(error: unknown): ErrorData {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const { name, message, stack } = error;
  const e = error as Partial<MmsslError> & { code?: unknown };
  return {
    name,
    message,
    stack,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(e.op !== undefined ? { op: e.op } : {}),
    ...(e.path !== undefined ? { path: e.path } : {}),
    ...(e.field !== undefined ? { field: e.field } : {}),
    ...(error instanceof MmsslError ? { fields: ownFields(error) } : {}),
    ...(error.cause !== undefined ? { cause: toErrorData(error.cause) } : {}),
  };
}

/**
 * The error `data` describes, rebuilt in its class (mmssl's, or Error) with its code, message, details and cause;
 * its stack is the original one, where it was thrown (a worker's).
 */
export function fromErrorData(data: ErrorData): Error {
  const ctor = Object.hasOwn(CLASSES, data.name)
    ? CLASSES[data.name]
    : data.code?.startsWith('ERR_MMSSL_')
      ? MmsslError
      : Error;
  const error = Reflect.construct(
    Error,
    [data.message, ...(data.cause ? [{ cause: fromErrorData(data.cause) }] : [])],
    ctor,
  ) as Error & Record<string, unknown>;
  Object.defineProperty(error, 'name', { value: data.name, writable: true, configurable: true });
  for (const key of ['code', 'op', 'path', 'field'] as const) if (data[key] !== undefined) error[key] = data[key];
  if (data.fields) Object.assign(error, data.fields);
  if (data.stack) error.stack = data.stack;
  return error;
}

/** Something that describes itself for error messages (a Tensor: its shape, dtype and device). */
export const describeSelf: unique symbol = Symbol('mmssl.describe');

/** A value as error messages show it: its kind and, where short, the value; a tensor as shape, dtype and device. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'string') return `string '${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  if (typeof value === 'object' && describeSelf in value)
    return (value as { [describeSelf](): string })[describeSelf]();
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

/**
 * The one message shape for bad arguments: `op: name must be EXPECTED, got VALUE` (with `path`: `op: name in PATH
 * must be ...`, for a value read from a file).
 */
export function invalidArg(op: string, name: string, expected: string, value: unknown, path?: string): ArgumentError {
  const where = path === undefined ? name : `${name} in ${path}`;
  return new ArgumentError(`${op}: ${where} must be ${expected}, got ${describe(value)}`, {
    op,
    field: name,
    ...(path === undefined ? {} : { path }),
  });
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
  if (!Array.isArray(value) || !value.every(Number.isSafeInteger))
    throw invalidArg(op, name, 'an array of integers', value);
  return value;
}

export function checkShape(op: string, name: string, value: unknown): number[] {
  if (!Array.isArray(value) || !value.every((s) => Number.isSafeInteger(s) && s >= 0)) {
    throw invalidArg(op, name, 'a shape (an array of non-negative integers)', value);
  }
  return value;
}

export function checkOneOf<T extends string>(op: string, name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T))
    throw invalidArg(op, name, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
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
