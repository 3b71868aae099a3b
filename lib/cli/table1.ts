/** `mmssl table1`: the paper's experiment matrix (lib/train/table1.ts), resumable, with a table and a chart. */
import { Option, type Command } from 'commander';

import { FINETUNE_OPTIONS } from '../config/index.js';
import { addConfigFlags, commandLineValues, commonOptions, list, stopOnInterrupt } from './options.js';

interface Table1Flags {
  data: string;
  out: string;
  scale: 'demo' | 'paper';
  rows?: string[];
  columns?: string[];
  protocol: 'finetune' | 'linear' | 'knn';
  runs?: string;
  report: boolean;
}

/** What every run of the matrix takes from the command line. */
const COMMON = commonOptions('seed', 'threads', 'workers', 'device', 'onBadSample');

export function table1Command(program: Command): void {
  const command = program
    .command('table1')
    .description(
      "run the paper's Table 1: every pre-training modality set, each fine-tuned on the downstream sets it holds",
    )
    .requiredOption('--data <dir>', 'dataset: a METER-ML folder, a folder with manifest.geojson, or a manifest file')
    .requiredOption(
      '--out <dir>',
      'results.md, results.json, results.svg and runs/ (reused: an interrupted matrix resumes)',
    )
    .addOption(
      new Option('--scale <scale>', "demo: minutes on a laptop; paper: the paper's epochs and model sizes")
        .choices(['demo', 'paper'])
        .default('demo'),
    )
    .option('--rows <list>', 'pre-training rows, comma-separated (e.g. none,S1+S2+NAIP,S1+S2*; default all)', list)
    .option('--columns <list>', 'downstream sets, comma-separated (e.g. S2,NAIP,S2+NAIP; default all)', list)
    .addOption(
      new Option(
        '--protocol <protocol>',
        "each cell: finetune (the paper's), linear (a classifier on frozen backbones) or knn (k-NN on frozen features, no training)",
      )
        .choices(['finetune', 'linear', 'knn'])
        .default('finetune'),
    )
    .option(
      '--runs <dir>',
      'where runs are cached (default <out>/runs): tables naming the same folder share their pre-training runs',
    )
    .option('--no-report', 'do not write report.html');
  addConfigFlags(command, { ...COMMON, labelFraction: FINETUNE_OPTIONS.labelFraction }).action(
    async (f: Table1Flags) => {
      const { table1, formatTable1 } = await import('../experiments/table1.js');
      const interrupt = stopOnInterrupt('run');
      const started = Date.now();
      const clock = () => `${((Date.now() - started) / 60000).toFixed(1)} min`;
      const results = await table1({
        data: f.data,
        out: f.out,
        scale: f.scale,
        protocol: f.protocol,
        runs: f.runs,
        rows: f.rows,
        columns: f.columns,
        signal: interrupt.signal,
        common: commandLineValues(command, COMMON).values,
        finetune: commandLineValues(command, { labelFraction: FINETUNE_OPTIONS.labelFraction }).values,
        onRun: (e) =>
          console.error(
            `[${clock()}] ${e.kind} ${e.row}${e.column ? ` -> ${e.column}` : ''}${e.cached ? ' (cached)' : ''}`,
          ),
      }).finally(interrupt.dispose);
      console.log(`\n${formatTable1(results)}\n${f.out}: results.md, results.json, results.svg (${clock()})`);
      if (f.report && !interrupt.signal.aborted) {
        const { writeReport } = await import('../report/build.js');
        const { join } = await import('node:path');
        const report = await writeReport({
          runs: [f.out],
          out: join(f.out, 'report.html'),
          onProgress: (what) => console.error(`[${clock()}] report: ${what}`),
        });
        console.log(`report: ${report.path}`);
      }
    },
  );
}
