/** Weights in and out: safetensors files, PyTorch files, model weights with metadata, training checkpoints. */
export * as safetensors from './safetensors.js';
export { loadCheckpoint, loadWeights, peekWeights, saveCheckpoint, saveWeights } from './checkpoint.js';
export type {
  CheckpointTargets,
  LoadedCheckpoint,
  LoadedWeights,
  ModuleLike,
  Stateful,
  TrainingState,
  WeightsMetadata,
} from './checkpoint.js';
export { readTorchFile, writeTorchFile } from './pytorch.js';
export type { TorchFile } from './pytorch.js';
export { loadBackboneWeights } from './backbone_weights.js';
export type { BackboneWeights, BackboneWeightsReport } from './backbone_weights.js';
