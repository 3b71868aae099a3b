/** `mmssl evaluate`: cross-modal retrieval of a pre-training run, or accuracy per modality subset of a fine-tuned one (lib/train/evaluate.ts). */
import { Option, type Command } from 'commander';

import type { Split } from '../data/dataset.js';
import type { Precision } from '../torch/amp.js';
import type { Device } from '../torch/device.js';
import { addConfigFlags, commonOptions } from './options.js';

interface EvaluateFlags {
  init: string;
  data: string;
  split: Split;
  out?: string;
  batchSize?: number;
  device?: Device;
  precision?: Precision;
  workers?: number;
  seed?: number;
  onBadSample?: 'raise' | 'skip';
}

export function evaluateCommand(program: Command): void {
  const command = program
    .command('evaluate')
    .description(
      'a pre-training run: cross-modal retrieval (recall@1/5/10, median rank) beside random initialisation; a fine-tuned run: accuracy for every subset of its modalities',
    )
    .requiredOption('--init <run>', 'a pre-training run folder or a fine-tuning output folder')
    .requiredOption('--data <dir>', 'the dataset (METER-ML folder, folder with manifest.geojson, manifest file)')
    .addOption(new Option('--split <split>', 'the split evaluated').choices(['val', 'test', 'train']).default('val'))
    .option('--out <file>', 'the JSON written (default <init>/evaluation-<split>.json)');
  addConfigFlags(command, commonOptions('batchSize', 'device', 'precision', 'workers', 'seed', 'onBadSample')).action(
    async (f: EvaluateFlags) => {
      const { evaluateRun, formatEvaluation } = await import('../eval/evaluate.js');
      const { RunFolder } = await import('../runs/folder.js');
      const { writeJsonAtomic } = await import('../io/atomic.js');
      const evaluation = await evaluateRun({
        init: f.init,
        data: f.data,
        split: f.split,
        batchSize: f.batchSize,
        device: f.device,
        precision: f.precision,
        workers: f.workers,
        seed: f.seed,
        onBadSample: f.onBadSample,
        onProgress: (what) => console.error(`evaluating ${what}`),
      });
      const out = f.out ?? new RunFolder(f.init).evaluationPath(f.split);
      await writeJsonAtomic(out, evaluation);
      console.log(`${formatEvaluation(evaluation)}\n\n${out}`);
    },
  );
}
