/**
 * What a run folder's files hold, record by record: the lines of metrics.jsonl, report.json, a Table 1 folder's
 * results.json. The trainers write these and the report reads them, so they are declared here, with the folder's
 * layout, rather than in either.
 */

/** The collapse monitor's values for a batch's embeddings (lib/train/monitor.ts). */
export interface EmbeddingHealth {
  /** Per modality: mean over dimensions of the per-dimension standard deviation. */
  std: Record<string, number>;
  alignment: number;
  uniformity: number;
}

/** A pre-training step: a line of metrics.jsonl. */
export interface StepMetrics extends EmbeddingHealth {
  epoch: number;
  /** Batch index in the epoch, and batches per epoch. */
  batch: number;
  batches: number;
  /** Optimizer steps done, this one included. */
  step: number;
  loss: number;
  lr: number;
  locationsPerSecond: number;
  /** Share of the step's wall time spent waiting for the loader. */
  dataWait: number;
  /** With a process group: share of the step's wall time rank 0 spent waiting for collectives. */
  commWait?: number;
  /** Samples left out (onBadSample 'skip') so far this epoch. */
  skipped: number;
}

/** An evaluation of the online k-NN monitor (lib/train/knn_monitor.ts): a line of a pre-training run's metrics.jsonl. */
export interface KnnMetrics {
  epoch: number;
  step: number;
  knn: { accuracy: number; k: number; gallery: number; queries: number; seconds: number };
}

/** A fine-tuning epoch: a line of a fine-tuning run's metrics.jsonl. */
export interface FinetuneEpochRecord {
  epoch: number;
  loss: number;
  lr: number;
  locationsPerSecond: number;
  valAccuracy: number;
  valMacroF1: number;
  /** Samples left out in the epoch (onBadSample 'skip'). */
  skipped: number;
}

/** A classifier's report on a split (lib/eval/metrics.ts computes it, as scikit-learn does). */
export interface ClassificationReport {
  /** Correct predictions over all samples. */
  readonly accuracy: number;
  /** Recall per class, but `null` for a class with no samples (where `recall` says 0, as scikit-learn does). */
  readonly perClassAccuracy: (number | null)[];
  readonly precision: number[];
  readonly recall: number[];
  readonly f1: number[];
  /** Mean F1 over the classes that occur in the targets or were predicted (see lib/eval/metrics.ts). */
  readonly macroF1: number;
  /** Samples per true class (row sums). */
  readonly support: number[];
  readonly total: number;
  readonly confusionMatrix: number[][];
  /** The names given to `classificationReport`, when given. */
  readonly classNames?: readonly string[];
}

/** A fine-tuning run's report.json (and a probe's). */
export interface FinetuneResult {
  classNames: string[];
  val: ClassificationReport;
  test: ClassificationReport;
  /** Labelled training samples used. */
  trainSamples: number;
  epochs: number;
  /** Distinct samples left out (onBadSample 'skip') in any phase; listed in skipped.jsonl. */
  skipped: number;
}

export type Table1Scale = 'demo' | 'paper';
export const TABLE1_PROTOCOLS = ['finetune', 'linear', 'knn'] as const;
export type Table1Protocol = (typeof TABLE1_PROTOCOLS)[number];

export interface Table1Cell {
  valAccuracy: number;
  valMacroF1: number;
  testAccuracy: number;
  /** The cell's run folder. */
  run: string;
}

/** A Table 1 folder's results.json. */
export interface Table1Results {
  scale: Table1Scale;
  protocol: Table1Protocol;
  rows: { name: string; modalities: string[]; augment: boolean; cells: Record<string, Table1Cell> }[];
  columns: string[];
}
