#!/usr/bin/env node
/**
 * The `mmssl` command. Each command lives in lib/cli/<command>.ts. Mistakes in the command line or its inputs
 * (unknown options, bad values, unreadable files) end with a one-line message and exit code 1, never a stack trace.
 */
import { Command, CommanderError } from 'commander';

import { MmsslError } from '../errors.js';
import { EXIT } from '../exit.js';
import { packageVersion } from '../native.js';
import { version } from '../torch/runtime.js';
import { embedCommand } from './embed.js';
import { evaluateCommand } from './evaluate.js';
import { finetuneCommand } from './finetune.js';
import { pretrainCommand } from './pretrain.js';
import { reportCommand } from './report.js';
import { serveCommand } from './serve.js';
import { synthCommand } from './synth.js';
import { table1Command } from './table1.js';

/** mmssl's own errors (bad arguments, files, ...), as opposed to bugs. */
const isUserError = (e: unknown) => e instanceof MmsslError || String((e as { code?: unknown })?.code).startsWith('ERR_MMSSL_');

const { runtime, cuda, addon } = version();
const program = new Command('mmssl')
  .description('multi-modal self-supervised pre-training for remote sensing')
  .version(`mmssl ${packageVersion}, LibTorch ${runtime} ${cuda ? 'CUDA' : 'CPU'}, addon ${addon}`)
  .exitOverride()
  .showHelpAfterError('(mmssl --help lists the commands and options)');
synthCommand(program);
pretrainCommand(program);
finetuneCommand(program);
table1Command(program);
embedCommand(program);
evaluateCommand(program);
serveCommand(program);
reportCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);   // commander has printed its message
  if (!isUserError(e)) throw e;   // a bug: keep the stack
  console.error(`mmssl: ${(e as Error).message}`);
  process.exit(EXIT.error);
}
