/** `mmssl pack`: a dataset written once as shards of fixed-size records (lib/data/packed), read without decoding. */
import type { Command } from 'commander';

import { PACK_OPTIONS } from '../config/index.js';
import { addConfigFlags, commandLineValues, countingBar } from './options.js';

export function packCommand(program: Command): void {
  const command = program
    .command('pack')
    .description(
      'pack a dataset (METER-ML folder, GeoTIFF manifest, synthetic set) into shards of fixed-size records at the sizes training uses; a killed pack continues where it stopped when run again',
    )
    .requiredOption('--out <dir>', 'the pack folder: new, empty, or holding this pack unfinished');
  addConfigFlags(command, PACK_OPTIONS).action(async (flags: { out: string }) => {
    const { resolvePackConfig } = await import('../config/index.js');
    const { pack } = await import('../data/packed/write.js');
    const { describeSkipped } = await import('../runs/skipped.js');
    const config = resolvePackConfig(commandLineValues(command, PACK_OPTIONS));
    const bar = countingBar('pack', 'locations');
    const report = await pack({
      source: config.data!,
      out: flags.out,
      modalities: config.modalities ?? undefined,
      sizes: config.sizes,
      dtypes: config.dtypes,
      margin: config.margin,
      recordsPerShard: config.recordsPerShard ?? undefined,
      workers: config.workers,
      onBadSample: config.onBadSample,
      onProgress: bar.update,
    }).finally(bar.stop);
    if (report.skipped.length > 0) console.log(`${describeSkipped(report.skipped)} (listed in ${flags.out}/pack.json)`);
    const { readIndex } = await import('../data/packed/format.js');
    const stored = readIndex(report.out)
      .modalities.map((m) => `${m.name} ${m.dtype} ${m.size.join('x')}`)
      .join(', ');
    console.log(
      `${report.out}: ${report.records} locations (${stored}) in ${report.shards} shard${report.shards === 1 ? '' : 's'} (${(report.bytes / 2 ** 20).toFixed(1)} MiB)${report.resumedShards > 0 ? `, ${report.resumedShards} kept from the interrupted pack` : ''}, ${report.seconds.toFixed(1)} s`,
    );
  });
}
