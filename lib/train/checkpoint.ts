/**
 * Weights files and training checkpoints, both safetensors written atomically (a kill at any moment leaves the
 * previous file intact).
 *
 * - `saveWeights` / `loadWeights`: a module's state dict under its own keys (torchvision's, for the backbones), so
 *   Python reads it with `model.load_state_dict(safetensors.torch.load_file(path))`, plus an `mmssl` metadata entry
 *   (JSON: mmssl version, architecture, input channels, band names, normalisation statistics, ...).
 * - `saveCheckpoint` / `loadCheckpoint`: everything a resumed run needs to continue exactly: model, optimizer and
 *   scheduler state dicts, step, epoch, LibTorch's RNG states and the caller's own JSON (`extra`, e.g. a sampler's
 *   state). State dicts are trees of objects, arrays, Maps and JSON values with tensor leaves: the tensors become
 *   entries named by their path (`model/conv1.weight`, `optimizer/state/0/exp_avg`), the rest of the tree is JSON in
 *   the metadata with `{"$tensor": name}` in place of each tensor.
 */
import { readFileSync } from 'node:fs';

import { FileError, StateDictError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { type Metadata, loadFileWithMetadata, serializeChunks } from '../io/safetensors.js';
import { cuda } from '../torch/device.js';
import { getRngState, setRngState } from '../torch/runtime.js';
import { tidy } from '../torch/scope.js';
import { Tensor } from '../torch/tensor.js';

/** What a weights file says about its model; any other JSON fields the caller adds are kept. */
export interface WeightsMetadata {
  architecture?: string;
  inChannels?: number;
  bands?: string[];
  normalization?: { mean: number[]; std: number[] };
  [key: string]: unknown;
}

/** Anything with PyTorch's state-dict pair: a Module, an optimizer, a scheduler. */
export interface Stateful<S = unknown> {
  stateDict(): S;
  loadStateDict(state: S, options?: { strict?: boolean }): unknown;
}

type ModuleLike = Stateful<Map<string, Tensor>>;

const MMSSL_VERSION: string = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version;

function weightsMetadata(metadata: WeightsMetadata): Metadata {
  return { format: 'pt', mmssl: JSON.stringify({ ...metadata, mmssl: MMSSL_VERSION }) };
}

function parseJsonEntry<T>(path: string, metadata: Metadata, key: string): T {
  if (metadata[key] === undefined) throw new FileError(path, `no '${key}' metadata: not written by mmssl's ${key === 'mmssl' ? 'saveWeights' : 'saveCheckpoint'}`);
  try {
    return JSON.parse(metadata[key]) as T;
  } catch (e) {
    throw new FileError(path, `corrupt '${key}' metadata: ${(e as Error).message}`);
  }
}

/** A StateDictError that also names the file it came from. */
function inFile(path: string, e: unknown): unknown {
  if (!(e instanceof StateDictError)) return e;
  return new StateDictError(`${path}: ${e.message}`, e.missingKeys, e.unexpectedKeys, e.shapeMismatches);
}

/** Writes `module`'s state dict to `path` (atomically), with its description in the metadata. */
export async function saveWeights(module: ModuleLike, path: string, options: { metadata?: WeightsMetadata } = {}): Promise<void> {
  await writeFileAtomic(path, serializeChunks(module.stateDict(), { metadata: weightsMetadata(options.metadata ?? {}) }));
}

/**
 * Loads a weights file into `module` (strict by default: missing, unexpected and mis-shaped keys are a
 * StateDictError naming each, and nothing changes) and returns the file's metadata. Files written by PyTorch
 * (no `mmssl` entry) load too, with empty metadata.
 */
export async function loadWeights(module: ModuleLike, path: string, options: { strict?: boolean } = {}): Promise<WeightsMetadata> {
  const { tensors, metadata } = await loadFileWithMetadata(path);
  try {
    module.loadStateDict(tensors, { strict: options.strict ?? true });
  } catch (e) {
    throw inFile(path, e);
  } finally {
    tensors.forEach((t) => t.dispose());
  }
  return metadata.mmssl === undefined ? {} : parseJsonEntry<WeightsMetadata>(path, metadata, 'mmssl');
}

// ---- training checkpoints ---------------------------------------------------------------------------------------

export interface TrainingState {
  model: ModuleLike;
  optimizer?: Stateful;
  scheduler?: Stateful;
  step: number;
  epoch: number;
  /** The caller's own JSON-serialisable state (a data sampler's RNG, the best score so far, ...). */
  extra?: unknown;
  metadata?: WeightsMetadata;
}

export interface LoadedCheckpoint {
  step: number;
  epoch: number;
  extra: unknown;
  metadata: WeightsMetadata;
}

interface Skeleton {
  step: number;
  epoch: number;
  extra: unknown;
  tree: unknown;
}

const join = (path: string, key: unknown) => (path === '' ? String(key) : `${path}/${String(key)}`);

/** Replaces each tensor of `value` by a reference, collecting the tensors under their paths. */
function flatten(value: unknown, path: string, tensors: Map<string, Tensor>): unknown {
  if (value instanceof Tensor) {
    tensors.set(path, value);
    return { $tensor: path };
  }
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [k, flatten(v, join(path, k), tensors)]) };
  if (Array.isArray(value)) return value.map((v, i) => flatten(v, join(path, i), tensors));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, flatten(v, join(path, k), tensors)]));
  }
  return value;
}

