/** The `distributed` namespace: process groups on LibTorch's c10d, and the launcher behind `mmssl pretrain --nproc`. */
export { initProcessGroup, resolveGroupOptions, ProcessGroup } from './process_group.js';
export type { ProcessGroupOptions, ReduceOp } from './process_group.js';
export { launch } from './launch.js';
export type { LaunchOptions } from './launch.js';
