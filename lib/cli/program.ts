/** The `mmssl` program: every command (each in lib/cli/<command>.ts), without running it (docs/ renders its help). */
import { Command } from 'commander';

import { embedCommand } from './embed.js';
import { evaluateCommand } from './evaluate.js';
import { finetuneCommand } from './finetune.js';
import { packCommand } from './pack.js';
import { pretrainCommand } from './pretrain.js';
import { reportCommand } from './report.js';
import { serveCommand } from './serve.js';
import { synthCommand } from './synth.js';
import { table1Command } from './table1.js';

export function buildProgram(version: string): Command {
  const program = new Command('mmssl')
    .description('multi-modal self-supervised pre-training for remote sensing')
    .version(version)
    .exitOverride()
    .showHelpAfterError('(mmssl --help lists the commands and options)');
  for (const add of [
    synthCommand,
    packCommand,
    pretrainCommand,
    finetuneCommand,
    table1Command,
    embedCommand,
    evaluateCommand,
    serveCommand,
    reportCommand,
  ])
    add(program);
  return program;
}
