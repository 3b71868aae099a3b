// confusionMatrix, classificationReport and formatConfusionMatrix: hand-computed cases, an independent NumPy
// reference written from the formulas (scikit-learn's defaults with zero_division=0), argument errors, the table.
import test from 'ava';
import { execFileSync } from 'node:child_process';

import { ArgumentError } from '../../lib/errors.js';
import type { ClassificationReport } from '../../lib/runs/records.js';
import { classificationReport, confusionMatrix, formatConfusionMatrix } from '../../lib/eval/metrics.js';

const close = (actual: number, expected: number, tolerance = 1e-12) => Math.abs(actual - expected) <= tolerance;
const allClose = (actual: readonly (number | null)[], expected: readonly (number | null)[]) =>
  actual.length === expected.length &&
  actual.every((a, i) => (a === null || expected[i] === null ? a === expected[i] : close(a, expected[i]!)));

// Case A: 3 classes, 10 samples, every class present and predicted.
//   targets      0 0 0 0 1 1 1 2 2 2
//   predictions  0 0 0 1 1 1 0 2 2 1
//   matrix (rows true, columns predicted)   support   predicted (column sums)
//     [3 1 0]                                4         4
//     [1 2 0]                                3         4
//     [0 1 2]                                3         2
//   accuracy = (3 + 2 + 2) / 10 = 0.7
//   recall    = 3/4, 2/3, 2/3
//   precision = 3/4, 2/4, 2/2
//   F1 = 2tp / (support + predicted) = 6/8, 4/7, 4/5   (= 2PR / (P + R), e.g. class 1: 2·(1/2)(2/3) / (7/6) = 4/7)
//   macro F1 = (3/4 + 4/7 + 4/5) / 3 = 0.7071428571…
const A = { targets: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2], predictions: [0, 0, 0, 1, 1, 1, 0, 2, 2, 1] };

test('case A (3 classes, 10 samples): matrix, accuracy, per-class recall / precision / F1, macro F1', (t) => {
  const matrix = confusionMatrix(A.targets, A.predictions, 3);
  t.deepEqual(matrix, [
    [3, 1, 0],
    [1, 2, 0],
    [0, 1, 2],
  ]);
  const r = classificationReport(matrix);
  t.true(close(r.accuracy, 0.7));
  t.true(allClose(r.recall, [3 / 4, 2 / 3, 2 / 3]));
  t.true(allClose(r.perClassAccuracy, [3 / 4, 2 / 3, 2 / 3]));
  t.true(allClose(r.precision, [3 / 4, 2 / 4, 1]));
  t.true(allClose(r.f1, [6 / 8, 4 / 7, 4 / 5]));
  t.true(close(r.macroF1, (3 / 4 + 4 / 7 + 4 / 5) / 3));
  t.deepEqual(r.support, [4, 3, 3]);
  t.is(r.total, 10);
  t.deepEqual(r.confusionMatrix, matrix);
  t.not(r.confusionMatrix, matrix, 'the report keeps its own copy');
  t.is(r.classNames, undefined);
});

// Case B: 4 classes, 10 samples. Class 1 occurs but is never predicted, class 2 is predicted but never occurs,
// class 3 neither occurs nor is predicted.
//   targets      0 0 0 0 0 0 1 1 1 1
//   predictions  0 0 0 0 2 2 0 0 2 0
//   matrix                support   predicted
//     [4 0 2 0]             6         7
//     [3 0 1 0]             4         0
//     [0 0 0 0]             0         3
//     [0 0 0 0]             0         0
//   accuracy = 4/10
//   recall    = 4/6, 0, 0 (no samples: zero_division=0), 0       perClassAccuracy = 2/3, 0, null, null
//   precision = 4/7, 0 (never predicted: zero_division=0), 0/3, 0
//   F1 = 8/13 (2·(4/7)(2/3) / (26/21) = 16/26), 0, 0, 0
//   macro F1 over the classes in targets ∪ predictions = {0, 1, 2}: (8/13 + 0 + 0) / 3 = 8/39
//   (not 8/52 over all four classes, nor 8/26 over the two with support)
const B = { targets: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1], predictions: [0, 0, 0, 0, 2, 2, 0, 0, 2, 0] };

