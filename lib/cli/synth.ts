/** `mmssl synth`: writes a synthetic dataset in METER-ML's release layout (lib/data/synth). */
import { InvalidArgumentError, Option, type Command } from 'commander';

import { RELEASE_HOLDOUT, SYNTH_FORMATS, type SynthFormat, synthesize } from '../data/synth/index.js';
import { countingBar, integer } from './options.js';

interface SynthFlags {
  out: string;
  perClass: number;
  seed: number;
  format: SynthFormat;
  defects: boolean;
  valFraction?: number;
  testFraction?: number;
}

const share = (value: string) => {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError('a number in [0, 1) is expected.');
  return n;
};

export function synthCommand(program: Command): void {
  program
    .command('synth')
    .description(
      "write a synthetic dataset in METER-ML's release layout or as GeoTIFFs with a manifest (every type, every split, a few broken samples)",
    )
    .requiredOption('--out <dir>', 'the dataset folder to create (must not exist, or be empty)')
    .requiredOption('--per-class <n>', 'locations per type: the six classes and Negative (at least 3)', integer(3))
    .option('--seed <s>', 'random seed', integer(0), 0)
    .addOption(
      new Option('--format <format>', "meterml: the release's layout; geotiff: GeoTIFFs and manifest.geojson")
        .choices(SYNTH_FORMATS)
        .default('meterml'),
    )
    .option('--no-defects', 'write no deliberately broken samples')
    .option('--val-fraction <x>', "share of each type's locations in val (default 0.006, the release's)", share)
    .option('--test-fraction <x>', "share of each type's locations in test (default 0.012, the release's)", share)
    .action(async (flags: SynthFlags) => {
      const bar = countingBar('synth', 'locations');
      const started = Date.now();
      const report = await synthesize({
        out: flags.out,
        perClass: flags.perClass,
        seed: flags.seed,
        format: flags.format,
        defects: flags.defects,
        holdout: { val: flags.valFraction ?? RELEASE_HOLDOUT.val, test: flags.testFraction ?? RELEASE_HOLDOUT.test },
        onProgress: bar.update,
      }).finally(bar.stop);
      const { train, val, test } = report.splits;
      console.log(
        `${report.out}: ${report.locations} locations (train ${train}, val ${val}, test ${test}), ${report.defects.length} broken on purpose (synth_report.json), ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    });
}
