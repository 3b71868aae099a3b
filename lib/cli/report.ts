/** `mmssl report`: one self-contained HTML page for one or several runs (lib/report/build.ts). */
import { Option, type Command } from 'commander';

import type { Split } from '../data/dataset.js';
import { integer } from './options.js';

interface ReportFlags {
  out: string;
  data?: string;
  split: Split;
  maps: boolean;
  mapPoints?: number;
}

export function reportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'write one static HTML page for runs side by side: curves, Table 1 heat map, confusion matrices, retrieval, embedding maps, configuration',
    )
    .argument('<runs...>', 'pre-training, fine-tuning or table1 folders')
    .requiredOption('--out <file>', 'the HTML file to write (e.g. report.html)')
    .option('--data <dir>', "the dataset for the embedding maps and missing evaluations (default each run's own)")
    .addOption(
      new Option('--split <split>', 'the split evaluated and mapped').choices(['val', 'test', 'train']).default('val'),
    )
    .option('--no-maps', 'leave out the embedding maps (PCA, UMAP)')
    .option('--map-points <n>', 'points per map at most, a seeded subset (default 1000)', integer(3))
    .action(async (runs: string[], f: ReportFlags) => {
      const { writeReport } = await import('../report/build.js');
      const summary = await writeReport({
        runs,
        out: f.out,
        data: f.data,
        split: f.split,
        maps: f.maps,
        mapPoints: f.mapPoints,
        onProgress: (what) => console.error(what),
      });
      console.log(`${summary.path}: ${summary.sections.length} sections, ${summary.charts} charts`);
    });
}
