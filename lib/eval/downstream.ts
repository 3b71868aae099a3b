/**
 * The downstream task of a fine-tuning configuration, as fine-tuning and the probes (lib/eval/probe.ts) share it:
 * the classifier initialised as configured (seeded; a pre-training run's backbones copied in), the band statistics
 * (and the samples they left out), the labelled training subset, the validation and test loaders; and the
 * classifier's report on a loader's samples.
 */
import { applyRuntimeOptions, type FinetuneConfig } from '../config/index.js';
import { bandCounts, type Dataset, type SampleRecord, type SkippedSample, type Split } from '../data/dataset.js';
import { type Batch, DataLoader, type DataLoaderOptions, firstViews } from '../data/loader.js';
import { openPath } from '../data/open.js';
import { Random } from '../data/random.js';
import { loadOrComputeBandStats, type NormalizationStats } from '../data/stats.js';
import { FileError, invalidArg } from '../errors.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { FusionClassifier } from '../nn/models/multimodal.js';
import { readPretrainConfig } from '../runs/config.js';
import {
  architecture,
  classNamesOf,
  classOf,
  initBackbones,
  pretrainModel,
  pretrainRunAt,
  withDeclaredStats,
} from '../runs/models.js';
import type { BackboneWeightsReport } from '../io/backbone_weights.js';
import type { ClassificationReport } from '../runs/records.js';
import { checkPrecision, withPrecision } from '../torch/amp.js';
import { noGrad } from '../torch/autograd.js';
import { checkAvailable, type Device } from '../torch/device.js';
import { manualSeed } from '../torch/runtime.js';
import { tidy } from '../torch/scope.js';
import { classificationReport, confusionMatrix } from './metrics.js';

/** The training samples: labelled ones of the train split, `fraction` of each class drawn with the seed (at least one). */
export function trainingSubset(
  dataset: Dataset,
  fraction: number,
  seed: number,
  includeNegative: boolean,
): Set<number> {
  const byClass = new Map<number, number[]>();
  dataset.samples.forEach((s, i) => {
    const c = classOf(s, includeNegative);
    if (s.split === 'train' && c >= 0) byClass.set(c, [...(byClass.get(c) ?? []), i]);
  });
  const random = new Random(seed).fork(7);
  return new Set(
    [...byClass]
      .sort(([a], [b]) => a - b)
      .flatMap(([c, indices]) => {
        const kept = Math.max(1, Math.round(fraction * indices.length));
        return fraction === 1
          ? indices
          : random
              .fork(c)
              .shuffle([...indices])
              .slice(0, kept);
      }),
  );
}

/** Targets of a batch: the class of each sample, -1 where it is left out. */
export function batchTargets(batch: Batch, includeNegative: boolean): number[] {
  const { labels, negative } = batch.host;
  return labels.map((label, i) => classOf({ label, negative: negative[i] }, includeNegative));
}

/** The pre-training run's normalisation, its backbones copied into `model`. */
async function initialise(model: FusionClassifier, init: string, dataset: Dataset): Promise<NormalizationStats> {
  const folder = pretrainRunAt(init);
  const run = readPretrainConfig(folder);
  const absent = [...model.backbones.keys()].filter((m) => !run.modalities.includes(m));
  if (absent.length > 0)
    throw new FileError(init, `the run pre-trained ${run.modalities.join(', ')}, not ${absent.join(', ')}`);
  using pretrained = pretrainModel(run, dataset);
  const { extra } = await loadCheckpoint(folder.path('checkpoint'), { model: pretrained });
  for (const [m, backbone] of model.backbones) {
    const source = pretrained.encoder(m).backbone;
    if (source.constructor !== backbone.constructor)
      throw new FileError(
        init,
        `${m}'s backbone is a ${source.constructor.name} in the run, a ${backbone.constructor.name} here`,
      );
    backbone.loadStateDict(source.stateDict());
  }
  return (extra as { normalization: NormalizationStats }).normalization;
}

