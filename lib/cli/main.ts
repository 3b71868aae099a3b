#!/usr/bin/env node
/**
 * The `mmssl` command (lib/cli/program.ts). Mistakes in the command line or its inputs
 * (unknown options, bad values, unreadable files) end with a one-line message and exit code 1, never a stack trace.
 */
import { CommanderError } from 'commander';

import { InternalError, MmsslError } from '../errors.js';
import { EXIT } from '../exit.js';
import { packageVersion } from '../native.js';
import { version } from '../torch/runtime.js';
import { buildProgram } from './program.js';

/** What is the user's to fix (arguments, files, devices, ...), told in one line; the rest are bugs, told with a stack. */
const isUserError = (e: unknown) => e instanceof MmsslError && !(e instanceof InternalError);

const { runtime, cuda, addon } = version();
const program = buildProgram(`mmssl ${packageVersion}, LibTorch ${runtime} ${cuda ? 'CUDA' : 'CPU'}, addon ${addon}`);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode); // commander has printed its message
  if (!isUserError(e)) throw e; // a bug: keep the stack
  console.error(`mmssl: ${(e as Error).message}`);
  process.exit(EXIT.error);
}
