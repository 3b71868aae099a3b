/**
 * What the commands share: the flags of an option table (lib/config/schema.ts) and the values given with them,
 * commander parsers for the commands' own flags (each throws commander's InvalidArgumentError saying what is
 * expected), and the Ctrl-C handling of long runs.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar } from 'cli-progress';

import { COMMON_OPTIONS } from '../config/index.js';
import {
  ConfigSource,
  flagParser,
  flagsOf,
  flagSyntax,
  helpOf,
  type Schema,
  valuesFromFlags,
} from '../config/schema.js';
import { EXIT } from '../exit.js';

/** A flag per option of `schema` that has one, with its help and default from the table. */
export function addConfigFlags(command: Command, schema: Schema): Command {
  for (const { flag, option } of flagsOf(schema)) {
    const parse = flagParser(option);
    command.addOption(
      parse
        ? new Option(flagSyntax(flag, option), helpOf(option)).argParser(parse)
        : new Option(flagSyntax(flag, option), helpOf(option)),
    );
  }
  return command;
}

/** The flags of `schema` given on `command`'s line, as a configuration layer (flags not given are left out). */
export function commandLineValues(command: Command, schema: Schema): ConfigSource {
  const given = (flag: string) =>
    command.getOptionValueSource(flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())) === 'cli';
  return new ConfigSource('the command line', valuesFromFlags(schema, command.opts(), given));
}

/** The options of every command that reads data (a subset of COMMON_OPTIONS: same flags, help and defaults). */
export function commonOptions<K extends keyof typeof COMMON_OPTIONS>(...keys: K[]): Pick<typeof COMMON_OPTIONS, K> {
  return Object.fromEntries(keys.map((k) => [k, COMMON_OPTIONS[k]])) as Pick<typeof COMMON_OPTIONS, K>;
}

/** Integers >= min. */
export const integer = (min: number) => (value: string) => {
  if (!/^-?\d+$/.test(value) || Number(value) < min)
    throw new InvalidArgumentError(`an integer >= ${min} is expected.`);
  return Number(value);
};
/** Finite numbers > 0. */
export const positiveNumber = (value: string) => {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('a number > 0 is expected.');
  return n;
};
/** A comma-separated list. */
export const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

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

/**
 * A progress bar on stderr for work counted in `unit`s (nothing when stderr is not a terminal): `update(done, total)`
 * after each unit, with the rate since the first call; `stop()` at the end, whatever happened.
 */
export function countingBar(label: string, unit: string): { update(done: number, total: number): void; stop(): void } {
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format: `${label} [{bar}] {value}/{total} ${unit} | {eta_formatted} left | {rate}/s`,
        stream: process.stderr,
      })
    : undefined;
  const started = Date.now();
  return {
    update: (done, total) => {
      if (bar && !bar.isActive) bar.start(total, 0, { rate: '0' });
      bar?.update(done, { rate: (done / ((Date.now() - started) / 1000)).toFixed(1) });
    },
    stop: () => bar?.stop(),
  };
}

/** What --backbone-init loaded into a backbone, band by band, on stderr (also in the run folder's backbone-init.json). */
export function printBackboneInit(modality: string, report: { table: string }): void {
  console.error(`mmssl: ${modality}'s backbone from ${report.table}`);
}
