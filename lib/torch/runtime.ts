/** Process-wide settings and statistics: threads, seeds, versions, live tensor memory. */
import { checkBool, checkInt, checkOneOf, invalidArg } from '../errors.js';
import { addonPath, native } from '../native.js';
import { type Device, checkDevice } from './device.js';
import { Tensor } from './tensor.js';

/** Sets the intra-op thread count (default: the cores available, or OMP_NUM_THREADS / MMSSL_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (checkInt('setNumThreads', 'n', n) < 1) throw invalidArg('setNumThreads', 'n', 'at least 1', n);
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export const MATMUL_PRECISIONS = ['highest', 'high', 'medium'] as const;
export type MatmulPrecision = (typeof MATMUL_PRECISIONS)[number];

/**
 * How float32 matrix products may compute (`torch.set_float32_matmul_precision`): 'highest' (the default) in float32,
 * 'high' with TF32 on GPUs that have it (Ampere on), 'medium' with bfloat16. Convolutions follow cuDNN's TF32 setting,
 * on by default as in PyTorch.
 */
export function setFloat32MatmulPrecision(precision: MatmulPrecision): void {
  native.setFloat32MatmulPrecision(checkOneOf('setFloat32MatmulPrecision', 'precision', precision, MATMUL_PRECISIONS));
}

export function getFloat32MatmulPrecision(): MatmulPrecision {
  return native.getFloat32MatmulPrecision() as MatmulPrecision;
}

/** LibTorch's backend switches, as `torch.backends` names them. */
export const backends = {
  cudnn: {
    /** Whether cuDNN times its algorithms for each new input shape and keeps the fastest (default false, PyTorch's). */
    get benchmark(): boolean {
      return native.getCudnnBenchmark();
    },
    set benchmark(on: boolean) {
      native.setCudnnBenchmark(checkBool('backends.cudnn.benchmark', 'value', on));
    },
  },
};

/**
 * Whether mmssl keeps large freed host blocks in glibc's heap for reuse (set at load; native/runtime.cc says why).
 * False under MMSSL_MALLOC_TUNING=0, when MALLOC_*_ or GLIBC_TUNABLES tune malloc already, or off glibc.
 */
export function hostAllocatorTuned(): boolean {
  return native.hostAllocatorTuned();
}

/** Seeds every generator (CPU and CUDA), making CPU runs reproducible. */
export function manualSeed(seed: number): void {
  if (checkInt('manualSeed', 'seed', seed) < 0) throw invalidArg('manualSeed', 'seed', 'a non-negative integer', seed);
  native.manualSeed(seed);
}

export function initialSeed(): number {
  return native.initialSeed();
}

/** The state of a device's default generator (CPU when omitted) as a uint8 tensor (`torch.get_rng_state()`). */
export function getRngState(device?: Device): Tensor {
  return new Tensor(native.getRngState(device === undefined ? undefined : checkDevice('getRngState', device)));
}

/** Restores a state from `getRngState()`, so the random numbers that follow repeat (`torch.set_rng_state()`). */
export function setRngState(state: Tensor, device?: Device): void {
  if (!(state instanceof Tensor)) throw invalidArg('setRngState', 'state', 'a Tensor from getRngState()', state);
  native.setRngState(state.handle, device === undefined ? undefined : checkDevice('setRngState', device));
}

export interface MemoryStats {
  /** Live tensor handles in this thread (each undisposed `Tensor`). */
  tensors: number;
  /** Bytes of the distinct storages those handles reference, by device ('cpu', 'cuda:0', ...). */
  bytes: Record<string, number>;
  /** Live native objects other than tensors in this thread, by kind (each not yet disposed). */
  objects: { optimizer: number; processGroup: number };
}

/** Live tensors and their bytes by device, and the other native objects, for this thread (tfjs's `memory()`). */
export function memoryStats(): MemoryStats {
  return native.memoryStats();
}

export interface VersionInfo {
  /** LibTorch the addon was compiled against. */
  built: string;
  /** LibTorch loaded at run time. */
  runtime: string;
  /** Whether the addon was built against a CUDA LibTorch. */
  cuda: boolean;
  /** LibTorch's parallel backend and thread settings. */
  parallelInfo: string;
  /** The addon file loaded: the prebuild the install chose, a build from source, or MMSSL_ADDON. */
  addon: string;
}

export function version(): VersionInfo {
  return { ...native.version(), addon: addonPath };
}
