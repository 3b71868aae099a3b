/**
 * The only loader of the native addon, and the typed interface of what it exports.
 *
 * Loading tries each candidate in order, keeps every failure, and turns them into one message that says what was
 * looked for, where, and the command that fixes it. It then checks that the LibTorch found at run time is the one
 * the addon was compiled against.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ArgumentError, DisposedError, DistributedError, LoadError, TorchError } from './errors.js';

/** A native tensor handle: a slot number and generation in this thread's tensor table, owned by one `Tensor`. */
export type Handle = number & { readonly __brand: 'mmssl.Handle' };
/** A handle of another native object (an optimizer, a process group), in this thread's table of those. */
export type ObjectHandle = number & { readonly __brand: 'mmssl.ObjectHandle' };
type H = Handle;
type O = ObjectHandle;
type S = number | boolean;
type Opt<T> = T | undefined | null;

export interface Binding {
  dtypeCodes: Record<string, number>;
  /** The errors the addon throws: one factory (message, op) per kind, in native/common.h's ErrorKind order. */
  setErrorFactories(factories: readonly ((message: string, op: string) => Error)[]): void;
  // image.cc
  /** A TIFF JPEG block's samples, interleaved: YCbCr converted to RGB when `toRgb`, rows the frame lacks zero. */
  jpegDecode(
    data: Uint8Array,
    tables: Opt<Uint8Array>,
    toRgb: boolean,
    width: number,
    height: number,
    components: number,
  ): Uint8Array;
  /** A TIFF WebP block's RGB or RGBA samples. */
  webpDecode(data: Uint8Array, width: number, height: number, channels: number): Uint8Array;
  // tensor.cc
  /** True when the handle was live (and is now released); false for a stale or already disposed one. */
  dispose(t: H): boolean;
  disposeAll(handles: H[]): void;
  memoryStats(): {
    tensors: number;
    bytes: Record<string, number>;
    objects: { optimizer: number; processGroup: number };
  };
  shape(t: H): number[];
  dtype(t: H): number;
  device(t: H): string;
  numel(t: H): number;
  isContiguous(t: H, memoryFormat: Opt<string>): boolean;
  isPinned(t: H): boolean;
  pinMemory(t: H): H;
  fromTypedArray(data: ArrayBufferView, shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  fromBuffer(data: ArrayBufferView, shape: number[]): H;
  toArrayBuffer(t: H): ArrayBuffer;
  toBytes(t: H): ArrayBuffer;
  fromBytes(bytes: Uint8Array, shape: number[], dtype: number): H;
  toArrayBufferAsync(t: H): Promise<ArrayBuffer>;
  item(t: H): number | boolean;
  to(t: H, dtype: Opt<number>, device: Opt<string>, nonBlocking: boolean, copy: boolean, memoryFormat: Opt<string>): H;
  contiguous(t: H, memoryFormat: Opt<string>): H;
  clone(t: H): H;
  zeros(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  ones(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  empty(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  full(shape: number[], value: number | boolean, dtype: Opt<number>, device: Opt<string>): H;
  arange(start: number, end: number, step: number, dtype: Opt<number>, device: Opt<string>): H;
  linspace(start: number, end: number, steps: number, dtype: Opt<number>, device: Opt<string>): H;
  rand(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  randn(shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  randint(low: number, high: number, shape: number[], dtype: Opt<number>, device: Opt<string>): H;
  zerosLike(t: H, dtype: Opt<number>, device: Opt<string>): H;
  onesLike(t: H, dtype: Opt<number>, device: Opt<string>): H;
  fullLike(t: H, value: number | boolean, dtype: Opt<number>, device: Opt<string>): H;
  randLike(t: H, dtype: Opt<number>, device: Opt<string>): H;
  randnLike(t: H, dtype: Opt<number>, device: Opt<string>): H;
  // ops.cc: a binary op's other operand is a tensor, or a number/boolean flagged by the argument after it
  add(a: H, b: H | S, bIsScalar: boolean, alpha: number): H;
  sub(a: H, b: H | S, bIsScalar: boolean, alpha: number): H;
  mul(a: H, b: H | S, bIsScalar: boolean): H;
  div(a: H, b: H | S, bIsScalar: boolean, roundingMode: Opt<string>): H;
  pow(a: H, exponent: H | number, exponentIsScalar: boolean): H;
  neg(a: H): H;
  exp(a: H): H;
  log(a: H): H;
  sqrt(a: H): H;
  rsqrt(a: H): H;
  abs(a: H): H;
  round(a: H): H;
  sign(a: H): H;
  sin(a: H): H;
  cos(a: H): H;
  clamp(a: H, min: Opt<number>, max: Opt<number>): H;
  sigmoid(a: H): H;
  tanh(a: H): H;
  relu(a: H): H;
  maximum(a: H, b: H): H;
  minimum(a: H, b: H): H;
  eq(a: H, b: H | S, bIsScalar: boolean): H;
  ne(a: H, b: H | S, bIsScalar: boolean): H;
  lt(a: H, b: H | S, bIsScalar: boolean): H;
  le(a: H, b: H | S, bIsScalar: boolean): H;
  gt(a: H, b: H | S, bIsScalar: boolean): H;
  ge(a: H, b: H | S, bIsScalar: boolean): H;
  where(condition: H, x: H | S, xIsScalar: boolean, y: H | S, yIsScalar: boolean): H;
  logicalNot(a: H): H;
  isnan(a: H): H;
  isfinite(a: H): H;
  allclose(a: H, b: H, rtol: number, atol: number): H;
  matmul(a: H, b: H): H;
  mm(a: H, b: H): H;
  bmm(a: H, b: H): H;
  sum(a: H, dim: Opt<number[]>, keepdim: boolean): H;
  mean(a: H, dim: Opt<number[]>, keepdim: boolean): H;
  logsumexp(a: H, dim: Opt<number[]>, keepdim: boolean): H;
  std(a: H, dim: Opt<number[]>, keepdim: boolean, unbiased: boolean): H;
  var(a: H, dim: Opt<number[]>, keepdim: boolean, unbiased: boolean): H;
  norm(a: H, dim: Opt<number[]>, keepdim: boolean, p: number): H;
  max(a: H, dim?: Opt<number>, keepdim?: boolean): H | [H, H];
  min(a: H, dim?: Opt<number>, keepdim?: boolean): H | [H, H];
  argmax(a: H, dim: Opt<number>, keepdim: boolean): H;
  argmin(a: H, dim: Opt<number>, keepdim: boolean): H;
  topk(a: H, k: number, dim: number, largest: boolean, sorted: boolean): [H, H];
  reshape(a: H, shape: number[]): H;
  view(a: H, shape: number[]): H;
  flatten(a: H, startDim: number, endDim: number): H;
  squeeze(a: H, dim: Opt<number>): H;
  unsqueeze(a: H, dim: number): H;
  permute(a: H, dims: number[]): H;
  transpose(a: H, dim0: number, dim1: number): H;
  narrow(a: H, dim: number, start: number, length: number): H;
  slice(a: H, dim: number, start: Opt<number>, end: Opt<number>, step: number): H;
  select(a: H, dim: number, index: number): H;
  indexSelect(a: H, dim: number, index: H): H;
  gather(a: H, dim: number, index: H): H;
  cat(tensors: H[], dim: number): H;
  stack(tensors: H[], dim: number): H;
  flip(a: H, dims: number[]): H;
  expand(a: H, shape: number[]): H;
  repeat(a: H, repeats: number[]): H;
  add_(a: H, b: H | S, bIsScalar: boolean, alpha: number): void;
  sub_(a: H, b: H | S, bIsScalar: boolean, alpha: number): void;
  mul_(a: H, b: H | S, bIsScalar: boolean): void;
  div_(a: H, b: H | S, bIsScalar: boolean): void;
  relu_(a: H): void;
  clamp_(a: H, min: Opt<number>, max: Opt<number>): void;
  zero_(a: H): void;
  fill_(a: H, value: S): void;
  copy_(a: H, src: H): void;
  uniform_(a: H, from: number, to: number): void;
  normal_(a: H, mean: number, std: number): void;
  // functional.cc
  conv2d(x: H, w: H, b: Opt<H>, stride: number[], padding: number[], dilation: number[], groups: number): H;
  batchNorm(
    x: H,
    weight: Opt<H>,
    bias: Opt<H>,
    runningMean: Opt<H>,
    runningVar: Opt<H>,
    training: boolean,
    momentum: number,
    eps: number,
  ): H;
  linear(x: H, w: H, b: Opt<H>): H;
  maxPool2d(x: H, kernel: number[], stride: number[], padding: number[], dilation: number[], ceilMode: boolean): H;
  adaptiveAvgPool2d(x: H, outputSize: number[]): H;
  dropout(x: H, p: number, training: boolean): H;
  normalize(x: H, p: number, dim: number, eps: number): H;
  softmax(x: H, dim: number, dtype: Opt<number>): H;
  logSoftmax(x: H, dim: number, dtype: Opt<number>): H;
  crossEntropy(input: H, target: H, weight: Opt<H>, reduction: string, ignoreIndex: number, labelSmoothing: number): H;
  interpolate(
    x: H,
    size: number[],
    mode: string,
    alignCorners: boolean,
    scaleH: Opt<number>,
    scaleW: Opt<number>,
    antialias: boolean,
  ): H;
  affineGrid(theta: H, size: number[], alignCorners: boolean): H;
  gridSample(input: H, grid: H, mode: string, paddingMode: string, alignCorners: boolean): H;
  oneHot(x: H, numClasses: number): H;
  // autograd.cc
  backward(t: H, grad: Opt<H>, retainGraph: Opt<boolean>, createGraph: boolean): void;
  autogradGrad(
    outputs: H[],
    inputs: H[],
    gradOutputs: Opt<H[]>,
    retainGraph: Opt<boolean>,
    createGraph: boolean,
    allowUnused: boolean,
  ): (H | null)[];
  zeroGrad(params: H[], setToNone: boolean): void;
  grad(t: H): H | null;
  setGrad(t: H, grad: Opt<H>): void;
  requiresGrad(t: H): boolean;
  requiresGrad_(t: H, value: boolean): void;
  isLeaf(t: H): boolean;
  gradFn(t: H): string | null;
  retainGrad(t: H): void;
  detach(t: H): H;
  setData(t: H, src: H): void;
  isGradEnabled(): boolean;
  setGradEnabled(enabled: boolean): void;
  // optim.cc: options cross with their TypeScript names
  optimizerCreate(kind: string, groups: { params: H[]; options: object }[]): O;
  optimizerStep(optimizer: O, options: object[]): void;
  optimizerState(optimizer: O): ({ tensors: Record<string, H>; numbers: Record<string, number> } | null)[];
  optimizerLoadState(optimizer: O, states: (Record<string, H | number> | null)[]): void;
  optimizerDispose(optimizer: O): void;
  clipGradNorm(params: H[], maxNorm: number, normType: number, errorIfNonfinite: boolean): number;
  // loss.cc
  infoNCE(
    u: H,
    groups: H,
    anchorMask: H,
    temperature: number,
    sum: boolean,
    stripRows: number,
    float64: boolean,
    fused: boolean,
    absent: Opt<H>,
  ): H;
  // amp.cc
  autocastEnter(device: string, dtype: number): void;
  autocastExit(): void;
  ampUnscale(grads: H[], foundInf: H, invScale: H): void;
  ampUpdateScale(
    scale: H,
    growthTracker: H,
    foundInf: H,
    growthFactor: number,
    backoffFactor: number,
    growthInterval: number,
  ): void;
  // distributed.cc: all but distAvailable exist only in builds with Gloo
  distAvailable(): boolean;
  distInit?(options: {
    backend: string;
    host: string;
    port: number;
    file?: string;
    interface?: string;
    rank: number;
    size: number;
    threads: number;
    timeoutMs: number;
  }): Promise<O>;
  distAllReduce?(group: O, tensors: H[], op: string): Promise<void>;
  distBroadcast?(group: O, tensors: H[], root: number): Promise<void>;
  distAllGather?(group: O, x: H): H;
  distAllReduceSum?(group: O, x: H): H;
  distAllReduceGradients?(group: O, params: H[], bucketBytes: number): void;
  distBarrier?(group: O): Promise<void>;
  distDestroy?(group: O): void;
  distWaitSeconds?(): number;
  // runtime.cc
  version(): { built: string; runtime: string; cuda: boolean; parallelInfo: string };
  setNumThreads(n: number): void;
  getNumThreads(): number;
  getCudnnBenchmark(): boolean;
  setCudnnBenchmark(on: boolean): void;
  getFloat32MatmulPrecision(): string;
  setFloat32MatmulPrecision(precision: string): void;
  hostAllocatorTuned(): boolean;
  manualSeed(seed: number): void;
  initialSeed(): number;
  getRngState(device: Opt<string>): H;
  setRngState(state: H, device: Opt<string>): void;
  readRecords(dest: H, fds: number[], offsets: number[]): Promise<number[]>;
  crc32(bytes: Uint8Array, previous?: number): number;
  resampleAxisAligned(x: H, maps: number[], size: number[]): H;
  viewDtype(t: H, dtype: number): H;
  asStrided(t: H, size: number[], stride: number[], offset: number): H;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(device?: number): void;
  // cuda/memory.cc, present only in builds against a CUDA LibTorch
  cudaMemoryStats?(device?: number): {
    allocatedBytes: number;
    peakAllocatedBytes: number;
    reservedBytes: number;
    peakReservedBytes: number;
  };
  cudaEmptyCache?(): void;
  cudaResetPeakMemoryStats?(device?: number): void;
  // cuda/streams.cc, likewise
  cudaCopyOnSideStream?(tensors: H[], device: string): H[];
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** This package's version (package.json). */
export const packageVersion: string = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version;

const BUILD_HELP =
  `Build it with: npm run build:native   (needs LibTorch: apt-get install libtorch-dev on Debian/Ubuntu, ` +
  `or LIBTORCH=/path/to/libtorch, or LIBTORCH_USE_PYTORCH=1; see the README's "LibTorch" section). Installed as a ` +
  `dependency (or with --ignore-scripts): npm rebuild mmssl, which uses a prebuilt addon when one matches your LibTorch.`;

/**
 * The one addon to load (no fallback, so a broken choice is never masked): MMSSL_ADDON when set; else the prebuild
 * that the install chose for this machine's LibTorch (scripts/install.mjs records it); else the build from source.
 */
function candidates(): string[] {
  if (process.env.MMSSL_ADDON) return [process.env.MMSSL_ADDON];
  const record = join(packageRoot, 'build', 'prebuild.json');
  if (existsSync(record))
    return [join(packageRoot, (JSON.parse(readFileSync(record, 'utf8')) as { addon: string }).addon)];
  return [join(packageRoot, 'build', 'Release', 'mmssl.node')];
}

// Libraries a CUDA LibTorch needs at run time that are not part of LibTorch itself.
const CUDA_RUNTIME_LIB =
  /(lib(?:cudnn|cudart|cublas|cublasLt|cufft|curand|cusolver|cusparse|nccl|nvrtc|nvToolsExt|cuda)[\w.]*\.so[\w.]*): cannot open shared object file/;

/** @internal What a failed load of `path` means, and how to fix it. */
export function diagnose(path: string, error: Error): string {
  const missingCuda = CUDA_RUNTIME_LIB.exec(error.message);
  if (missingCuda) {
    return (
      `${path}: the addon was built against a CUDA LibTorch, which needs the CUDA runtime and cuDNN at run time, ` +
      `and ${missingCuda[1]} cannot be found. Install the CUDA runtime and cuDNN versions that LibTorch was built ` +
      `for (they ship inside the official CUDA zip and the CUDA pip wheels), or rebuild against a CPU LibTorch. ${BUILD_HELP}`
    );
  }
  const missingLib = /(lib(?:torch\w*|c10\w*|gomp|openblas|blas)[\w.]*\.so[\w.]*): cannot open shared object file/.exec(
    error.message,
  );
  if (missingLib) {
    return (
      `${path}: the addon was built, but ${missingLib[1]} (part of LibTorch or its dependencies) cannot be ` +
      `found at run time. Reinstall the LibTorch it was built against, or rebuild against the one you have. ${BUILD_HELP}`
    );
  }
  if (/undefined symbol/.test(error.message)) {
    return (
      `${path}: the addon does not match the LibTorch found at run time (${error.message.split('\n')[0]}). ` +
      `Rebuild it against that LibTorch: npm run build:native`
    );
  }
  return `${path}: ${error.message.split('\n')[0]}`;
}

/** @internal Loads the first candidate that works, or throws a LoadError listing every failure. */
export function loadAddon(paths: readonly string[]): Binding {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) {
      tried.push(`${path}: not found`);
      continue;
    }
    try {
      return require(resolve(path)) as Binding; // a relative MMSSL_ADDON is relative to the working directory
    } catch (e) {
      tried.push(diagnose(path, e as Error));
    }
  }
  throw new LoadError(
    `mmssl: the native addon could not be loaded. Tried:\n  - ${tried.join('\n  - ')}\n${BUILD_HELP}`,
  );
}

function majorMinor(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/**
 * @internal Why the LibTorch loaded at run time cannot serve an addon compiled against `built`, or null when it can
 * (same major.minor: LibTorch keeps its C++ ABI within a minor release, not across).
 */
export function versionMismatch(built: string, runtime: string): string | null {
  if (!runtime || majorMinor(runtime) === majorMinor(built)) return null;
  return (
    `mmssl: the addon was built against LibTorch ${built} but LibTorch ${runtime} was loaded at run time. ` +
    `Rebuild against the LibTorch you run (npm run build:native, with LIBTORCH or LIBTORCH_USE_PYTORCH set as when you run), ` +
    `or make the ${built} libraries the ones found first.`
  );
}

function checkVersion(binding: Binding): void {
  const { built, runtime } = binding.version();
  const mismatch = versionMismatch(built, runtime);
  if (mismatch) throw new LoadError(mismatch);
}

/** Threads default to the cores available, unless OMP_NUM_THREADS or MMSSL_NUM_THREADS says otherwise. */
function defaultThreads(): number {
  const fromEnv = Number(process.env.MMSSL_NUM_THREADS ?? process.env.OMP_NUM_THREADS);
  return Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : availableParallelism();
}

const chosen = candidates();
export const native: Binding = loadAddon(chosen);
/** The addon file loaded: a prebuild or a build from source. */
export const addonPath = resolve(chosen[0]);
checkVersion(native);
native.setErrorFactories([
  (message, op) => new ArgumentError(message, { op }),
  (message) => new DisposedError(message),
  (message, op) => new DistributedError(message, { op }),
  (message, op) => new TorchError(message, op),
]);
native.setNumThreads(defaultThreads());
