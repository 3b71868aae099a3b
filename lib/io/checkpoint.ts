/**
 * Weights files and training checkpoints, both safetensors files written atomically (a kill at any moment leaves
 * the previous file intact), both with Hugging Face's `format: 'pt'` and an `mmssl` metadata entry (JSON: mmssl
 * version, architecture, input channels, band names, normalisation statistics, and whatever the caller adds).
 *
 * - `saveWeights` / `loadWeights`: a module's state dict under its own keys (torchvision's, for the backbones), so
 *   Python reads it with `model.load_state_dict(safetensors.torch.load_file(path))`.
 * - `saveCheckpoint` / `loadCheckpoint`: everything a resumed run needs to continue exactly: the model's, optimizer's
 *   and scheduler's state dicts, LibTorch's RNG states, step, epoch and the caller's `extra` (e.g. a sampler's
 *   state). A state dict is a tree of plain objects, arrays, Maps and JSON values with tensor leaves: each tensor is
 *   an entry named by its path (`model/conv1.weight`, `optimizer/state/0/exp_avg`, `rng/cpu`; '/' because module keys
 *   have dots), and the rest of the tree is JSON in the `checkpoint` metadata entry, each tensor replaced by a
 *   reference to its entry.
 */

import { open } from 'node:fs/promises';

import {
  FileError,
  StateDictError,
  checkBool,
  checkInt,
  checkOneOf,
  checkOptions,
  invalidArg,
  isObject,
} from '../errors.js';
import { isTorchFile, readTorchFile, TORCH_HEAD_BYTES, writeTorchFile } from './pytorch.js';
import { writeFileAtomic } from '../io/atomic.js';
import { packageVersion } from '../native.js';
import { type Metadata, checkPath, loadFileWithMetadata, readMetadata, serializeChunks } from '../io/safetensors.js';
import { type Device, cuda } from '../torch/device.js';
import { getRngState, setRngState } from '../torch/runtime.js';
import { tidy } from '../torch/scope.js';
import { Tensor } from '../torch/tensor.js';

/** What a weights file says about its model; any other JSON fields the caller adds are kept. */
export interface WeightsMetadata {
  /** The mmssl version that wrote the file (set by the writers). */
  version?: string;
  architecture?: string;
  inChannels?: number;
  /** One name per input channel, e.g. ['B4', 'B3', 'B2', 'B8']. */
  bands?: string[];
  /** Per-channel statistics the inputs were normalised with. */
  normalization?: { mean: number[]; std: number[] };
  [key: string]: unknown;
}

/** Anything with PyTorch's state-dict pair: a Module, an optimizer, a scheduler. */
export interface Stateful<S = unknown> {
  stateDict(): S;
  loadStateDict(state: S, options?: { strict?: boolean }): unknown;
}

/** What weights load into: an `nn.Module`, or anything with its state-dict methods. */
export interface ModuleLike {
  stateDict(): Map<string, Tensor>;
  loadStateDict(
    stateDict: Map<string, Tensor>,
    options: { strict: boolean },
  ): { missingKeys: readonly string[]; unexpectedKeys: readonly string[] };
}

export interface LoadedWeights {
  /** The file's `mmssl` entry; `{}` for a file PyTorch wrote. */
  metadata: WeightsMetadata;
  /** With `strict: false`, the module's keys the file lacks and the file's keys the module lacks. */
  missingKeys: string[];
  unexpectedKeys: string[];
}

// ---- the mmssl metadata entry -----------------------------------------------------------------------------------

/** What is wrong with `m`, as [field, expected, value], or undefined. */
function metadataProblem(m: Record<string, unknown>): [string, string, unknown] | undefined {
  const { architecture, inChannels, bands, normalization } = m;
  const channels = inChannels === undefined ? '' : ` of ${inChannels} (inChannels)`;
  const perChannel = (v: unknown, item: (x: unknown) => boolean): v is unknown[] =>
    Array.isArray(v) && v.every(item) && (inChannels === undefined || v.length === inChannels);
  if (architecture !== undefined && typeof architecture !== 'string') return ['architecture', 'a string', architecture];
  if (inChannels !== undefined && !(Number.isSafeInteger(inChannels) && (inChannels as number) > 0))
    return ['inChannels', 'a positive integer', inChannels];
  if (bands !== undefined && !perChannel(bands, (b) => typeof b === 'string'))
    return ['bands', `an array${channels} band names`, bands];
  if (normalization === undefined) return undefined;
  if (!isObject(normalization)) return ['normalization', 'an object {mean, std}', normalization];
  const { mean, std } = normalization;
  if (!perChannel(mean, Number.isFinite)) return ['normalization.mean', `an array${channels} numbers`, mean];
  if (!perChannel(std, (x) => Number.isFinite(x) && (x as number) > 0) || std.length !== mean.length) {
    return ['normalization.std', 'an array of positive numbers as long as mean', std];
  }
  return undefined;
}

