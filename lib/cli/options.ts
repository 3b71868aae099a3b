/**
 * What the commands share: commander parsers (each throws commander's InvalidArgumentError saying what is expected)
 * and the Ctrl-C handling of long runs.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';

import { EXIT } from '../exit.js';

/** Integers >= min. */
export const integer = (min: number) => (value: string) => {
  if (!/^-?\d+$/.test(value) || Number(value) < min) throw new InvalidArgumentError(`an integer >= ${min} is expected.`);
  return Number(value);
};
/** Finite numbers > 0. */
export const positiveNumber = (value: string) => {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('a number > 0 is expected.');
  return n;
};
/** A comma-separated list. */
export const list = (value: string) => value.split(',').map((s) => s.trim()).filter((s) => s !== '');
/** A number in (0, 1]. */
export const fraction = (value: string) => {
  const n = Number(value);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('a number in (0, 1] is expected.');
  return n;
};
/** `naip=128x128` (repeatable) into {naip: [128, 128]}. */
export const size = (value: string, previous: Record<string, [number, number]> = {}) => {
  const match = /^([\w-]+)=(\d+)x(\d+)$/.exec(value);
  if (!match || Number(match[2]) < 1 || Number(match[3]) < 1) throw new InvalidArgumentError('MODALITY=HxW is expected, e.g. naip=128x128.');
  return { ...previous, [match[1]]: [Number(match[2]), Number(match[3])] as [number, number] };
};

/**
 * Ctrl-C once: stop after the current `unit` (step, epoch) with what it saves, and exit with status 130 (so that a
 * script can tell a stopped run from a finished one); twice: leave at once.
 */
export function stopOnInterrupt(unit: string): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onInterrupt = () => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted);
    controller.abort();
    process.exitCode = EXIT.interrupted;
    console.error(`\nmmssl: stopping after this ${unit} (Ctrl-C again to quit at once)`);
  };
  process.on('SIGINT', onInterrupt);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onInterrupt) };
}

/** --on-bad-sample, for every command that reads a dataset. */
export const badSampleOption = () => new Option('--on-bad-sample <policy>', 'a sample that cannot be read: raise (stop with its error, the default) or skip (leave it out, reported)').choices(['raise', 'skip']);

/** What `runOptions` parses. */
export interface RunFlags {
  size?: Record<string, [number, number]>;
  seed?: number;
  device?: string;
  threads?: number;
  workers?: number;
  onBadSample?: 'raise' | 'skip';
}

/** The options every training command takes: input sizes, seed, device, threads. */
export function runOptions(command: Command): Command {
  return command
    .option('--size <modality=HxW>', 'input size of a modality (repeatable; default naip=128x128, others native)', size)
    .option('--seed <n>', 'random seed (default 0)', integer(0))
    .option('--device <device>', 'cpu, cuda or cuda:N (default cpu)')
    .option('--threads <n>', "LibTorch's threads", integer(1))
    .option('--workers <n>', 'data decoding threads (default 2)', integer(1))
    .addOption(badSampleOption());
}
