/** `mmssl finetune`: fine-tuning and evaluation (lib/train/finetune.ts), with a line per epoch and the final tables. */
import { Option, type Command } from 'commander';

import { formatConfusionMatrix } from '../train/metrics.js';
import { fraction, integer, list, positiveNumber, type RunFlags, runOptions, stopOnInterrupt } from './options.js';

interface FinetuneFlags extends RunFlags {
  data?: string;
  init?: string;
  modalities?: string[];
  config?: string;
  out: string;
  epochs?: number;
  batchSize?: number;
  optimizer?: string;
  lr?: number;
  linearProbe?: boolean;
  labelFraction?: number;
  includeNegative?: boolean;
  augment: boolean;
  alexnetHidden?: number;
  modalityDropout?: number;
  missingToken?: 'learned' | 'zero';
}

export function finetuneCommand(program: Command): void {
  runOptions(program.command('finetune')
    .description('fine-tune the chosen backbones with a linear classifier on their concatenated features; evaluate on val and test')
    .option('--data <dir>', 'dataset: a METER-ML folder, a folder with manifest.geojson, or a manifest file')
    .option('--init <run>', "a pre-training run folder, or 'none' for random initialisation (the baseline)")
    .option('--modalities <list>', 'downstream modalities, comma-separated (e.g. s2,naip)', list)
    .option('--config <file>', 'a JSON or YAML file of options (the command line overrides it)')
    .requiredOption('--out <dir>', 'the output folder (config.json, metrics.jsonl, model.safetensors, report.json)')
    .option('--epochs <n>', 'epochs (default 100, the paper\'s)', integer(1))
    .option('--batch-size <n>', 'samples per batch (default 64)', integer(1))
    .addOption(new Option('--optimizer <name>', 'optimizer (default adam)').choices(['sgd', 'adam', 'adamw', 'lars']))
    .option('--lr <x>', 'learning rate (default 1e-4)', positiveNumber)
    .option('--linear-probe', 'freeze the backbones: train the classifier only')
    .option('--label-fraction <x>', 'share of the training labels used, per class, seeded (default 1)', fraction)
    .option('--include-negative', 'train and evaluate Negative samples as a seventh class')
    .option('--no-augment', 'no flips and crops while training')
    .option('--alexnet-hidden <n>', "AlexNet's fc6/fc7 width without --init (default 4096)", integer(1))
    .option('--modality-dropout <p>', "drop each modality of a training sample with probability p (never all): learns to classify with modalities missing (default 0)", fraction)
    .addOption(new Option('--missing-token <kind>', "what replaces a dropped modality's features: a learned vector per modality, or zeros (default learned)").choices(['learned', 'zero'])))
    .action(async (f: FinetuneFlags) => {
      const { readConfigFile, resolveFinetuneConfig } = await import('../train/config.js');
      const { finetune } = await import('../train/finetune.js');
      const file = f.config ? await readConfigFile(f.config) : {};
      const optimizer = JSON.parse(JSON.stringify({ name: f.optimizer, lr: f.lr })) as Record<string, unknown>;
      const config = resolveFinetuneConfig(file, {
        data: f.data, modalities: f.modalities, init: f.init === undefined ? undefined : f.init === 'none' ? null : f.init,
        epochs: f.epochs, batchSize: f.batchSize, optimizer: Object.keys(optimizer).length > 0 ? optimizer : undefined,
        linearProbe: f.linearProbe, labelFraction: f.labelFraction, includeNegative: f.includeNegative, augment: f.augment ? undefined : false,
        alexnetHidden: f.alexnetHidden, modalityDropout: f.modalityDropout, missingToken: f.missingToken, sizes: f.size, seed: f.seed, device: f.device, threads: f.threads, workers: f.workers,
        onBadSample: f.onBadSample,
      });
      const { describeSkipped } = await import('../train/skipped.js');
      const { join } = await import('node:path');
      const skippedLog = join(f.out, 'skipped.jsonl');
      const interrupt = stopOnInterrupt('epoch');
      const result = await finetune({
        config, out: f.out, signal: interrupt.signal,
        onEpoch: (m) => {
          console.error(`epoch ${m.epoch + 1}/${config.epochs}: loss ${m.loss.toFixed(4)}, val accuracy ${(100 * m.valAccuracy).toFixed(2)}%, macro F1 ${(100 * m.valMacroF1).toFixed(2)}%, ${m.locationsPerSecond.toFixed(1)} samples/s`);
          if (m.skipped.length > 0) console.log(`epoch ${m.epoch + 1}/${config.epochs}: ${describeSkipped(m.skipped)} (all in ${skippedLog})`);
        },
      }).finally(interrupt.dispose);
      console.log(`validation (${result.val.total} samples)\n${formatConfusionMatrix(result.val)}\n\ntest (${result.test.total} samples)\n${formatConfusionMatrix(result.test)}`);
      const skipped = result.skipped > 0 ? `; ${result.skipped} samples skipped (${skippedLog})` : '';
      console.log(`\n${f.out}: model.safetensors, report.json (${result.epochs} epochs on ${result.trainSamples} labelled samples${skipped})`);
    });
}
