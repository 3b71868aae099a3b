/**
 * Classification metrics for the fine-tuning stage, in plain TypeScript (no tensors: the counts are small and
 * integer-exact, and the numbers must match scikit-learn's, so they are computed here rather than on the device).
 *
 * Conventions are scikit-learn's defaults with `zero_division=0`:
 * - the confusion matrix has rows = true class, columns = predicted class (`sklearn.metrics.confusion_matrix`);
 * - precision of a class never predicted is 0, recall of a class with no samples is 0, F1 is 0 where
 *   precision + recall = 0;
 * - macro F1 averages F1 over the union of the classes present in the targets or in the predictions, which is what
 *   `f1_score(y_true, y_pred, average='macro')` does when no `labels` are given (`unique_labels(y_true, y_pred)`):
 *   a class that neither occurs nor is predicted does not drag the mean down, but one predicted wrongly does.
 */

import { checkInt, invalidArg } from '../errors.js';
import type { ClassificationReport } from '../runs/records.js';

function checkLabels(op: string, name: string, labels: ArrayLike<number>, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw invalidArg(op, `${name}[${i}]`, `an integer class index in [0, ${numClasses})`, label);
    }
  }
}

function isArrayLike(value: unknown): value is ArrayLike<number> {
  return value !== null && typeof value === 'object' && Number.isSafeInteger((value as ArrayLike<number>).length);
}

/**
 * Counts (true class, predicted class) pairs: `matrix[t][p]`. Empty inputs give an all-zero matrix, so that
 * per-batch matrices can be summed; `classificationReport` is what refuses to evaluate nothing.
 */
export function confusionMatrix(
  targets: ArrayLike<number>,
  predictions: ArrayLike<number>,
  numClasses: number,
): number[][] {
  const op = 'confusionMatrix';
  if (checkInt(op, 'numClasses', numClasses) < 1) throw invalidArg(op, 'numClasses', 'a positive integer', numClasses);
  if (!isArrayLike(targets)) throw invalidArg(op, 'targets', 'an array of class indices', targets);
  if (!isArrayLike(predictions)) throw invalidArg(op, 'predictions', 'an array of class indices', predictions);
  if (targets.length !== predictions.length) {
    // A sparse array of the same length, so that the message says the length whatever kind of array was given.
    throw invalidArg(
      op,
      'predictions',
      `of the same length as targets (${targets.length})`,
      new Array(predictions.length),
    );
  }
  checkLabels(op, 'targets', targets, numClasses);
  checkLabels(op, 'predictions', predictions, numClasses);
  const matrix = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < targets.length; i++) matrix[targets[i]][predictions[i]]++;
  return matrix;
}

function checkMatrix(op: string, matrix: unknown): number[][] {
  const square =
    Array.isArray(matrix) &&
    matrix.length > 0 &&
    matrix.every((row) => Array.isArray(row) && row.length === matrix.length);
  if (!square) throw invalidArg(op, 'matrix', 'a non-empty square array of arrays (numClasses x numClasses)', matrix);
  matrix.forEach((row: unknown[], i) =>
    row.forEach((count, j) => {
      if (!Number.isSafeInteger(count) || (count as number) < 0)
        throw invalidArg(op, `matrix[${i}][${j}]`, 'a non-negative integer count', count);
    }),
  );
  return matrix as number[][];
}

/** Accuracy, per-class precision / recall / F1 and macro F1 from a confusion matrix (rows = true class). */
export function classificationReport(matrix: number[][], classNames?: readonly string[]): ClassificationReport {
  const op = 'classificationReport';
  const counts = checkMatrix(op, matrix).map((row) => row.slice());
  const n = counts.length;
  if (
    classNames !== undefined &&
    (!Array.isArray(classNames) || classNames.length !== n || !classNames.every((c) => typeof c === 'string'))
  ) {
    throw invalidArg(op, 'classNames', `an array of ${n} strings (one per class)`, classNames);
  }
  const support = counts.map((row) => row.reduce((a, b) => a + b, 0));
  const predicted = counts[0].map((_, j) => counts.reduce((a, row) => a + row[j], 0));
  const total = support.reduce((a, b) => a + b, 0);
  // Every metric below divides by the number of samples somewhere; with none there is nothing to report.
  if (total === 0) throw invalidArg(op, 'matrix', 'a confusion matrix with at least one sample', 'all-zero matrix');
  const tp = counts.map((row, i) => row[i]);
  const ratio = (num: number, den: number) => (den === 0 ? 0 : num / den); // zero_division=0
  const precision = tp.map((t, i) => ratio(t, predicted[i]));
  const recall = tp.map((t, i) => ratio(t, support[i]));
  // 2tp / (2tp + fp + fn) is 2PR / (P + R) without the rounding of P and R, and 0 exactly where P + R = 0.
  const f1 = tp.map((t, i) => ratio(2 * t, support[i] + predicted[i]));
  const present = f1.filter((_, i) => support[i] > 0 || predicted[i] > 0);
  return {
    accuracy: tp.reduce((a, b) => a + b, 0) / total,
    perClassAccuracy: recall.map((r, i) => (support[i] === 0 ? null : r)),
    precision,
    recall,
    f1,
    macroF1: present.reduce((a, b) => a + b, 0) / present.length, // present is non-empty since total > 0
    support,
    total,
    confusionMatrix: counts,
    ...(classNames === undefined ? {} : { classNames: [...classNames] }),
  };
}

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

/** At most `width` characters, so that long class names do not blow up the column widths of the header. */
function shortName(name: string, width: number): string {
  return name.length <= width ? name : `${name.slice(0, width - 1)}…`;
}

/**
 * An aligned text table: one row per true class with its counts per predicted class, then recall, precision, F1
 * (in percent) and support; then a line with accuracy and macro F1. Recall reads `-` for a class with no samples.
 */
export function formatConfusionMatrix(report: ClassificationReport, classNames?: readonly string[]): string {
  const n = report.confusionMatrix.length;
  const names = classNames ?? report.classNames ?? Array.from({ length: n }, (_, i) => String(i));
  if (names.length !== n)
    throw invalidArg('formatConfusionMatrix', 'classNames', `an array of ${n} strings (one per class)`, names);
  const header = ['true \\ predicted', ...names.map((c) => shortName(c, 10)), 'recall', 'precision', 'F1', 'support'];
  const rows = report.confusionMatrix.map((row, i) => [
    names[i],
    ...row.map(String),
    report.perClassAccuracy[i] === null ? '-' : percent(report.recall[i]),
    percent(report.precision[i]),
    percent(report.f1[i]),
    String(report.support[i]),
  ]);
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j].length)));
  // Names read best left-aligned, numbers right-aligned so that their digits line up.
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j])))
      .join('  ')
      .trimEnd();
  const overall = `accuracy ${percent(report.accuracy)}  macro F1 ${percent(report.macroF1)}  (${report.total} samples)`;
  return [line(header), ...rows.map(line), overall].join('\n');
}