/** The `format` and `mmssl` metadata entries for `metadata` (checked), with this mmssl's version. */
function weightsMetadata(op: string, metadata: unknown = {}): Metadata {
  if (!isObject(metadata)) throw invalidArg(op, 'metadata', 'an object', metadata);
  const problem = metadataProblem(metadata);
  if (problem) throw invalidArg(op, `metadata.${problem[0]}`, problem[1], problem[2]);
  try {
    return { format: 'pt', mmssl: JSON.stringify({ ...metadata, version: packageVersion }) };
  } catch (e) {
    throw invalidArg(op, 'metadata', `JSON-serialisable (${(e as Error).message})`, metadata);
  }
}

/** A metadata entry that holds JSON, parsed. */
function jsonEntry(path: string, metadata: Metadata, key: string, writer: string): unknown {
  if (metadata[key] === undefined) throw new FileError(path, `no '${key}' metadata: not written by mmssl's ${writer}`);
  try {
    return JSON.parse(metadata[key]);
  } catch (e) {
    throw new FileError(path, `corrupt '${key}' metadata: ${(e as Error).message}`);
  }
}

/** The `mmssl` entry, checked; `{}` when the file has none (PyTorch wrote it). */
function readWeightsMetadata(path: string, metadata: Metadata): WeightsMetadata {
  if (metadata.mmssl === undefined) return {};
  const m = jsonEntry(path, metadata, 'mmssl', 'saveWeights');
  if (!isObject(m)) throw new FileError(path, "corrupt 'mmssl' metadata: not a JSON object");
  const problem = metadataProblem(m);
  if (problem)
    throw new FileError(
      path,
      `corrupt 'mmssl' metadata: ${problem[0]} must be ${problem[1]}, got ${JSON.stringify(problem[2])}`,
    );
  return m;
}

// ---- state trees as JSON ----------------------------------------------------------------------------------------

const join = (path: string, key: unknown) => (path === '' ? String(key) : `${path}/${String(key)}`);

/**
 * A state tree as JSON, each tensor handed to `sink` under its path. What JSON lacks is tagged with the key '$':
 * `{"$": "tensor", "name": path}`, `{"$": "map", "entries": [[key, value], ...]}`, `{"$": "number", "value":
 * "NaN"}` (and ±Infinity, e.g. a best-so-far score, and -0), `{"$": "undefined"}`; so a plain object may not have a
 * '$' key.
 */
function encode(value: unknown, path: string, sink: (path: string, t: Tensor) => void): unknown {
  const bad = (expected: string) => invalidArg('saveCheckpoint', `the state at '${path}'`, expected, value);
  if (value instanceof Tensor) {
    sink(path, value);
    return { $: 'tensor', name: path };
  }
  if (value === undefined) return { $: 'undefined' };
  if (typeof value === 'number') {
    if (Number.isFinite(value) && !Object.is(value, -0)) return value;
    return { $: 'number', value: Object.is(value, -0) ? '-0' : String(value) }; // JSON would write null, or 0
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map((v, i) => encode(v, join(path, i), sink));
  if (value instanceof Map) {
    return {
      $: 'map',
      entries: [...value].map(([k, v]) => {
        if (typeof k !== 'string' && typeof k !== 'number') throw bad('a Map with string or number keys');
        return [k, encode(v, join(path, k), sink)];
      }),
    };
  }
  const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null)
    throw bad('a Tensor, Map, array, plain object, number, string, boolean, null or undefined');
  if ('$' in (value as object)) throw bad("an object without the key '$' (checkpoints use it)");
  return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, encode(v, join(path, k), sink)]));
}

/** The inverse of `encode`, taking the tensors from `tensors`; anything malformed is a FileError. */
function decode(value: unknown, tensors: ReadonlyMap<string, Tensor>, source: string): unknown {
  const corrupt = (why: string) => new FileError(source, `corrupt checkpoint: ${why}`);
  if (Array.isArray(value)) return value.map((v) => decode(v, tensors, source));
  if (!isObject(value)) return value;
  if (!('$' in value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v, tensors, source)]));
  switch (value.$) {
    case 'tensor': {
      const t = tensors.get(value.name as string);
      if (!t) throw corrupt(`the state refers to a tensor ${JSON.stringify(value.name)} the file lacks`);
      return t;
    }
    case 'map': {
      const entries = value.entries;
      if (!Array.isArray(entries) || !entries.every((e) => Array.isArray(e) && e.length === 2))
        throw corrupt('a Map without [key, value] entries');
      return new Map(entries.map(([k, v]) => [k, decode(v, tensors, source)]));
    }
    case 'number':
      if (!['NaN', 'Infinity', '-Infinity', '-0'].includes(value.value as string))
        throw corrupt(`a number ${JSON.stringify(value.value)}`);
      return Number(value.value);
    case 'undefined':
      return undefined;
    default:
      throw corrupt(`an unknown tagged value ${JSON.stringify(value.$)}`);
  }
}

