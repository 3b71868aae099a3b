/**
 * mmssl: multi-modal self-supervised pre-training for remote sensing, in TypeScript on a native LibTorch core.
 */
export * as torch from './torch/index.js';
export * as nn from './nn/index.js';
export { MmsslError, TorchError, DisposedError, DistributedError, LoadError, ArgumentError, FileError, StateDictError } from './errors.js';
export type { ErrorCode } from './errors.js';
export * as optim from './optim/index.js';
export * as safetensors from './io/safetensors.js';
export * as train from './train/index.js';
export * as loss from './loss/index.js';
export * as data from './data/index.js';
export * as distributed from './distributed/index.js';
export * as evaluation from './eval/index.js';
export * as report from './report/index.js';