test('case B: a class never predicted, one predicted but absent, one in neither (macro F1 over the union)', (t) => {
  const matrix = confusionMatrix(B.targets, B.predictions, 4);
  t.deepEqual(matrix, [
    [4, 0, 2, 0],
    [3, 0, 1, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
  ]);
  const r = classificationReport(matrix, ['water', 'forest', 'urban', 'snow']);
  t.true(close(r.accuracy, 0.4));
  t.true(allClose(r.recall, [2 / 3, 0, 0, 0]));
  t.deepEqual(
    r.perClassAccuracy.map((x) => (x === null ? null : typeof x)),
    ['number', 'number', null, null],
  );
  t.true(allClose(r.perClassAccuracy, [2 / 3, 0, null, null]));
  t.true(allClose(r.precision, [4 / 7, 0, 0, 0]));
  t.true(allClose(r.f1, [8 / 13, 0, 0, 0]));
  t.true(close(r.macroF1, 8 / 39));
  t.deepEqual(r.support, [6, 4, 0, 0]);
  t.is(r.total, 10);
  t.deepEqual(r.classNames, ['water', 'forest', 'urban', 'snow']);
});

// Case C: only class 1 occurs and every prediction is right: scikit-learn's macro F1 is 1 (classes 0 and 2 are in
// neither y_true nor y_pred, so they are not averaged in), accuracy 1.
test('case C: perfect predictions of a single class give macro F1 1, not 1/3', (t) => {
  const r = classificationReport(confusionMatrix([1, 1, 1], [1, 1, 1], 3));
  t.is(r.accuracy, 1);
  t.is(r.macroF1, 1);
  t.deepEqual(r.f1, [0, 1, 0]);
  t.deepEqual(r.precision, [0, 1, 0]);
  t.deepEqual(r.perClassAccuracy, [null, 1, null]);
});

test('confusionMatrix takes typed arrays, and an empty input gives a zero matrix that can be summed', (t) => {
  t.deepEqual(
    confusionMatrix(Int32Array.from(A.targets), Uint8Array.from(A.predictions), 3),
    confusionMatrix(A.targets, A.predictions, 3),
  );
  t.deepEqual(confusionMatrix(new Float64Array(0), [], 2), [
    [0, 0],
    [0, 0],
  ]);
});

// ---- against an independent NumPy reference ---------------------------------------------------------------------

/** Mulberry32: a small seeded generator, so that the 50 cases are the same on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Skewed class weights (cubed uniforms), some classes left out entirely, at least one kept. */
function skewedWeights(next: () => number, numClasses: number): number[] {
  const weights = Array.from({ length: numClasses }, () => (next() < 0.3 ? 0 : next() ** 3 + 1e-3));
  if (!weights.some((w) => w > 0)) weights[Math.floor(next() * numClasses)] = 1;
  return weights;
}

function sample(next: () => number, weights: number[]): number {
  let u = next() * weights.reduce((a, b) => a + b, 0);
  for (let k = 0; k < weights.length; k++) if ((u -= weights[k]) < 0 && weights[k] > 0) return k;
  return weights.findLastIndex((w) => w > 0);
}

interface Case {
  targets: number[];
  predictions: number[];
}

function makeCases(count: number, numClasses: number): Case[] {
  const next = random(20240611);
  return Array.from({ length: count }, (_, c) => {
    const size = c === 0 ? 1 : c === 1 ? 200 : 1 + Math.floor(next() * 200);
    const truth = skewedWeights(next, numClasses);
    const guess = skewedWeights(next, numClasses); // errors have their own skew, and may name classes that never occur
    const skill = 0.2 + 0.7 * next();
    const targets = Array.from({ length: size }, () => sample(next, truth));
    // In half the cases the model is blind to one class: it never predicts it, so its precision is 0 by convention.
    const blind = next() < 0.5 ? Math.floor(next() * numClasses) : -1;
    if (blind >= 0) {
      guess[blind] = 0;
      if (!guess.some((w) => w > 0)) guess[(blind + 1) % numClasses] = 1;
    }
    const predictions = targets.map((y) => (y !== blind && next() < skill ? y : sample(next, guess)));
    return { targets, predictions };
  });
}

// Written from the definitions with NumPy only (no scikit-learn here), sharing no code with lib/train/metrics.ts:
// precision = tp / predicted, recall = tp / support, F1 = 2PR / (P + R), each 0 where its denominator is 0;
// macro F1 = mean over np.union1d(unique(y_true), unique(y_pred)), as sklearn's unique_labels.
const REFERENCE = String.raw`
import json, sys
import numpy as np
cases = json.load(sys.stdin)
out = []
for case in cases:
    k = case['numClasses']
    y = np.asarray(case['targets'], dtype=np.int64)
    p = np.asarray(case['predictions'], dtype=np.int64)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    tp = np.diag(cm).astype(np.float64)
    support = np.bincount(y, minlength=k)
    predicted = np.bincount(p, minlength=k)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    pr = precision + recall
    f1 = np.divide(2 * precision * recall, pr, out=np.zeros(k), where=pr > 0)
    labels = np.union1d(np.unique(y), np.unique(p))
    out.append({
        'matrix': cm.tolist(),
        'accuracy': float(np.mean(y == p)),
        'precision': precision.tolist(),
        'recall': recall.tolist(),
        'perClassAccuracy': [None if s == 0 else float(r) for r, s in zip(recall, support)],
        'f1': f1.tolist(),
        'macroF1': float(np.mean(f1[labels])),
        'support': support.tolist(),
        'allClassMacroF1': float(np.mean(f1)),
    })
json.dump(out, sys.stdout)
`;

test('50 random seeded cases (6 classes, 1 to 200 samples, skewed, classes missing) match the NumPy reference to 1e-12', (t) => {
  const numClasses = 6;
  const cases = makeCases(50, numClasses);
  const input = JSON.stringify(cases.map((c) => ({ ...c, numClasses })));
  const expected: (ReturnType<typeof classificationReport> & { matrix: number[][]; allClassMacroF1: number })[] =
    JSON.parse(execFileSync('/usr/bin/python3', ['-c', REFERENCE], { input, encoding: 'utf8' }));
  t.is(expected.length, 50);
  let unionDiffers = 0;
  let neverPredicted = 0;
  let predictedAbsent = 0;
  cases.forEach((c, i) => {
    const e = expected[i];
    const r = classificationReport(confusionMatrix(c.targets, c.predictions, numClasses));
    const where = `case ${i} (${c.targets.length} samples)`;
    t.deepEqual(r.confusionMatrix, e.matrix, where);
    t.deepEqual(r.support, e.support, where);
    t.is(r.total, c.targets.length, where);
    t.true(close(r.accuracy, e.accuracy), `${where}: accuracy ${r.accuracy} vs ${e.accuracy}`);
    t.true(allClose(r.precision, e.precision), `${where}: precision ${r.precision} vs ${e.precision}`);
    t.true(allClose(r.recall, e.recall), `${where}: recall ${r.recall} vs ${e.recall}`);
    t.true(
      allClose(r.perClassAccuracy, e.perClassAccuracy),
      `${where}: perClassAccuracy ${r.perClassAccuracy} vs ${e.perClassAccuracy}`,
    );
    t.true(allClose(r.f1, e.f1), `${where}: f1 ${r.f1} vs ${e.f1}`);
    t.true(close(r.macroF1, e.macroF1), `${where}: macroF1 ${r.macroF1} vs ${e.macroF1}`);
    if (!close(e.macroF1, e.allClassMacroF1)) unionDiffers++;
    const predicted = r.confusionMatrix[0].map((_, j) => r.confusionMatrix.reduce((a, row) => a + row[j], 0));
    if (r.support.some((s, k) => s > 0 && predicted[k] === 0)) neverPredicted++;
    if (r.support.some((s, k) => s === 0 && predicted[k] > 0)) predictedAbsent++;
  });
  t.log({ unionDiffers, neverPredicted, predictedAbsent });
  // The cases must exercise what the conventions are about, or matching the reference would prove little.
  t.true(unionDiffers > 5, `macro F1 over the union differs from the mean over all classes in ${unionDiffers} cases`);
  t.true(neverPredicted > 5, `a class occurs but is never predicted in ${neverPredicted} cases`);
  t.true(predictedAbsent > 5, `a class is predicted but never occurs in ${predictedAbsent} cases`);
});

// ---- argument errors --------------------------------------------------------------------------------------------

function throwsArg(t: import('ava').ExecutionContext, fn: () => unknown, message: RegExp): void {
  const error = t.throws(fn, { instanceOf: ArgumentError, message });
  t.is(error?.code, 'ERR_MMSSL_ARG');
}

test('confusionMatrix: mismatched lengths', (t) => {
  throwsArg(
    t,
    () => confusionMatrix([0, 1, 2], [0, 1], 3),
    /^confusionMatrix: predictions must be of the same length as targets \(3\), got array of length 2$/,
  );
  throwsArg(
    t,
    () => confusionMatrix([0], new Int32Array(2), 3),
    /same length as targets \(1\), got array of length 2$/,
  );
});

test('confusionMatrix: an out-of-range label, named by its index', (t) => {
  throwsArg(
    t,
    () => confusionMatrix([0, 1, 3, 0], [0, 1, 2, 0], 3),
    /^confusionMatrix: targets\[2\] must be an integer class index in \[0, 3\), got number 3$/,
  );
  throwsArg(
    t,
    () => confusionMatrix([0, 1, 2], [0, -1, 2], 3),
    /^confusionMatrix: predictions\[1\] must be an integer class index in \[0, 3\), got number -1$/,
  );
});

test('confusionMatrix: non-integer labels and bad arrays', (t) => {
  throwsArg(
    t,
    () => confusionMatrix([0, 1.5], [0, 1], 3),
    /targets\[1\] must be an integer class index in \[0, 3\), got number 1.5$/,
  );
  throwsArg(
    t,
    () => confusionMatrix([0, 1], [NaN, 1], 3),
    /predictions\[0\] must be an integer class index .*, got number NaN$/,
  );
  throwsArg(t, () => confusionMatrix(['1'] as unknown as number[], [1], 3), /targets\[0\] .*, got string '1'$/);
  throwsArg(
    t,
    () => confusionMatrix(null as unknown as number[], [1], 3),
    /targets must be an array of class indices, got null$/,
  );
});

test('confusionMatrix: numClasses 0, negative or not an integer', (t) => {
  throwsArg(
    t,
    () => confusionMatrix([], [], 0),
    /^confusionMatrix: numClasses must be a positive integer, got number 0$/,
  );
  throwsArg(t, () => confusionMatrix([], [], -2), /numClasses must be a positive integer, got number -2$/);
  throwsArg(t, () => confusionMatrix([0], [0], 2.5), /numClasses must be an integer, got number 2.5$/);
});

test('classificationReport: empty input (no samples) and malformed matrices', (t) => {
  throwsArg(
    t,
    () => classificationReport(confusionMatrix([], [], 3)),
    /^classificationReport: matrix must be a confusion matrix with at least one sample/,
  );
  throwsArg(t, () => classificationReport([]), /matrix must be a non-empty square array of arrays/);
  throwsArg(t, () => classificationReport([[1, 2], [3]]), /matrix must be a non-empty square array of arrays/);
  throwsArg(
    t,
    () =>
      classificationReport([
        [1, 0],
        [-1, 2],
      ]),
    /matrix\[1\]\[0\] must be a non-negative integer count, got number -1$/,
  );
  throwsArg(
    t,
    () =>
      classificationReport([
        [1, 0.5],
        [0, 2],
      ]),
    /matrix\[0\]\[1\] must be a non-negative integer count/,
  );
  throwsArg(
    t,
    () =>
      classificationReport(
        [
          [1, 0],
          [0, 2],
        ],
        ['a'],
      ),
    /classNames must be an array of 2 strings \(one per class\), got array of length 1$/,
  );
});

// ---- the printed table ------------------------------------------------------------------------------------------

test('formatConfusionMatrix: every count, per-class columns, accuracy and macro F1, aligned', (t) => {
  const report: ClassificationReport = classificationReport(confusionMatrix(A.targets, A.predictions, 3));
  const text = formatConfusionMatrix(report, ['water', 'forest', 'urban']);
  t.log(`\n${text}`);
  const lines = text.split('\n');
  t.is(lines.length, 1 + 3 + 1);
  t.deepEqual(lines[0].split(/\s+/).slice(3), ['water', 'forest', 'urban', 'recall', 'precision', 'F1', 'support']);
  report.confusionMatrix.forEach((row, i) => {
    const cells = lines[1 + i].split(/\s+/);
    t.is(cells[0], ['water', 'forest', 'urban'][i]);
    t.deepEqual(cells.slice(1, 4).map(Number), row, `counts of row ${i}`);
  });
  t.deepEqual(lines[1].split(/\s+/).slice(4), ['75.00%', '75.00%', '75.00%', '4']);
  t.deepEqual(lines[2].split(/\s+/).slice(4), ['66.67%', '50.00%', '57.14%', '3']);
  t.true(lines[4].includes('accuracy 70.00%'), lines[4]);
  t.true(lines[4].includes('macro F1 70.71%'), lines[4]);
  t.true(
    lines.slice(0, 4).every((l) => l.length === lines[0].length),
    'the table rows have the same width',
  );
});

test('formatConfusionMatrix: names from the report, indices otherwise, long names shortened in the header, - for no samples', (t) => {
  const report = classificationReport(confusionMatrix(B.targets, B.predictions, 4), [
    'permanent water',
    'forest',
    'urban',
    'snow',
  ]);
  const text = formatConfusionMatrix(report);
  const lines = text.split('\n');
  t.true(lines[0].includes('permanent…'), lines[0]);
  t.true(lines[1].startsWith('permanent water'), lines[1]);
  t.deepEqual(lines[3].split(/\s+/).slice(1), ['0', '0', '0', '0', '-', '0.00%', '0.00%', '0']);
  for (const row of report.confusionMatrix) for (const count of row) t.true(text.includes(String(count)));
  t.true(text.includes('accuracy 40.00%'));
  t.true(text.includes(`macro F1 ${((100 * 8) / 39).toFixed(2)}%`));
  t.true(
    formatConfusionMatrix(
      classificationReport([
        [2, 0],
        [1, 3],
      ]),
    )
      .split('\n')[1]
      .startsWith('0 '),
  );
  t.throws(() => formatConfusionMatrix(report, ['a', 'b']), { instanceOf: ArgumentError });
});