// ---- applying state ---------------------------------------------------------------------------------------------

function checkStateful(op: string, name: string, value: unknown): Stateful {
  const v = value as Partial<Stateful> | null;
  if (typeof v?.stateDict !== 'function' || typeof v.loadStateDict !== 'function') {
    throw invalidArg(op, name, 'an object with stateDict() and loadStateDict()', value);
  }
  return v as Stateful;
}

/** A StateDictError that also names the file it came from; other errors pass through. */
function inFile(path: string, e: unknown): unknown {
  if (!(e instanceof StateDictError)) return e;
  return new StateDictError(`${path}: ${e.message}`, e.missingKeys, e.unexpectedKeys, e.shapeMismatches);
}

/** A copy of `target`'s state, on the CPU (the device may have no room for a second copy), to restore on failure. */
function snapshot(target: Stateful): { restore(): void; dispose(): void } {
  const { tree, tensors } = tidy(() => {
    const copies = new Map<string, Tensor>();
    return {
      tree: encode(target.stateDict(), '', (path, t) => copies.set(path, t.to({ device: 'cpu', copy: true }))),
      tensors: copies,
    };
  });
  return {
    restore: () => target.loadStateDict(decode(tree, tensors, '<snapshot>'), { strict: true }),
    dispose: () => tensors.forEach((t) => t.dispose()),
  };
}

/**
 * Loads each state into its target, in order. Each target checks its state before changing anything; if one
 * refuses, the targets already loaded get their previous state back, so a failed load changes nothing. The last
 * target needs no copy: put the one with the largest state there.
 */
function loadAll(parts: readonly [Stateful, unknown][], strict: boolean, path: string): void {
  const loaded: { restore(): void; dispose(): void }[] = [];
  try {
    parts.forEach(([target, state], i) => {
      const before = i < parts.length - 1 ? snapshot(target) : undefined;
      try {
        target.loadStateDict(state, { strict });
      } catch (e) {
        before?.dispose();
        throw e;
      }
      if (before) loaded.push(before);
    });
  } catch (e) {
    loaded.reverse().forEach((before) => before.restore());
    throw inFile(path, e);
  } finally {
    loaded.forEach((before) => before.dispose());
  }
}

/** The devices whose generators a checkpoint holds: the CPU and every CUDA device present. */
function rngDevices(): Device[] {
  return ['cpu', ...Array.from({ length: cuda.isAvailable() ? cuda.deviceCount() : 0 }, (_, i): Device => `cuda:${i}`)];
}

/**
 * LibTorch's default generators as one Stateful. Loading checks every state first (a uint8 tensor of the size this
 * generator's state has); the states of CUDA devices this machine lacks are skipped.
 */
const rng: Stateful<Record<string, unknown>> = {
  stateDict: () => Object.fromEntries(rngDevices().map((d) => [d, getRngState(d)])),
  loadStateDict(states) {
    const op = 'loadCheckpoint: rng';
    if (!isObject(states) || states.cpu === undefined)
      throw new StateDictError(`${op}: no CPU generator state`, ['cpu']);
    const devices = rngDevices().filter((d) => states[d] !== undefined);
    for (const d of devices) {
      const state = states[d];
      const size = tidy(() => getRngState(d).numel());
      if (!(state instanceof Tensor) || state.dtype !== 'uint8' || state.numel() !== size) {
        throw new StateDictError(
          `${op}: the ${d} generator's state must be ${size} uint8 values, got ${String(state)}`,
          [],
          [],
          [d],
        );
      }
    }
    devices.forEach((d) => setRngState(states[d] as Tensor, d));
  },
};

// ---- weights files ----------------------------------------------------------------------------------------------

/**
 * Writes `module`'s state dict to `path` (atomically): safetensors (default), its description in the `mmssl`
 * metadata entry, or with `format: 'pytorch'` a `torch.save` file that `torch.load(path, weights_only=True)` reads
 * (torchvision's key names; no metadata).
 */
