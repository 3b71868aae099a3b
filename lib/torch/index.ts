/** The `torch` namespace: tensors, autograd, devices and memory, with PyTorch's names in camelCase. */
export { Tensor } from './tensor.js';
export type { Scope } from './scope.js';
export type { SizeArgs } from './creation.js';
export type {
  NestedArray,
  Scalar,
  MemoryFormat,
  ToOptions,
  ReduceOptions,
  StdOptions,
  BackwardOptions,
  TopkOptions,
} from './tensor.js';
export {
  tensor,
  fromBuffer,
  zeros,
  ones,
  empty,
  full,
  arange,
  linspace,
  rand,
  randn,
  randint,
  zerosLike,
  onesLike,
  fullLike,
  randLike,
  randnLike,
  cat,
  stack,
  where,
} from './creation.js';
export type { TensorOptions } from './creation.js';
export { dtypes, isFloatingPoint } from './dtype.js';
export type { DType, TypedArray } from './dtype.js';
export { cuda } from './device.js';
export type { Device } from './device.js';
export { tidy, keep } from './scope.js';
export { noGrad, enableGrad, isGradEnabled, zeroGrad } from './autograd.js';
export * as autograd from './autograd.js';
export {
  setNumThreads,
  getNumThreads,
  hostAllocatorTuned,
  manualSeed,
  initialSeed,
  getRngState,
  setRngState,
  memoryStats,
  version,
  backends,
  setFloat32MatmulPrecision,
  getFloat32MatmulPrecision,
  MATMUL_PRECISIONS,
} from './runtime.js';
export type { MatmulPrecision, MemoryStats, VersionInfo } from './runtime.js';
export { autocast, GradScaler, PRECISIONS, withPrecision } from './amp.js';
export type { AutocastOptions, GradScalerOptions, GradScalerState, Precision, Steppable } from './amp.js';
export { setSyncDebugMode, getSyncDebugMode, hostReads, syncFree, SYNC_DEBUG_MODES } from './sync.js';
export type { SyncDebugMode } from './sync.js';
