/** The `optim` namespace: optimizers (native steps) and learning-rate schedules. */
export { Optimizer } from './optimizer.js';
export type { OptimizerKind, OptimizerStateDict, ParamGroup, ParamGroupSpec, ParamState } from './optimizer.js';
export { SGD } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { Adam, AdamW } from './adam.js';
export type { AdamOptions, AdamParams } from './adam.js';
export { LARS, larsParamGroups } from './lars.js';
export type { LARSOptions } from './lars.js';
export * as lrScheduler from './lr_scheduler.js';
