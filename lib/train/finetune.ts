/**
 * Fine-tuning and evaluation: the chosen modalities' backbones (from a pre-training run, or randomly initialised for
 * the baseline), their features concatenated, a linear classifier over METER-ML's six classes; full fine-tuning, or
 * a linear probe on frozen backbones; optionally a seeded, per-class fraction of the training labels. Negatives are
 * left out of the loss and the metrics unless `includeNegative` makes them a seventh class.
 *
 * The run folder gets config.json, metrics.jsonl (one line per epoch), model.safetensors (the fine-tuned model, its
 * configuration, class names and normalisation in the metadata) and report.json (validation and test reports).
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { FileError, invalidArg } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { crossEntropy } from '../nn/functional.js';
import { FusionClassifier } from '../nn/models/multimodal.js';
import { noGrad } from '../torch/autograd.js';
import { cat, tensor } from '../torch/creation.js';
import { knnPredict } from '../eval/knn.js';
import { checkAvailable } from '../torch/device.js';
import { tidy } from '../torch/scope.js';
import { manualSeed, setNumThreads } from '../torch/runtime.js';
import { CLASSES, type Dataset, NEGATIVE, type SampleRecord, type SkippedSample, type Split } from '../data/dataset.js';
import { type Batch, collectRows, DataLoader, firstViews } from '../data/loader.js';
import { openPath } from '../data/open.js';
import { Random } from '../data/random.js';
import { loadOrComputeBandStats, type NormalizationStats } from '../data/stats.js';
import { loadCheckpoint, saveWeights } from './checkpoint.js';
import { buildOptimizer, buildScheduler, type FinetuneConfig, type PretrainConfig, resolvePretrainConfig } from './config.js';
import { ENVIRONMENT_FILE, writeEnvironment } from './environment.js';
import { type ClassificationReport, classificationReport, confusionMatrix } from './metrics.js';
import { buildModel, checkModalities, inputSizes, RUN_FILES, startRunFolder } from './pretrain.js';
import { SKIPPED_FILE, SkipLog, type SkipRecord } from './skipped.js';

export interface FinetuneEpochMetrics {
  epoch: number;
  loss: number;
  lr: number;
  locationsPerSecond: number;
  valAccuracy: number;
  valMacroF1: number;
  /** Samples left out in this epoch (onBadSample 'skip': training, validation; band statistics in the first). */
  skipped: SkipRecord[];
}

export interface FinetuneOptions {
  config: FinetuneConfig;
  out: string;
  /** Stops after the current epoch; the model and reports are written as they stand. */
  signal?: AbortSignal;
  onEpoch?: (metrics: FinetuneEpochMetrics) => void;
}

export interface FinetuneResult {
  classNames: string[];
  val: ClassificationReport;
  test: ClassificationReport;
  /** Labelled training samples used. */
  trainSamples: number;
  epochs: number;
  /** Distinct samples left out (onBadSample 'skip') in any phase; listed in skipped.jsonl. */
  skipped: number;
}

export const FINETUNE_FILES = { config: 'config.json', model: 'model.safetensors', metrics: 'metrics.jsonl', report: 'report.json', skipped: SKIPPED_FILE } as const;

/** The classifier's classes: METER-ML's six, and Negative when it is a class. */
export function classNamesOf(config: Pick<FinetuneConfig, 'includeNegative'>): string[] {
  return config.includeNegative ? [...CLASSES, NEGATIVE] : [...CLASSES];
}

/** The class of a sample for fine-tuning, or -1 when it is left out. */
export function classOf(sample: Pick<SampleRecord, 'label' | 'negative'>, includeNegative: boolean): number {
  return sample.label >= 0 ? sample.label : includeNegative && sample.negative ? CLASSES.length : -1;
}

/** The training samples: labelled ones of the train split, `fraction` of each class drawn with the seed (at least one). */
export function trainingSubset(dataset: Dataset, fraction: number, seed: number, includeNegative: boolean): Set<number> {
  const byClass = new Map<number, number[]>();
  dataset.samples.forEach((s, i) => {
    const c = classOf(s, includeNegative);
    if (s.split === 'train' && c >= 0) byClass.set(c, [...(byClass.get(c) ?? []), i]);
  });
  const random = new Random(seed).fork(7);
  return new Set([...byClass].sort(([a], [b]) => a - b).flatMap(([c, indices]) => {
    const kept = Math.max(1, Math.round(fraction * indices.length));
    return fraction === 1 ? indices : random.fork(c).shuffle([...indices]).slice(0, kept);
  }));
}

