/** `mmssl embed`: embeddings (and class probabilities) for every sample of a dataset (lib/train/embed.ts). */
import { type Command, InvalidArgumentError } from 'commander';

import type { Split } from '../data/dataset.js';
import type { Precision } from '../torch/amp.js';
import type { Device } from '../torch/device.js';
import { addConfigFlags, commonOptions, list } from './options.js';

interface EmbedFlags {
  init: string;
  data: string[];
  out: string;
  modalities?: string[];
  perModality?: boolean;
  splits?: Split[];
  batchSize?: number;
  device?: Device;
  precision?: Precision;
  workers?: number;
  onBadSample?: 'raise' | 'skip';
}

export function embedCommand(program: Command): void {
  const command = program
    .command('embed')
    .description(
      'write the embeddings of every sample (fused or per modality; probabilities too from a fine-tuned model) as .npy with an index',
    )
    .requiredOption('--init <run>', 'a pre-training run folder or a fine-tuning output folder')
    .requiredOption(
      '--data <paths...>',
      'a dataset (METER-ML folder, folder with manifest.geojson, manifest file), or GeoTIFF files of one modality (with --modalities)',
    )
    .requiredOption('--out <path>', 'output path without extension: PATH.npy (or PATH.<modality>.npy), PATH.index.json')
    .option('--modalities <list>', "modalities, comma-separated (default the run's)", list)
    .option('--per-modality', 'one array per modality instead of the fused one')
    .option('--splits <list>', 'the splits embedded, comma-separated (default train,val,test)', (v: string) =>
      list(v).map((s) => {
        if (!['train', 'val', 'test'].includes(s))
          throw new InvalidArgumentError(`'${s}' is not a split (train, val, test).`);
        return s as Split;
      }),
    );
  addConfigFlags(command, commonOptions('batchSize', 'device', 'precision', 'workers', 'onBadSample')).action(
    async (f: EmbedFlags) => {
      const { embed } = await import('../eval/embed.js');
      const data = f.data.length === 1 && !/\.tiff?$/i.test(f.data[0]) ? f.data[0] : f.data;
      const index = await embed({
        init: f.init,
        data,
        out: f.out,
        modalities: f.modalities,
        perModality: f.perModality,
        splits: f.splits,
        batchSize: f.batchSize,
        device: f.device,
        precision: f.precision,
        workers: f.workers,
        onBadSample: f.onBadSample,
      });
      const { describeSkipped } = await import('../runs/skipped.js');
      if (index.skipped.length > 0) console.log(`${describeSkipped(index.skipped)} (all in ${f.out}.index.json)`);
      console.log(`${index.ids.length} samples: ${index.files.join(', ')}, ${f.out}.index.json`);
    },
  );
}
