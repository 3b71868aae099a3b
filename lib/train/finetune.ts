/**
 * Fine-tuning: the chosen modalities' backbones (from a pre-training run, or randomly initialised for the baseline),
 * their features concatenated, a linear classifier over METER-ML's six classes (lib/eval/downstream.ts sets the task
 * up); full fine-tuning, or a linear probe on frozen backbones; optionally a seeded, per-class fraction of the
 * training labels and modality dropout. Negatives are left out of the loss and the metrics unless `includeNegative`
 * makes them a seventh class.
 *
 * The run folder (lib/runs/folder.ts) gets config.json, metrics.jsonl (one line per epoch), model.safetensors (the
 * fine-tuned model, its configuration, class names and normalisation in the metadata) and report.json (validation
 * and test reports).
 */
import type { FinetuneConfig } from '../config/index.js';
import { DataLoader, firstViews, shuffleOf } from '../data/loader.js';
import { Random } from '../data/random.js';
import { FileError, NonFiniteError } from '../errors.js';
import { batchTargets, evaluateClassifier, prepareDownstream } from '../eval/downstream.js';
import { crossEntropy } from '../nn/functional.js';
import { writeEnvironment } from '../runs/environment.js';
import { RunFolder } from '../runs/folder.js';
import { saveFinetuned } from '../runs/load.js';
import { inputSizes } from '../runs/models.js';
import type { FinetuneEpochRecord, FinetuneResult } from '../runs/records.js';
import { SkipLog, type SkipRecord } from '../runs/skipped.js';
import { stack, tensor } from '../torch/creation.js';
import { tidy } from '../torch/scope.js';
import { GradScaler, withPrecision } from '../torch/amp.js';
import { syncFree, withSyncDebugMode } from '../torch/sync.js';
import type { Tensor } from '../torch/tensor.js';
import { backwardAndStep, buildOptimizer, buildScheduler } from './optimizers.js';
import type { BackboneWeightsReport } from '../io/backbone_weights.js';

/** A fine-tuning epoch, as `onEpoch` is told it: the metrics.jsonl line, with the skipped samples themselves. */
export interface FinetuneEpochMetrics extends Omit<FinetuneEpochRecord, 'skipped'> {
  /** Samples left out in this epoch (onBadSample 'skip': training, validation; band statistics in the first). */
  skipped: SkipRecord[];
}

export interface FinetuneOptions {
  config: FinetuneConfig;
  out: string;
  /** Stops after the current epoch; the model and reports are written as they stand. */
  signal?: AbortSignal;
  onEpoch?: (metrics: FinetuneEpochMetrics) => void;
  /** Told what `backboneInit` loaded into each backbone (the CLI prints its table). */
  onBackboneInit?: (modality: string, report: BackboneWeightsReport) => void;
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

/** The mean of an epoch's losses (their per-batch sums on the device, read once); a NonFiniteError if it is not finite. */
function epochLoss(sums: Tensor[], seen: number, epoch: number): number {
  const total = tidy(() => (sums.length === 0 ? 0 : (stack(sums).to({ dtype: 'float64' }).sum().item() as number)));
  sums.forEach((t) => t.dispose());
  const loss = total / seen;
  if (!Number.isFinite(loss) && seen > 0)
    throw new NonFiniteError(
      `fine-tuning epoch ${epoch + 1}: the mean loss is ${loss}: the run diverged or its inputs are not finite; lower the learning rate or check the data`,
      { epoch },
    );
  return loss;
}

/** Fine-tunes as configured and evaluates on the official validation and test splits; see the file's comment. */
export function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  return withSyncDebugMode(options.config?.syncDebug, () => run(options));
}

