/**
 * mmssl: multi-modal self-supervised pre-training for remote sensing, in TypeScript on a native LibTorch core.
 */
export * as torch from './torch/index.js';
export * as nn from './nn/index.js';
export {
  ArgumentError,
  DeviceError,
  DisposedError,
  DistributedError,
  FileError,
  fromErrorData,
  HostReadError,
  InputError,
  InternalError,
  LoadError,
  MmsslError,
  NonFiniteError,
  QueueFullError,
  StateDictError,
  toErrorData,
  TorchError,
} from './errors.js';
export type { ErrorCode, ErrorData, ErrorDetails } from './errors.js';
export * as optim from './optim/index.js';
export * as io from './io/index.js';
export * as config from './config/index.js';
export * as runs from './runs/index.js';
export * as train from './train/index.js';
export * as loss from './loss/index.js';
export * as data from './data/index.js';
export * as distributed from './distributed/index.js';
export * as evaluation from './eval/index.js';
export * as experiments from './experiments/index.js';
export * as report from './report/index.js';