export async function saveWeights(
  module: ModuleLike,
  path: string,
  options: { metadata?: WeightsMetadata; format?: 'safetensors' | 'pytorch' } = {},
): Promise<void> {
  checkStateful('saveWeights', 'module', module);
  checkPath('saveWeights', path);
  const { metadata: given, format = 'safetensors' } = checkOptions('saveWeights', options);
  checkOneOf('saveWeights', 'format', format, ['safetensors', 'pytorch']);
  const metadata = weightsMetadata('saveWeights', given);
  if (format === 'pytorch') {
    const state = module.stateDict();
    await writeTorchFile(path, state instanceof Map ? state : new Map(Object.entries(state)));
    return;
  }
  await writeFileAtomic(
    path,
    tidy(() => serializeChunks(module.stateDict(), { metadata })),
  );
}

/** A weights file's tensors and metadata, whichever format it is in (told by its first bytes, not its name). */
export async function readWeightsFile(path: string): Promise<{ tensors: Map<string, Tensor>; metadata: Metadata }> {
  const head = await readHead(path);
  if (isTorchFile(head)) return { tensors: (await readTorchFile(path)).tensors, metadata: {} };
  return loadFileWithMetadata(path);
}

/** The keys under `prefix`, without it (`backbone.conv1.weight` for prefix 'backbone.'); the others are dropped. */
function underPrefix(tensors: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  if (prefix === '') return tensors;
  const kept = new Map<string, Tensor>();
  tensors.forEach((t, k) => (k.startsWith(prefix) ? kept.set(k.slice(prefix.length), t) : t.dispose()));
  return kept;
}

/**
 * Loads a weights file into `module`: ours or a safetensors file from elsewhere, or a PyTorch file (`torch.save` of a
 * state dict, a Lightning `.ckpt`; recognised by content). `prefix` keeps the keys under it and strips it
 * (`'module.'` of DataParallel, `'backbone.'` of Lightning). With `strict` (the default) missing, unexpected and
 * mis-shaped keys are a StateDictError naming each and the file, and nothing changes.
 */
