/**
 * `npm run demo`: the whole method on the synthetic dataset, offline, in minutes on two CPU cores. It writes a
 * dataset (`mmssl synth`), pre-trains Sentinel-1 + Sentinel-2 jointly with and without augmentations, fine-tunes on
 * 10% of the labels from those runs and from random initialisation, and prints a small Table 1 (results.md,
 * results.json and results.svg beside it) with whether pre-training beat random initialisation on every downstream
 * set; then the same table by k-NN on frozen features (no training, the same pre-training runs), cross-modal
 * retrieval against random initialisation, and a report (report.html) of all of it. Runs are cached: a second
 * `npm run demo` prints the tables at once. Output folder: the first argument, default ./demo.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { data, evaluation as evaluations, experiments, report as reports, runs } from '../lib/index.js';
import { writeJsonAtomic } from '../lib/io/atomic.js';

const out = resolve(process.argv[2] ?? 'demo');
const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
const dataset = join(out, 'data');

if (!existsSync(join(dataset, 'synth_report.json'))) {
  console.log(
    `[${clock()}] writing the synthetic dataset to ${dataset} (280 locations, a quarter each in val and test)`,
  );
  await data.synthesize({ out: dataset, perClass: 40, seed: 0, holdout: { val: 0.25, test: 0.25 } });
}
// Both tables: synth breaks two samples on purpose, which the runs leave out and list in skipped.jsonl.
const common = { seed: 0, onBadSample: 'skip' } as const;
const cells = { rows: ['none', 'S1+S2', 'S1+S2*'], columns: ['S1', 'S2', 'S1+S2'] };
const results = await experiments.table1({
  data: dataset,
  out: join(out, 'table1'),
  scale: 'demo',
  ...cells,
  common,
  finetune: { labelFraction: 0.1 },
  onRun: (e) =>
    console.log(
      `[${clock()}] ${e.kind === 'pretrain' ? `pre-training ${e.row}` : `fine-tuning ${e.column} from ${e.row === 'none' ? 'random initialisation' : `${e.row} pre-training`}`}${e.cached ? ' (cached)' : ''}`,
    ),
  onStep: (m) => {
    if (m.batch === m.batches - 1 && (m.epoch + 1) % 10 === 0)
      console.log(
        `[${clock()}]   epoch ${m.epoch + 1}: loss ${m.loss.toFixed(3)}, ${m.locationsPerSecond.toFixed(0)} locations/s`,
      );
  },
});
console.log(`\n${experiments.formatTable1(results)}`);
const [random, ...pretrained] = results.rows;
for (const row of pretrained) {
  const wins = results.columns.filter((c) => row.cells[c].valAccuracy > random.cells[c].valAccuracy);
  console.log(
    `${row.name} pre-training beat random initialisation on ${wins.length} of ${results.columns.length} downstream sets (${wins.join(', ') || 'none'}), with 10% of the labels.`,
  );
}

// The same rows by k-NN on frozen features, every training label voting (10% would leave two per class):
// representation quality without fine-tuning's confound.
const knn = await experiments.table1({
  data: dataset,
  out: join(out, 'table1-knn'),
  runs: join(out, 'table1', 'runs'),
  scale: 'demo',
  protocol: 'knn',
  ...cells,
  common,
});
console.log(`\n${experiments.formatTable1(knn)}`);

// Cross-modal retrieval of each pre-training run against random initialisation, written into the run as
// `mmssl evaluate` writes it (the report shows it from there).
for (const run of reports.readTable1(join(out, 'table1')).pretrain) {
  const evaluation = await evaluations.evaluateRun({ init: run.dir, data: dataset, split: 'val', seed: 0 });
  await writeJsonAtomic(new runs.RunFolder(run.dir).evaluationPath('val'), evaluation);
  console.log(`\n${run.label} pre-training, ${evaluations.formatEvaluation(evaluation)}`);
}

const report = await reports.writeReport({
  runs: [join(out, 'table1'), join(out, 'table1-knn')],
  out: join(out, 'report.html'),
  onProgress: (what) => console.log(`[${clock()}] report: ${what}`),
});
console.log(
  `\nTables, charts and runs: ${join(out, 'table1')}, ${join(out, 'table1-knn')}. Report: ${report.path}. ${clock()} in all.`,
);
