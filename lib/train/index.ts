/** The `train` namespace: pre-training, fine-tuning, and what their steps are made of. */
export { anchorRows, modalityRows, viewGroups, viewLayout } from './views.js';
export type { ViewLayout } from './views.js';
export { embeddingHealth, embeddingHealthOnDevice, readHealth, UNIFORMITY_VIEWS } from './monitor.js';
export { KnnMonitor, knnInterval, KNN_BUDGET } from './knn_monitor.js';
export { disposeStep, pretrain, pretrainStep } from './pretrain.js';
export type { EpochSummary, PretrainOptions, PretrainResult, StepOutput } from './pretrain.js';
export { dropMask, finetune } from './finetune.js';
export type { FinetuneEpochMetrics, FinetuneOptions } from './finetune.js';
export { buildOptimizer, buildScheduler } from './optimizers.js';
export type { TrainOptimizer } from './optimizers.js';