/** The pre-training run's configuration and normalisation, its backbones copied into `model`. */
async function initialise(model: FusionClassifier, init: string, dataset: Dataset): Promise<NormalizationStats> {
  const configPath = join(init, RUN_FILES.config), checkpoint = join(init, RUN_FILES.checkpoint);
  if (!existsSync(checkpoint)) throw new FileError(checkpoint, 'missing: --init must be a pre-training run folder (mmssl pretrain --out)');
  const run = resolvePretrainConfig(JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>);
  const absent = [...model.backbones.keys()].filter((m) => !run.modalities.includes(m));
  if (absent.length > 0) throw new FileError(init, `the run pre-trained ${run.modalities.join(', ')}, not ${absent.join(', ')}`);
  using pretrained = buildModel(run, dataset);
  const { extra } = await loadCheckpoint(checkpoint, { model: pretrained });
  for (const [m, backbone] of model.backbones) {
    const source = pretrained.encoder(m).backbone;
    if (source.constructor !== backbone.constructor) throw new FileError(init, `${m}'s backbone is a ${source.constructor.name} in the run, a ${backbone.constructor.name} here`);
    backbone.loadStateDict(source.stateDict());
  }
  return (extra as { normalization: NormalizationStats }).normalization;
}

/**
 * Saves a fine-tuned model as `out`/model.safetensors with what inference needs to use it alone: its architecture,
 * configuration, classes and the band statistics its inputs were standardised with.
 */
export async function saveFinetuned(model: FusionClassifier, out: string, config: FinetuneConfig, normalization: NormalizationStats, sizes: Record<string, [number, number]>): Promise<void> {
  await saveWeights(model, join(out, FINETUNE_FILES.model), {
    metadata: {
      architecture: 'FusionClassifier', ...architecture(config), config: JSON.stringify(config), classNames: classNamesOf(config),
      normalizationPerModality: JSON.stringify(normalization), inputSizes: JSON.stringify(sizes),
    },
  });
}

/**
 * The model's architecture: the backbones of the run fine-tuning starts from, if any (they must be the same), and
 * the missing token (learned only when trained with modality dropout).
 */
export function architecture(config: FinetuneConfig): Pick<FinetuneConfig, 'backbones' | 'alexnetHidden' | 'missingToken'> {
  const missingToken = config.modalityDropout > 0 ? config.missingToken : 'zero';
  if (config.init === null) return { backbones: config.backbones, alexnetHidden: config.alexnetHidden, missingToken };
  const path = join(config.init, RUN_FILES.config);
  if (!existsSync(path)) throw new FileError(path, 'missing: --init must be a pre-training run folder (mmssl pretrain --out)');
  const run = JSON.parse(readFileSync(path, 'utf8')) as PretrainConfig;
  return { backbones: run.backbones, alexnetHidden: run.alexnetHidden, missingToken };
}

/**
 * Which modalities of each of `n` samples modality dropout replaces (row i, column j: sample i, modality j): each
 * with probability `p`, and where that would drop all of a sample's, all but one drawn uniformly.
 */
export function dropMask(random: Random, n: number, modalities: number, p: number): boolean[][] {
  return Array.from({ length: n }, () => {
    const row = Array.from({ length: modalities }, () => random.bernoulli(p));
    if (row.every(Boolean)) row[random.int(modalities)] = false;
    return row;
  });
}

/** Targets of a batch (class per sample, -1 left out) and which rows count. */
function batchTargets(batch: Batch, includeNegative: boolean): number[] {
  const labels = Array.from(batch.labels.toTypedArray() as ArrayLike<number | bigint>, Number);
  const negative = Array.from(batch.negative.toTypedArray() as ArrayLike<number | boolean>, Boolean);
  return labels.map((label, i) => classOf({ label, negative: negative[i] }, includeNegative));
}


/**
 * The k-NN probe (`mmssl table1 --protocol knn`): no training; the backbones' fused features, frozen as
 * initialised, of the labelled training subset vote (weighted k-NN, lib/eval/knn.ts) for each validation and test
 * sample. Representation quality without the confound of fine-tuning.
 */
