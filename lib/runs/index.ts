/**
 * Run folders: their layout, the records they hold (one type per file, shared by what writes and what reads
 * them), and loading a run back for inference or evaluation.
 */
export { readJson, RUN_FILES, RunFolder } from './folder.js';
export type { FolderKind, RunFile } from './folder.js';
export type {
  ClassificationReport,
  EmbeddingHealth,
  FinetuneEpochRecord,
  FinetuneResult,
  KnnMetrics,
  StepMetrics,
  Table1Cell,
  Table1Protocol,
  Table1Results,
  Table1Scale,
} from './records.js';
export { TABLE1_PROTOCOLS } from './records.js';
export { describeRun, loadRun, saveFinetuned } from './load.js';
export type { LoadedRun, RunDescription } from './load.js';
export { readFinetuneConfig, readPretrainConfig } from './config.js';
export { describeEnvironment } from './environment.js';
export type { Environment } from './environment.js';
export { describeSkipped, SkipLog } from './skipped.js';
export type { SkipPhase, SkipRecord } from './skipped.js';
