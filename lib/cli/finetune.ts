/** `mmssl finetune`: fine-tuning and evaluation (lib/train/finetune.ts), with a line per epoch and the final tables. */
import type { Command } from 'commander';

import { FINETUNE_OPTIONS } from '../config/index.js';
import { formatConfusionMatrix } from '../eval/metrics.js';
import { addConfigFlags, commandLineValues, printBackboneInit, stopOnInterrupt } from './options.js';

/** The command's own flags (the configuration's come from FINETUNE_OPTIONS). */
interface FinetuneFlags {
  config?: string;
  out: string;
}

export function finetuneCommand(program: Command): void {
  const command = program
    .command('finetune')
    .description(
      'fine-tune the chosen backbones with a linear classifier on their concatenated features; evaluate on val and test',
    )
    .option('--config <file>', 'a JSON or YAML file of options (the command line overrides it)')
    .requiredOption('--out <dir>', 'the output folder (config.json, metrics.jsonl, model.safetensors, report.json)');
  addConfigFlags(command, FINETUNE_OPTIONS).action(async (f: FinetuneFlags) => {
    const { readConfigFile, resolveFinetuneConfig } = await import('../config/index.js');
    const { finetune } = await import('../train/finetune.js');
    const file = f.config ? await readConfigFile(f.config) : {};
    const config = resolveFinetuneConfig(file, commandLineValues(command, FINETUNE_OPTIONS));
    const { describeSkipped } = await import('../runs/skipped.js');
    const { RunFolder } = await import('../runs/folder.js');
    const skippedLog = new RunFolder(f.out).path('skipped');
    const interrupt = stopOnInterrupt('epoch');
    const result = await finetune({
      config,
      out: f.out,
      onBackboneInit: printBackboneInit,
      signal: interrupt.signal,
      onEpoch: (m) => {
        console.error(
          `epoch ${m.epoch + 1}/${config.epochs}: loss ${m.loss.toFixed(4)}, val accuracy ${(100 * m.valAccuracy).toFixed(2)}%, macro F1 ${(100 * m.valMacroF1).toFixed(2)}%, ${m.locationsPerSecond.toFixed(1)} samples/s`,
        );
        if (m.skipped.length > 0)
          console.log(`epoch ${m.epoch + 1}/${config.epochs}: ${describeSkipped(m.skipped)} (all in ${skippedLog})`);
      },
    }).finally(interrupt.dispose);
    console.log(
      `validation (${result.val.total} samples)\n${formatConfusionMatrix(result.val)}\n\ntest (${result.test.total} samples)\n${formatConfusionMatrix(result.test)}`,
    );
    const skipped = result.skipped > 0 ? `; ${result.skipped} samples skipped (${skippedLog})` : '';
    console.log(
      `\n${f.out}: model.safetensors, report.json (${result.epochs} epochs on ${result.trainSamples} labelled samples${skipped})`,
    );
  });
}