export async function knnProbe(config: FinetuneConfig, options: { k?: number; temperature?: number; skipLog?: SkipLog } = {}): Promise<FinetuneResult> {
  const { skipLog: skips = new SkipLog(undefined), ...knn } = options;
  const prepared = await prepare(config);
  skips.add('stats', prepared.statsSkipped);
  const { dataset, classNames, subset, loaderOptions } = prepared;
  using model = prepared.model.eval();
  await using val = prepared.val;
  await using test = prepared.test;
  await using train = new DataLoader(dataset, { ...loaderOptions, filter: (_, i) => subset.has(i), shuffle: false });
  const embed = async (loader: DataLoader, split: 'train' | 'val' | 'test') => {
    const rows = await collectRows(loader, (b) => {
      const inputs = firstViews(b, config.modalities, config.memoryFormat);
      return [cat([...model.backbones].map(([m, backbone]) => backbone.features(inputs[m])), 1)];
    });
    skips.add(split, loader.skipped);
    if (rows.columns.length === 0) throw invalidArg('knnProbe', 'data', `labelled samples in the ${split} split`, config.data);
    return { ...rows, targets: rows.labels.map((label, i) => classOf({ label, negative: rows.negative[i] }, config.includeNegative)) };
  };
  using gallery = await embed(train, 'train');
  const report = async (loader: DataLoader, split: 'val' | 'test') => {
    using queries = await embed(loader, split);
    const predictions = knnPredict(gallery.columns[0], gallery.targets, queries.columns[0], { numClasses: classNames.length, ...knn });
    return classificationReport(confusionMatrix(queries.targets, predictions, classNames.length), classNames);
  };
  return { classNames, val: await report(val, 'val'), test: await report(test, 'test'), trainSamples: subset.size, epochs: 0, skipped: skips.count };
}

/** Predictions on every labelled sample of `split`: the classification report. */
export async function evaluate(model: FusionClassifier, loader: DataLoader, config: FinetuneConfig, classNames: string[]): Promise<ClassificationReport> {
  const targets: number[] = [], predictions: number[] = [];
  model.eval();
  for await (const batch of loader.epoch(0)) {
    using b = batch;
    const t = batchTargets(b, config.includeNegative);
    const predicted = tidy(() => noGrad(() => Array.from(model.forward(firstViews(b, config.modalities, config.memoryFormat)).argmax(1).toTypedArray() as ArrayLike<number | bigint>, Number)));
    t.forEach((c, i) => { if (c >= 0) [targets[targets.length], predictions[predictions.length]] = [c, predicted[i]]; });
  }
  return classificationReport(confusionMatrix(targets, predictions, classNames.length), classNames);
}

/**
 * What fine-tuning and the k-NN probe share: the model initialised as configured (seeded; a run's backbones copied
 * in), the band statistics (and the samples they left out), the labelled training subset and the validation and
 * test loaders.
 */
