/**
 * `npm run demo`: the whole method on the synthetic dataset, offline, in minutes on two CPU cores. It writes a
 * dataset (`mmssl synth`), pre-trains Sentinel-1 + Sentinel-2 jointly with and without augmentations, fine-tunes on
 * 10% of the labels from those runs and from random initialisation, and prints a small Table 1 (results.md, results.json and results.svg beside
 * it) with whether pre-training beat random initialisation on every downstream set. Runs are cached: a second
 * `npm run demo` prints the table at once. Output folder: the first argument, default ./demo.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { data, train } from '../lib/index.js';

const out = resolve(process.argv[2] ?? 'demo');
const started = Date.now();
const clock = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
const dataset = join(out, 'data');

if (!existsSync(join(dataset, 'synth_report.json'))) {
  console.log(`[${clock()}] writing the synthetic dataset to ${dataset} (280 locations, a quarter each in val and test)`);
  await data.synthesize({ out: dataset, perClass: 40, seed: 0, holdout: { val: 0.25, test: 0.25 } });
}
const results = await train.table1({
  data: dataset, out: join(out, 'table1'), scale: 'demo', rows: ['none', 'S1+S2', 'S1+S2*'], columns: ['S1', 'S2', 'S1+S2'],
  common: { seed: 0 }, finetune: { labelFraction: 0.1 },
  onRun: (e) => console.log(`[${clock()}] ${e.kind === 'pretrain' ? `pre-training ${e.row}` : `fine-tuning ${e.column} from ${e.row === 'none' ? 'random initialisation' : `${e.row} pre-training`}`}${e.cached ? ' (cached)' : ''}`),
  onStep: (m) => {
    if (m.batch === m.batches - 1 && (m.epoch + 1) % 10 === 0) console.log(`[${clock()}]   epoch ${m.epoch + 1}: loss ${m.loss.toFixed(3)}, ${m.locationsPerSecond.toFixed(0)} locations/s`);
  },
});
console.log(`\n${train.formatTable1(results)}`);
const [random, ...pretrained] = results.rows;
for (const row of pretrained) {
  const wins = results.columns.filter((c) => row.cells[c].valAccuracy > random.cells[c].valAccuracy);
  console.log(`${row.name} pre-training beat random initialisation on ${wins.length} of ${results.columns.length} downstream sets (${wins.join(', ') || 'none'}), with 10% of the labels.`);
}
console.log(`Table, chart and runs: ${join(out, 'table1')} (results.md, results.svg). ${clock()} in all.`);