export async function loadWeights(
  module: ModuleLike,
  path: string,
  options: { strict?: boolean; prefix?: string } = {},
): Promise<LoadedWeights> {
  checkStateful('loadWeights', 'module', module);
  const { strict: strictOption, prefix = '' } = checkOptions('loadWeights', options);
  const strict = checkBool('loadWeights', 'strict', strictOption ?? true);
  if (typeof prefix !== 'string') throw invalidArg('loadWeights', 'prefix', 'a string', prefix);
  const { tensors: all, metadata } = await readWeightsFile(path);
  const tensors = underPrefix(all, prefix);
  try {
    if (metadata.checkpoint !== undefined)
      throw new FileError(path, 'a training checkpoint, not a weights file: use loadCheckpoint');
    const weights = readWeightsMetadata(path, metadata);
    let result: { missingKeys: readonly string[]; unexpectedKeys: readonly string[] };
    try {
      result = module.loadStateDict(tensors, { strict });
    } catch (e) {
      throw inFile(path, e);
    }
    return { metadata: weights, missingKeys: [...result.missingKeys], unexpectedKeys: [...result.unexpectedKeys] };
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}

async function readHead(path: string): Promise<Uint8Array> {
  checkPath('loadWeights', path);
  const head = new Uint8Array(TORCH_HEAD_BYTES);
  const file = await open(path, 'r').catch((e: Error) =>
    Promise.reject(new FileError(path, `cannot open: ${e.message}`)),
  );
  try {
    await file.read(head, 0, head.length, 0);
  } finally {
    await file.close();
  }
  return head;
}

// ---- training checkpoints ---------------------------------------------------------------------------------------

/** What a resumed run needs; `optimizer` and `scheduler` are anything with `stateDict()` / `loadStateDict()`. */
export interface TrainingState {
  model: ModuleLike;
  optimizer?: Stateful;
  scheduler?: Stateful;
  /** Steps (iterations) done, and epochs done: non-negative integers. */
  step: number;
  epoch: number;
  /** The caller's own state: JSON values, Maps, NaN and ±Infinity (no tensors), e.g. a sampler's RNG state. */
  extra?: unknown;
  metadata?: WeightsMetadata;
}

export interface CheckpointTargets {
  model: ModuleLike;
  optimizer?: Stateful;
  scheduler?: Stateful;
}

export interface LoadedCheckpoint {
  step: number;
  epoch: number;
  extra: unknown;
  metadata: WeightsMetadata;
}

/** The parts a checkpoint holds, in the order they load: the optimizer (the largest state) last, needing no copy. */
function partsOf(op: string, targets: CheckpointTargets): [string, Stateful][] {
  const { model, scheduler, optimizer } = targets;
  const given: [string, unknown][] = [
    ['rng', rng],
    ['model', model],
    ['scheduler', scheduler],
    ['optimizer', optimizer],
  ];
  return given
    .filter(([name, t]) => name === 'model' || t !== undefined)
    .map(([name, t]) => [name, checkStateful(op, name, t)]);
}

function checkCount(op: string, name: string, value: unknown): number {
  if (checkInt(op, name, value) < 0) throw invalidArg(op, name, 'a non-negative integer', value);
  return value as number;
}

/** Writes a training checkpoint to `path` atomically; the previous checkpoint stays intact until the rename. */
export async function saveCheckpoint(path: string, state: TrainingState): Promise<void> {
  const op = 'saveCheckpoint';
  checkPath(op, path);
  const { step, epoch, extra, metadata } = checkOptions(op, state);
  const parts = partsOf(op, state);
  const record = {
    step: checkCount(op, 'step', step),
    epoch: checkCount(op, 'epoch', epoch),
    extra: encode(extra, 'extra', (at, t) => {
      throw invalidArg(op, `the state at '${at}'`, 'JSON (tensors belong in a state dict)', t);
    }),
  };
  const mmssl = weightsMetadata(op, metadata);
  // State dicts may hand out new tensor references (optimizers do): take them and copy their bytes inside one scope.
  const chunks = tidy(() => {
    const tensors = new Map<string, Tensor>();
    const tree = encode(Object.fromEntries(parts.map(([name, t]) => [name, t.stateDict()])), '', (at, t) => {
      if (tensors.has(at)) throw invalidArg(op, `the state at '${at}'`, 'at a path no other tensor has', t);
      tensors.set(at, t);
    });
    return serializeChunks(tensors, { metadata: { ...mmssl, checkpoint: JSON.stringify({ ...record, state: tree }) } });
  });
  await writeFileAtomic(path, chunks);
}

/**
 * Restores a checkpoint into `targets` and LibTorch's generators, and returns step, epoch, extra and metadata. The
 * file is checked whole before anything changes; a target that refuses its state (a StateDictError naming the
 * file) leaves every target as it was. CUDA generators are restored for the devices present here.
 */
export async function loadCheckpoint(
  path: string,
  targets: CheckpointTargets,
  options: { strict?: boolean } = {},
): Promise<LoadedCheckpoint> {
  const op = 'loadCheckpoint';
  const strict = checkBool(op, 'strict', checkOptions(op, options).strict ?? true);
  const parts = partsOf(op, checkOptions(op, targets));
  const { tensors, metadata } = await loadFileWithMetadata(path);
  try {
    const record = jsonEntry(path, metadata, 'checkpoint', 'saveCheckpoint');
    if (
      !isObject(record) ||
      !Number.isSafeInteger(record.step) ||
      !Number.isSafeInteger(record.epoch) ||
      !isObject(record.state)
    ) {
      throw new FileError(path, "corrupt 'checkpoint' metadata: expected {step, epoch, extra, state}");
    }
    const state = decode(record.state, tensors, path) as Record<string, unknown>;
    const missing = parts.filter(([name]) => state[name] === undefined).map(([name]) => name);
    if (missing.length > 0) throw new FileError(path, `the checkpoint holds no ${missing.join(', ')} state`);
    const loaded = {
      step: record.step as number,
      epoch: record.epoch as number,
      extra: decode(record.extra, new Map(), path),
      metadata: readWeightsMetadata(path, metadata),
    };
    loadAll(
      parts.map(([name, target]) => [target, state[name]]),
      strict,
      path,
    );
    return loaded;
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}

/**
 * What a weights file or checkpoint says of itself, reading only its header: its `mmssl` metadata and, for a
 * checkpoint, the step, epoch and extra state (no tensors are read).
 */
export async function peekWeights(
  path: string,
): Promise<{ metadata: WeightsMetadata; checkpoint?: { step: number; epoch: number; extra: unknown } }> {
  const metadata = await readMetadata(path);
  const weights = readWeightsMetadata(path, metadata);
  if (metadata.checkpoint === undefined) return { metadata: weights };
  const record = jsonEntry(path, metadata, 'checkpoint', 'saveCheckpoint');
  if (!isObject(record) || !Number.isSafeInteger(record.step) || !Number.isSafeInteger(record.epoch))
    throw new FileError(path, "corrupt 'checkpoint' metadata: expected {step, epoch, extra, state}");
  return {
    metadata: weights,
    checkpoint: {
      step: record.step as number,
      epoch: record.epoch as number,
      extra: decode(record.extra, new Map(), path),
    },
  };
}
