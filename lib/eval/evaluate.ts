/**
 * `mmssl evaluate`: what a run has learned, beyond fine-tuned accuracy.
 *
 * A pre-training run: cross-modal retrieval on a split. Every location's embedding of one modality (the projection
 * space InfoNCE compared, un-augmented inputs) queries every location's embedding of another, for every ordered pair
 * (S1 -> S2, S2 -> S1, ...), and each modality's first augmented view queries its second (flips and a resized crop,
 * as in pre-training): recall@1/5/10 and the median rank (lib/eval/retrieval.ts). The same for the same architecture
 * at random initialisation (seeded, eval mode), so that the gain from pre-training is visible.
 *
 * A fine-tuned run: accuracy on the split's labelled samples for every non-empty subset of its modalities, absent
 * ones replaced by the missing token (learned with `modalityDropout`, else zeros): how the model degrades when, say,
 * NAIP is missing.
 */
import { checkOneOf, checkOptions } from '../errors.js';
import { retrieval, type RetrievalResult } from './retrieval.js';
import { MultiModalModel } from '../nn/models/multimodal.js';
import { noGrad } from '../torch/autograd.js';
import { atPrecision, type Precision } from '../torch/amp.js';
import type { Device } from '../torch/device.js';
import { manualSeed } from '../torch/runtime.js';
import { tidy } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
import {
  BAD_SAMPLE_POLICIES,
  type BadSamplePolicy,
  bandCounts,
  CLASSES,
  type Dataset,
  type SkippedSample,
  type Split,
} from '../data/dataset.js';
import { collectRows, DataLoader, type DataLoaderOptions } from '../data/loader.js';
import { openPath } from '../data/open.js';
import type { ClassificationReport } from '../runs/records.js';
import { classificationReport, confusionMatrix } from './metrics.js';
import { type LoadedRun, loadRun } from '../runs/load.js';
import { classOf } from '../runs/models.js';
import { describeSkipped } from '../runs/skipped.js';

export interface EvaluateOptions {
  /** A pre-training run folder or a fine-tuning output folder. */
  init: string;
  data: string;
  split?: Split;
  batchSize?: number;
  device?: Device;
  /** Inference at this precision (default '32'; see lib/torch/amp.ts). */
  precision?: Precision;
  workers?: number;
  /** Seeds the augmented views and the random initialisation (default 0). */
  seed?: number;
  /** A sample that cannot be read: 'raise' (default) stops with its error; 'skip' leaves it out (listed in `skipped`). */
  onBadSample?: BadSamplePolicy;
  onProgress?: (what: string) => void;
}

/** Retrieval of one initialisation: per ordered pair 's1->s2', and per modality between its two augmented views. */
export interface RetrievalTable {
  crossModal: Record<string, RetrievalResult>;
  views: Record<string, RetrievalResult>;
}

export interface SubsetAccuracy {
  modalities: string[];
  accuracy: number;
  macroF1: number;
  report: ClassificationReport;
}

export interface Evaluation {
  init: string;
  kind: 'pretrain' | 'finetune';
  split: Split;
  locations: number;
  retrieval?: { pretrained: RetrievalTable; random: RetrievalTable };
  subsets?: SubsetAccuracy[];
  /** The samples left out (onBadSample 'skip'), once each. */
  skipped: SkippedSample[];
}

/** Evaluates the run in `init` on a split of `data`; see the file's comment. */
export async function evaluateRun(options: EvaluateOptions): Promise<Evaluation> {
  const {
    init,
    data,
    split = 'val',
    batchSize = 64,
    device = 'cpu',
    precision = '32',
    workers = 2,
    seed = 0,
    onBadSample = 'raise',
    onProgress,
  } = checkOptions('evaluateRun', options);
  checkOneOf('evaluateRun', 'split', split, ['train', 'val', 'test']);
  checkOneOf('evaluateRun', 'onBadSample', onBadSample, BAD_SAMPLE_POLICIES);
  const skipped = new Map<string, SkippedSample>();
  const noteSkipped = (samples: readonly SkippedSample[]) =>
    samples.forEach(({ id, file, message }) => skipped.has(id) || skipped.set(id, { id, file, message }));
  const dataset = await openPath(data);
  const run = await loadRun(init, { device, precision });
  try {
    bandCounts('evaluateRun', run.modalities, dataset);
    const loaderOptions = (extra: Partial<DataLoaderOptions>): DataLoaderOptions => ({
      modalities: run.modalities.map((name) => ({ name, size: run.sizes[name] })),
      batchSize,
      splits: [split],
      shuffle: false,
      normalization: run.normalization,
      workers,
      device,
      seed,
      onBadSample,
      ...extra,
    });
    if (run.kind === 'pretrain') {
      onProgress?.('pre-trained');
      const pretrained = await retrievalTable(run, dataset, loaderOptions, (m, x) => run.project!(m, x), noteSkipped);
      onProgress?.('random initialisation');
      manualSeed(seed);
      using random = new MultiModalModel({
        modalities: run.channels,
        backbones: run.backbones,
        ...run.heads!,
        alexnetHidden: run.alexnetHidden,
      })
        .eval()
        .to({ device, memoryFormat: run.memoryFormat });
      const randomTable = await retrievalTable(
        run,
        dataset,
        loaderOptions,
        atPrecision(precision, device, (m: string, x: Tensor) => random.forward(m, x)),
        noteSkipped,
      );
      return {
        init,
        kind: 'pretrain',
        split,
        locations: pretrained.locations,
        retrieval: { pretrained: pretrained.table, random: randomTable.table },
        skipped: [...skipped.values()],
      };
    }
    onProgress?.('modality subsets');
    const classNames = run.classNames!;
    const includeNegative = classNames.length > CLASSES.length; // Negative: a class when trained as one
    using rows = await collect(
      dataset,
      loaderOptions({ filter: (s) => classOf(s, includeNegative) >= 0 }),
      run,
      (m, x) => run.features(m, x),
      noteSkipped,
    );
    const targets = rows.labels.map((label, i) => classOf({ label, negative: rows.negative[i] }, includeNegative));
    const subsets = nonEmptySubsets(run.modalities).map((modalities) => {
      const predictions = tidy(() =>
        noGrad(() =>
          run.fuse!(Object.fromEntries(modalities.map((m) => [m, rows.features[m][0]])))
            .argmax(1)
            .toNumbers(),
        ),
      );
      const report = classificationReport(confusionMatrix(targets, predictions, classNames.length), classNames);
      return { modalities, accuracy: report.accuracy, macroF1: report.macroF1, report };
    });
    return { init, kind: 'finetune', split, locations: targets.length, subsets, skipped: [...skipped.values()] };
  } finally {
    run.dispose();
  }
}