/** What `prepareDownstream` sets up; the caller owns (disposes) the model and the loaders. */
export interface Downstream {
  dataset: Dataset;
  classNames: string[];
  model: FusionClassifier;
  normalization: NormalizationStats;
  /** Samples the band statistics left out (onBadSample 'skip'). */
  statsSkipped: SkippedSample[];
  /** What `backboneInit` loaded, by modality. */
  initialised: Record<string, BackboneWeightsReport>;
  /** Dataset indices of the labelled training samples used. */
  subset: Set<number>;
  loaderOptions: DataLoaderOptions & { device: Device };
  val: DataLoader;
  test: DataLoader;
}

/** The downstream task `config` describes; see the file's comment. */
export async function prepareDownstream(config: FinetuneConfig): Promise<Downstream> {
  const device = checkAvailable('finetune', config.device);
  checkPrecision('finetune', config.precision, device);
  const dataset = await openPath(config.data);
  const channels = bandCounts('finetune', config.modalities, dataset);
  applyRuntimeOptions(config);
  const classNames = classNamesOf(config);
  manualSeed(config.seed);
  const model = new FusionClassifier({ modalities: channels, numClasses: classNames.length, ...architecture(config) });
  try {
    if (config.init !== null && Object.keys(config.backboneInit).length > 0)
      throw invalidArg(
        'finetune',
        'backboneInit',
        'none with init (the backbones come from the run)',
        config.backboneInit,
      );
    const fromRun = config.init === null ? {} : await initialise(model, config.init, dataset);
    const initialised = await initBackbones(config, dataset, (m) => model.backbones.get(m)!);
    const missing = config.modalities.filter((m) => !(m in fromRun));
    const statsSkipped: SkippedSample[] = [];
    const computed =
      missing.length === 0
        ? {}
        : await loadOrComputeBandStats(dataset, {
            modalities: missing,
            maxSamples: config.statsSamples,
            seed: config.seed,
            workers: config.workers,
            onBadSample: config.onBadSample,
            onSkip: (s) => statsSkipped.push(s),
          });
    const normalization = withDeclaredStats(config, dataset, { ...fromRun, ...computed });
    manualSeed(config.seed); // the classifier's and dropout's randomness do not depend on whether a run was loaded
    model.to({ device, memoryFormat: config.memoryFormat });
    const subset = trainingSubset(dataset, config.labelFraction, config.seed, config.includeNegative);
    if (subset.size === 0) throw invalidArg('finetune', 'data', 'a training split with labelled samples', config.data);
    const loaderOptions = {
      modalities: config.modalities.map((name) => ({ name, size: config.sizes[name] })),
      batchSize: config.batchSize,
      normalization,
      seed: config.seed,
      workers: config.workers,
      device,
      onBadSample: config.onBadSample,
    };
    const labelled = (split: Split) => (s: SampleRecord) =>
      s.split === split && classOf(s, config.includeNegative) >= 0;
    const evaluation = (split: Split) =>
      new DataLoader(dataset, { ...loaderOptions, splits: [split], filter: labelled(split), shuffle: false });
    return {
      dataset,
      classNames,
      model,
      normalization,
      statsSkipped,
      initialised,
      subset,
      loaderOptions,
      val: evaluation('val'),
      test: evaluation('test'),
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** The classifier's predictions on every labelled sample `loader` yields: the classification report. */
export async function evaluateClassifier(
  model: FusionClassifier,
  loader: DataLoader,
  config: FinetuneConfig,
  classNames: string[],
): Promise<ClassificationReport> {
  const targets: number[] = [],
    predictions: number[] = [];
  model.eval();
  for await (const batch of loader.epoch(0)) {
    using b = batch;
    const t = batchTargets(b, config.includeNegative);
    const predicted = tidy(() =>
      noGrad(() =>
        withPrecision(config.precision, config.device, () =>
          model.forward(firstViews(b, config.modalities, config.memoryFormat)),
        )
          .argmax(1)
          .toNumbers(),
      ),
    );
    t.forEach((c, i) => {
      if (c >= 0) [targets[targets.length], predictions[predictions.length]] = [c, predicted[i]];
    });
  }
  return classificationReport(confusionMatrix(targets, predictions, classNames.length), classNames);
}
