/** The `train` namespace: checkpoints and weights files (the training loops build on it). */
export { saveWeights, loadWeights, saveCheckpoint, loadCheckpoint } from './checkpoint.js';
export type { WeightsMetadata, Stateful, ModuleLike, LoadedWeights, TrainingState, CheckpointTargets, LoadedCheckpoint } from './checkpoint.js';