/** Every non-empty subset of `items`, larger ones first, each in `items`' order. */
export function nonEmptySubsets<T>(items: readonly T[]): T[][] {
  const subsets: T[][] = [];
  for (let mask = 1; mask < 1 << items.length; mask++) subsets.push(items.filter((_, i) => mask & (1 << i)));
  return subsets.sort((a, b) => b.length - a.length);
}

type Embed = (modality: string, x: Tensor) => Tensor;

/**
 * Each modality's outputs of `embed` for every view of every sample of `options`' loader, the samples it left out
 * told to `onSkipped`; dispose it (`using`).
 */
async function collect(
  dataset: Dataset,
  options: DataLoaderOptions,
  run: LoadedRun,
  embed: Embed,
  onSkipped: (samples: readonly SkippedSample[]) => void,
) {
  await using loader = new DataLoader(dataset, options);
  const views = options.views ?? (options.augmentation ? 2 : 1);
  const rows = await collectRows(loader, (b) =>
    run.modalities.flatMap((m) =>
      b.views[m].map((view) => embed(m, view.contiguous({ memoryFormat: run.memoryFormat }))),
    ),
  );
  onSkipped(loader.skipped);
  const features = Object.fromEntries(
    run.modalities.map((m, k) => [m, rows.columns.slice(k * views, (k + 1) * views)]),
  );
  return { ...rows, features };
}

async function retrievalTable(
  run: LoadedRun,
  dataset: Dataset,
  loaderOptions: (extra: Partial<DataLoaderOptions>) => DataLoaderOptions,
  embed: Embed,
  onSkipped: (samples: readonly SkippedSample[]) => void,
): Promise<{ table: RetrievalTable; locations: number }> {
  using plain = await collect(dataset, loaderOptions({}), run, embed, onSkipped);
  using augmented = await collect(dataset, loaderOptions({ augmentation: true, views: 2 }), run, embed, onSkipped);
  const crossModal: Record<string, RetrievalResult> = {};
  for (const a of run.modalities) {
    for (const b of run.modalities)
      if (a !== b) crossModal[`${a}->${b}`] = retrieval(plain.features[a][0], plain.features[b][0]);
  }
  const views = Object.fromEntries(
    run.modalities.map((m) => [m, retrieval(augmented.features[m][0], augmented.features[m][1])]),
  );
  return { table: { crossModal, views }, locations: plain.labels.length };
}

/** The evaluation as a printed table. */
export function formatEvaluation(e: Evaluation): string {
  const pct = (x: number) => (100 * x).toFixed(1).padStart(6);
  const lines = [
    `${e.init}, ${e.split} split, ${e.locations} locations${e.skipped.length > 0 ? ` (${describeSkipped(e.skipped)})` : ''}`,
  ];
  if (e.retrieval) {
    lines.push(
      '',
      'retrieval             | pre-trained: R@1    R@5   R@10  med.rank | random init: R@1    R@5   R@10  med.rank',
    );
    const row = (name: string, p: RetrievalResult, r: RetrievalResult) =>
      `${name.padEnd(21)} | ${[p, r].map((x) => `${pct(x.recall[1])} ${pct(x.recall[5])} ${pct(x.recall[10])} ${String(x.medianRank).padStart(9)}`).join(' | ')}`;
    for (const [pair, result] of Object.entries(e.retrieval.pretrained.crossModal))
      lines.push(row(pair.replace('->', ' -> '), result, e.retrieval.random.crossModal[pair]));
    for (const [m, result] of Object.entries(e.retrieval.pretrained.views))
      lines.push(row(`${m} view -> view`, result, e.retrieval.random.views[m]));
  }
  if (e.subsets) {
    lines.push('', 'modalities present    | accuracy  macro-F1');
    for (const s of e.subsets)
      lines.push(`${s.modalities.join('+').padEnd(21)} | ${pct(s.accuracy)}    ${pct(s.macroF1)}`);
  }
  return lines.join('\n');
}
