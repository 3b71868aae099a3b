/**
 * The `nn` namespace: `Module` and the layers (`nn.Conv2d`, `nn.BatchNorm2d`, ...), `nn.init`, `nn.models`
 * (`nn.models.resnet18()`), the stateless `nn.functional` and `nn.utils`.
 */
export * as functional from './functional.js';
export * as utils from './utils/clip_grad.js';
export * as init from './init.js';
export * as models from './models/index.js';
export { Module } from './module.js';
export type { LoadStateDictResult, ModuleToOptions, NamedOptions } from './module.js';
export { ReLU } from './modules/activation.js';
export { BatchNorm, BatchNorm1d, BatchNorm2d, convertSyncBatchNorm } from './modules/batchnorm.js';
export type { BatchNormOptions, StatsGroup } from './modules/batchnorm.js';
export { Sequential, chain } from './modules/container.js';
export type { Layer } from './modules/container.js';
export { Conv2d } from './modules/conv.js';
export type { Conv2dOptions } from './modules/conv.js';
export { Dropout } from './modules/dropout.js';
export { Flatten } from './modules/flatten.js';
export { Identity, Linear } from './modules/linear.js';
export { AdaptiveAvgPool2d, MaxPool2d } from './modules/pooling.js';
export type { Pair } from './modules/utils.js';
