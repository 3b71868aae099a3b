/**
 * Host reads: every copy of tensor data into JavaScript (`item`, `toTypedArray`, `toArray`, `toNumbers`,
 * `toBooleans`, `allclose`, `clipGradNorm_`'s norm, ...). On a GPU each one waits for every queued kernel, so a
 * training step that reads nothing keeps the device busy; this is PyTorch's `torch.cuda.set_sync_debug_mode` on every
 * device. Reads are counted always (`hostReads()`); inside a region marked with `syncFree(what, fn)` (the training
 * steps mark theirs) the mode decides what else happens: nothing ('default'), a warning ('warn', code
 * MMSSL_HOST_READ, once per op and region), or a `HostReadError` ('error'). The state is per thread.
 */
import { checkOneOf, HostReadError, invalidArg } from '../errors.js';

export const SYNC_DEBUG_MODES = ['default', 'warn', 'error'] as const;
export type SyncDebugMode = (typeof SYNC_DEBUG_MODES)[number];

let mode: SyncDebugMode = 'default';
let reads = 0;
let region: { what: string; warned: Set<string> } | undefined;

/** What host reads inside `syncFree` regions do: nothing, warn or throw (PyTorch's modes). */
export function setSyncDebugMode(next: SyncDebugMode): void {
  mode = checkOneOf('setSyncDebugMode', 'mode', next, SYNC_DEBUG_MODES);
}

export function getSyncDebugMode(): SyncDebugMode {
  return mode;
}

/**
 * Runs `fn` (which may be asynchronous) with the sync debug mode `mode` (a configuration's `syncDebug`), then restores
 * the thread's; 'default' or undefined leaves the thread's mode as it is.
 */
export async function withSyncDebugMode<T>(mode: SyncDebugMode | undefined, fn: () => Promise<T>): Promise<T> {
  if (mode === undefined || mode === 'default') return fn();
  const previous = getSyncDebugMode();
  setSyncDebugMode(mode);
  try {
    return await fn();
  } finally {
    setSyncDebugMode(previous);
  }
}

/** Host reads made in this thread since it loaded mmssl. */
export function hostReads(): number {
  return reads;
}

/**
 * Runs `fn` as a region that should not read tensor data to the host (`what` names it in warnings and errors);
 * regions nest, the outermost names them.
 */
export function syncFree<T>(what: string, fn: () => T): T {
  if (typeof what !== 'string' || what === '') throw invalidArg('syncFree', 'what', 'a name for the region', what);
  if (typeof fn !== 'function') throw invalidArg('syncFree', 'fn', 'a function', fn);
  if (region) return fn();
  region = { what, warned: new Set() };
  try {
    return fn();
  } finally {
    region = undefined;
  }
}

/** Counts one host read by `op`, and applies the mode inside a sync-free region. */
export function countHostRead(op: string): void {
  reads++;
  if (!region || mode === 'default') return;
  const message = `${op} read tensor data to the host inside ${region.what}, which should not (each read waits for the device)`;
  if (mode === 'error') throw new HostReadError(`${message}; setSyncDebugMode('error') forbids it`, op);
  if (region.warned.has(op)) return;
  region.warned.add(op);
  process.emitWarning(message, { code: 'MMSSL_HOST_READ' });
}
