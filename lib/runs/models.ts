/**
 * What a run's model is, from its configuration: the pre-training model (an encoder per modality, input channels from
 * the dataset's bands), a fine-tuned classifier's classes and architecture, and the input size of each modality.
 * Training builds its models with these, and loading a run for inference builds the same ones.
 */
import { CLASSES, type Dataset, NEGATIVE, type SampleRecord, bandCounts, defaultSize } from '../data/dataset.js';
import { FileError, invalidArg } from '../errors.js';
import { type BackboneWeightsReport, loadBackboneWeights } from '../io/backbone_weights.js';
import type { Module } from '../nn/module.js';
import { type BackboneName, MultiModalModel } from '../nn/models/multimodal.js';
import type { FinetuneConfig, PretrainConfig } from '../config/index.js';
import type { NormalizationStats } from '../data/stats.js';
import { readPretrainConfig } from './config.js';
import { RunFolder } from './folder.js';

/** The pre-training model for a configuration: input channels from the dataset's bands. */
export function pretrainModel(config: PretrainConfig, dataset: Dataset): MultiModalModel {
  const channels = bandCounts('pretrain', config.modalities, dataset);
  const backbones = Object.fromEntries(Object.entries(config.backbones).filter(([m]) => m in channels));
  return new MultiModalModel({
    modalities: channels,
    backbones,
    embeddingDim: config.embeddingDim,
    hiddenDim: config.hiddenDim,
    alexnetHidden: config.alexnetHidden,
  });
}

/** Each modality's input [H, W]: its configured size, or its native grid. */
export function inputSizes(
  config: Pick<PretrainConfig, 'modalities' | 'sizes'>,
  dataset: Dataset,
): Record<string, [number, number]> {
  return Object.fromEntries(
    config.modalities.map((m) => [m, config.sizes[m] ?? defaultSize(dataset.modalities.find((i) => i.name === m)!)]),
  );
}

/** A classifier's classes: METER-ML's six, and Negative when it is a class. */
export function classNamesOf(config: Pick<FinetuneConfig, 'includeNegative'>): string[] {
  return config.includeNegative ? [...CLASSES, NEGATIVE] : [...CLASSES];
}

/** The class of a sample for a classifier, or -1 when it is left out. */
export function classOf(sample: Pick<SampleRecord, 'label' | 'negative'>, includeNegative: boolean): number {
  return sample.label >= 0 ? sample.label : includeNegative && sample.negative ? CLASSES.length : -1;
}

/** The pre-training run `init` names (fine-tuning's --init), or a FileError saying what it should be. */
export function pretrainRunAt(init: string): RunFolder {
  const folder = new RunFolder(init);
  if (folder.kind !== 'pretrain')
    throw new FileError(
      folder.path('checkpoint'),
      'missing: --init must be a pre-training run folder (mmssl pretrain --out)',
    );
  return folder;
}

/**
 * A fine-tuned model's architecture: the backbones of the run fine-tuning starts from, if any (they must be the
 * same), and the missing token (learned only when trained with modality dropout).
 */
export function architecture(config: FinetuneConfig): {
  backbones: Record<string, BackboneName>;
  alexnetHidden: number;
  missingToken: FinetuneConfig['missingToken'];
} {
  const missingToken = config.modalityDropout > 0 ? config.missingToken : 'zero';
  if (config.init === null) return { backbones: config.backbones, alexnetHidden: config.alexnetHidden, missingToken };
  const run = readPretrainConfig(pretrainRunAt(config.init));
  return { backbones: run.backbones, alexnetHidden: run.alexnetHidden, missingToken };
}

/**
 * Each backbone `config.backboneInit` names, loaded from its file (lib/io/backbone_weights.ts), the first convolution
 * mapped from `backboneInitBands` to the dataset's bands; the reports by modality.
 */
export async function initBackbones(
  config: Pick<PretrainConfig, 'modalities' | 'backboneInit' | 'backboneInitBands'>,
  dataset: Dataset,
  backboneOf: (modality: string) => Module,
): Promise<Record<string, BackboneWeightsReport>> {
  const unknown = Object.keys({ ...config.backboneInit, ...config.backboneInitBands }).filter(
    (m) => !config.modalities.includes(m),
  );
  if (unknown.length > 0)
    throw invalidArg('backboneInit', unknown[0], `a modality of the run (${config.modalities.join(', ')})`, unknown[0]);
  const reports: Record<string, BackboneWeightsReport> = {};
  for (const [m, file] of Object.entries(config.backboneInit)) {
    const bands = dataset.modalities.find((i) => i.name === m)!.bands;
    reports[m] = await loadBackboneWeights(backboneOf(m), bands, { file, bands: config.backboneInitBands[m] });
  }
  return reports;
}

/** `computed` with the statistics `config.normalization` declares in their place, each broadcast to the bands. */
export function withDeclaredStats(
  config: Pick<PretrainConfig, 'modalities' | 'normalization'>,
  dataset: Dataset,
  computed: NormalizationStats,
): NormalizationStats {
  const out = { ...computed };
  for (const [m, { mean, std }] of Object.entries(config.normalization)) {
    const info = dataset.modalities.find((i) => i.name === m);
    if (!info || !config.modalities.includes(m))
      throw invalidArg('normalization', m, `a modality of the run (${config.modalities.join(', ')})`, m);
    const bands = info.bands.length;
    const fit = (values: number[], what: string) => {
      if (values.length !== 1 && values.length !== bands)
        throw invalidArg('normalization', `${m}.${what}`, `one value or ${bands} (one per band of ${m})`, values);
      return values.length === 1 ? Array.from({ length: bands }, () => values[0]) : [...values];
    };
    out[m] = { mean: fit(mean, 'mean'), std: fit(std, 'std') };
  }
  return out;
}
