/** `mmssl synth`: writes a synthetic dataset in METER-ML's release layout (lib/data/synth). */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { SingleBar } from 'cli-progress';

import { SYNTH_FORMATS, type SynthFormat, synthesize } from '../data/synth/index.js';

interface SynthFlags {
  out: string;
  perClass: number;
  seed: number;
  format: SynthFormat;
  defects: boolean;
}

/** A commander parser for integers >= min. */
const integer = (min: number) => (value: string) => {
  if (!/^-?\d+$/.test(value) || Number(value) < min) throw new InvalidArgumentError(`an integer >= ${min} is expected.`);
  return Number(value);
};

export function synthCommand(program: Command): void {
  program.command('synth')
    .description("write a synthetic dataset in METER-ML's release layout or as GeoTIFFs with a manifest (every type, every split, a few broken samples)")
    .requiredOption('--out <dir>', 'the dataset folder to create (must not exist, or be empty)')
    .requiredOption('--per-class <n>', 'locations per type: the six classes and Negative (at least 3)', integer(3))
    .option('--seed <s>', 'random seed', integer(0), 0)
    .addOption(new Option('--format <format>', "meterml: the release's layout; geotiff: GeoTIFFs and manifest.geojson").choices(SYNTH_FORMATS).default('meterml'))
    .option('--no-defects', 'write no deliberately broken samples')
    .action(async (flags: SynthFlags) => {
      const bar = process.stderr.isTTY ? new SingleBar({ format: 'synth [{bar}] {value}/{total} locations | {eta_formatted} left | {rate}/s', stream: process.stderr }) : undefined;
      const started = Date.now();
      const report = await synthesize({
        out: flags.out, perClass: flags.perClass, seed: flags.seed, format: flags.format, defects: flags.defects,
        onProgress: (done, total) => {
          if (done === 1) bar?.start(total, 0, { rate: '0' });
          bar?.update(done, { rate: (done / ((Date.now() - started) / 1000)).toFixed(1) });
        },
      }).finally(() => bar?.stop());
      const { train, val, test } = report.splits;
      console.log(`${report.out}: ${report.locations} locations (train ${train}, val ${val}, test ${test}), ${report.defects.length} broken on purpose (synth_report.json), ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
}