async function run(options: FinetuneOptions): Promise<FinetuneResult> {
  const { config, out, signal, onEpoch } = options;
  const folder = new RunFolder(out);
  if (folder.has('model')) throw new FileError(out, 'holds a fine-tuned model already: choose another folder');
  const prepared = await prepareDownstream(config);
  const { dataset, classNames, normalization, subset, loaderOptions, statsSkipped } = prepared;
  using model = prepared.model;
  await using val = prepared.val;
  await using test = prepared.test;
  // BatchNorm needs two samples a batch: the last, smaller batch is dropped when there is more than one.
  await using train = new DataLoader(dataset, {
    ...loaderOptions,
    filter: (_, i) => subset.has(i),
    shuffle: shuffleOf(config),
    augmentation: config.augment,
    views: 1,
    dropLast: subset.size > config.batchSize,
  });
  const backboneParameters = new Set([...model.backbones.values()].flatMap((b) => b.parameters()));
  if (config.linearProbe) backboneParameters.forEach((p) => p.requiresGrad_(false));
  const probed = [...model.classifier.parameters(), ...(model.missing?.parameters() ?? [])];
  using optimizer = buildOptimizer(config.linearProbe ? probed : model.parameters(), config.optimizer);
  const scheduler = buildScheduler(optimizer, config.schedule, train.batches(0).length, config.epochs);
  using scaler = config.precision === '16-mixed' ? new GradScaler(loaderOptions.device) : undefined;
  await folder.start();
  await folder.writeJson('config', config);
  await writeEnvironment(folder, config.device);
  if (Object.keys(prepared.initialised).length > 0) await folder.writeJson('backboneInit', prepared.initialised);
  Object.entries(prepared.initialised).forEach(([m, r]) => options.onBackboneInit?.(m, r));
  const skips = new SkipLog(folder.path('skipped'));
  let pendingSkips = skips.add('stats', statsSkipped);
  /** The report on a split, its loader's new skips logged and kept for the epoch's summary. */
  const report = async (loader: DataLoader, split: 'val' | 'test', into: SkipRecord[]) => {
    const before = loader.skipped.length;
    const result = await evaluateClassifier(model, loader, config, classNames);
    into.push(...skips.add(split, loader.skipped.slice(before)));
    return result;
  };
  const dropRandom = new Random(config.seed).fork(13);
  let epoch = 0;
  for (; epoch < config.epochs && !signal?.aborted; epoch++) {
    const started = performance.now(),
      lr = optimizer.paramGroups[0].lr,
      skippedBefore = train.skipped.length;
    const lossSums: Tensor[] = []; // each batch's summed loss, on the device until the epoch ends
    let seen = 0;
    model.train();
    if (config.linearProbe) model.backbones.forEach((b) => b.eval()); // frozen: running statistics and no dropout
    for await (const batch of train.epoch(epoch)) {
      using b = batch;
      const targets = batchTargets(b, config.includeNegative);
      const step = syncFree('the fine-tuning step', () =>
        tidy(() => {
          optimizer.zeroGrad();
          const dropped =
            config.modalityDropout > 0
              ? tensor(
                  dropMask(
                    dropRandom.fork(epoch).fork(b.index),
                    targets.length,
                    config.modalities.length,
                    config.modalityDropout,
                  ),
                  { device: loaderOptions.device },
                )
              : null;
          const logits = withPrecision(config.precision, loaderOptions.device, () =>
            model.forward(firstViews(b, config.modalities, config.memoryFormat), { dropped }),
          );
          const loss = crossEntropy(
            logits.to({ dtype: 'float32' }),
            tensor(targets, { dtype: 'int64', device: loaderOptions.device }),
            { ignoreIndex: -1 },
          );
          const finish = backwardAndStep(loss, optimizer, scaler);
          return { lossSum: loss.detach().mul(targets.length), finish };
        }),
      );
      step.finish();
      lossSums.push(step.lossSum);
      seen += targets.length;
      scheduler.step();
    }
    const trained = train.skipped.slice(skippedBefore);
    skips.add('train', trained);
    const skipped = [...pendingSkips, ...trained.map((s) => ({ phase: 'train' as const, ...s }))];
    pendingSkips = [];
    const valReport = await report(val, 'val', skipped);
    const loss = epochLoss(lossSums, seen, epoch);
    const metrics: FinetuneEpochMetrics = {
      epoch,
      loss,
      lr,
      locationsPerSecond: seen / ((performance.now() - started) / 1000),
      valAccuracy: valReport.accuracy,
      valMacroF1: valReport.macroF1,
      skipped,
    };
    folder.appendLines('metrics', [{ ...metrics, skipped: skipped.length } satisfies FinetuneEpochRecord]);
    onEpoch?.(metrics);
  }
  const final: SkipRecord[] = [];
  const result: FinetuneResult = {
    classNames,
    val: await report(val, 'val', final),
    test: await report(test, 'test', final),
    trainSamples: subset.size,
    epochs: epoch,
    skipped: skips.count,
  };
  await saveFinetuned(model, folder, config, normalization, inputSizes(config, dataset));
  await folder.writeJson('report', result);
  return result;
}