function unflatten(value: unknown, tensors: Map<string, Tensor>, source: string): unknown {
  if (Array.isArray(value)) return value.map((v) => unflatten(v, tensors, source));
  if (value === null || typeof value !== 'object') return value;
  const { $tensor: ref, $map: entries } = value as { $tensor?: string; $map?: [unknown, unknown][] };
  if (ref !== undefined) {
    const t = tensors.get(ref);
    if (!t) throw new FileError(source, `corrupt checkpoint: the state refers to a tensor '${ref}' the file lacks`);
    return t;
  }
  if (entries !== undefined) return new Map(entries.map(([k, v]) => [k, unflatten(v, tensors, source)]));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unflatten(v, tensors, source)]));
}

function rngStates(): Record<string, Tensor> {
  const states: Record<string, Tensor> = { cpu: getRngState() };
  for (let i = 0; cuda.isAvailable() && i < cuda.deviceCount(); i++) states[`cuda:${i}`] = getRngState(`cuda:${i}`);
  return states;
}

/** Writes a training checkpoint to `path` atomically; the previous checkpoint stays intact until the rename. */
export async function saveCheckpoint(path: string, state: TrainingState): Promise<void> {
  const { model, optimizer, scheduler, step, epoch, extra = null, metadata = {} } = state;
  // State dicts may hand out new tensor references (optimizers do): take them and copy their bytes inside one scope.
  const chunks = tidy(() => {
    const tensors = new Map<string, Tensor>();
    const tree = flatten({ model: model.stateDict(), optimizer: optimizer?.stateDict(), scheduler: scheduler?.stateDict(), rng: rngStates() }, '', tensors);
    const skeleton: Skeleton = { step, epoch, extra, tree };
    return serializeChunks(tensors, { metadata: { ...weightsMetadata(metadata), checkpoint: JSON.stringify(skeleton) } });
  });
  await writeFileAtomic(path, chunks);
}

/**
 * Restores a checkpoint into the given objects (each checks its part before changing it: the model first, then the
 * optimizer, the scheduler and the RNG states) and returns step, epoch, extra and metadata.
 */
export async function loadCheckpoint(path: string, targets: { model: ModuleLike; optimizer?: Stateful; scheduler?: Stateful; strict?: boolean }): Promise<LoadedCheckpoint> {
  const { tensors, metadata } = await loadFileWithMetadata(path);
  try {
    const skeleton = parseJsonEntry<Skeleton>(path, metadata, 'checkpoint');
    const tree = unflatten(skeleton.tree, tensors, path) as Record<string, unknown>;
    const parts: [string, Stateful | undefined][] = [['model', targets.model], ['optimizer', targets.optimizer], ['scheduler', targets.scheduler]];
    for (const [name, target] of parts) {
      if (!target) continue;
      if (tree[name] === undefined) throw new FileError(path, `the checkpoint holds no ${name} state`);
      try {
        target.loadStateDict(tree[name], { strict: targets.strict ?? true });
      } catch (e) {
        throw inFile(path, e);
      }
    }
    for (const [device, rng] of Object.entries(tree.rng as Record<string, Tensor>)) {
      if (device === 'cpu' || cuda.isAvailable()) setRngState(rng, device as 'cpu');
    }
    return { step: skeleton.step, epoch: skeleton.epoch, extra: skeleton.extra, metadata: parseJsonEntry<WeightsMetadata>(path, metadata, 'mmssl') };
  } finally {
    tensors.forEach((t) => t.dispose());
  }
}