async function prepare(config: FinetuneConfig) {
  const device = checkAvailable('finetune', config.device);
  const dataset = await openPath(config.data);
  const channels = checkModalities(config.modalities, dataset);
  if (config.threads !== null) setNumThreads(config.threads);
  const classNames = classNamesOf(config);
  manualSeed(config.seed);
  const model = new FusionClassifier({ modalities: channels, numClasses: classNames.length, ...architecture(config) });
  try {
    const fromRun = config.init === null ? {} : await initialise(model, config.init, dataset);
    const missing = config.modalities.filter((m) => !(m in fromRun));
    const statsSkipped: SkippedSample[] = [];
    const computed = missing.length === 0 ? {} : await loadOrComputeBandStats(dataset, {
      modalities: missing, maxSamples: config.statsSamples, seed: config.seed, workers: config.workers, onBadSample: config.onBadSample, onSkip: (s) => statsSkipped.push(s),
    });
    const normalization: NormalizationStats = { ...fromRun, ...computed };
    manualSeed(config.seed);   // the classifier's and dropout's randomness do not depend on whether a run was loaded
    model.to({ device, memoryFormat: config.memoryFormat });
    const subset = trainingSubset(dataset, config.labelFraction, config.seed, config.includeNegative);
    if (subset.size === 0) throw invalidArg('finetune', 'data', 'a training split with labelled samples', config.data);
    const loaderOptions = {
      modalities: config.modalities.map((name) => ({ name, size: config.sizes[name] })), batchSize: config.batchSize, normalization,
      seed: config.seed, workers: config.workers, device, onBadSample: config.onBadSample,
    };
    const labelled = (split: Split) => (s: SampleRecord) => s.split === split && classOf(s, config.includeNegative) >= 0;
    const evaluation = (split: Split) => new DataLoader(dataset, { ...loaderOptions, splits: [split], filter: labelled(split), shuffle: false });
    return { dataset, classNames, model, normalization, statsSkipped, subset, loaderOptions, val: evaluation('val'), test: evaluation('test') };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Fine-tunes as configured and evaluates on the official validation and test splits; see the file's comment. */
export async function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const { config, out, signal, onEpoch } = options;
  if (existsSync(join(out, FINETUNE_FILES.model))) throw new FileError(out, 'holds a fine-tuned model already: choose another folder');
  const prepared = await prepare(config);
  const { dataset, classNames, normalization, subset, loaderOptions, statsSkipped } = prepared;
  using model = prepared.model;
  await using val = prepared.val;
  await using test = prepared.test;
  // BatchNorm needs two samples a batch: the last, smaller batch is dropped when there is more than one.
  await using train = new DataLoader(dataset, { ...loaderOptions, filter: (_, i) => subset.has(i), augmentation: config.augment, views: 1, dropLast: subset.size > config.batchSize });
  const backboneParameters = new Set([...model.backbones.values()].flatMap((b) => b.parameters()));
  if (config.linearProbe) backboneParameters.forEach((p) => p.requiresGrad_(false));
  const probed = [...model.classifier.parameters(), ...(model.missing?.parameters() ?? [])];
  using optimizer = buildOptimizer(config.linearProbe ? probed : model.parameters(), config.optimizer);
  const scheduler = buildScheduler(optimizer, config.schedule, train.batches(0).length, config.epochs);
  await startRunFolder(out, [...Object.values(FINETUNE_FILES), ENVIRONMENT_FILE]);
  await writeJsonAtomic(join(out, FINETUNE_FILES.config), config);
  await writeEnvironment(out, config.device);
  const skips = new SkipLog(join(out, FINETUNE_FILES.skipped));
  let pendingSkips = skips.add('stats', statsSkipped);
  /** The report on a split, its loader's new skips logged and kept for the epoch's summary. */
  const report = async (loader: DataLoader, split: 'val' | 'test', into: SkipRecord[]) => {
    const before = loader.skipped.length;
    const result = await evaluate(model, loader, config, classNames);
    into.push(...skips.add(split, loader.skipped.slice(before)));
    return result;
  };
  const dropRandom = new Random(config.seed).fork(13);
  let epoch = 0;
  for (; epoch < config.epochs && !signal?.aborted; epoch++) {
    const started = performance.now(), lr = optimizer.paramGroups[0].lr, skippedBefore = train.skipped.length;
    let lossSum = 0, seen = 0;
    model.train();
    if (config.linearProbe) model.backbones.forEach((b) => b.eval());   // frozen: running statistics and no dropout
    for await (const batch of train.epoch(epoch)) {
      using b = batch;
      const targets = batchTargets(b, config.includeNegative);
      lossSum += tidy(() => {
        optimizer.zeroGrad();
        const dropped = config.modalityDropout > 0 ? tensor(dropMask(dropRandom.fork(epoch).fork(b.index), targets.length, config.modalities.length, config.modalityDropout), { device: loaderOptions.device }) : null;
        const loss = crossEntropy(model.forward(firstViews(b, config.modalities, config.memoryFormat), { dropped }), tensor(targets, { dtype: 'int64', device: loaderOptions.device }), { ignoreIndex: -1 });
        loss.backward();
        optimizer.step();
        return (loss.item() as number) * targets.length;
      });
      seen += targets.length;
      scheduler.step();
    }
    const trained = train.skipped.slice(skippedBefore);
    skips.add('train', trained);
    const skipped = [...pendingSkips, ...trained.map((s) => ({ phase: 'train' as const, ...s }))];
    pendingSkips = [];
    const valReport = await report(val, 'val', skipped);
    const metrics: FinetuneEpochMetrics = {
      epoch, loss: lossSum / seen, lr, locationsPerSecond: seen / ((performance.now() - started) / 1000), valAccuracy: valReport.accuracy, valMacroF1: valReport.macroF1, skipped,
    };
    appendFileSync(join(out, FINETUNE_FILES.metrics), `${JSON.stringify({ ...metrics, skipped: skipped.length })}\n`);
    onEpoch?.(metrics);
  }
  const final: SkipRecord[] = [];
  const result: FinetuneResult = {
    classNames, val: await report(val, 'val', final), test: await report(test, 'test', final), trainSamples: subset.size, epochs: epoch, skipped: skips.count,
  };
  await saveFinetuned(model, out, config, normalization, inputSizes(config, dataset));
  await writeJsonAtomic(join(out, FINETUNE_FILES.report), result);
  return result;
}
