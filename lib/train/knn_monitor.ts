/**
 * The online k-NN monitor of pre-training: between epochs, the labelled validation split and a seeded labelled subset
 * of the training split are embedded with the current backbones (eval mode, no gradients; the modalities' features
 * concatenated, as fine-tuning sees them), and each validation sample is classified by weighted k-NN among the
 * training ones (lib/eval/knn.ts). METER-ML's Negatives are left out, as fine-tuning leaves them out by default.
 *
 * With `every: 'auto'` (the default) it runs after the first epoch, then as often as keeps its measured cost within
 * 10% of the measured training time: how representation quality moves, at a bounded price.
 */
import { CLASSES, type Dataset, type SkippedSample } from '../data/dataset.js';
import { type CollectedRows, collectRows, DataLoader, firstViews } from '../data/loader.js';
import { Random } from '../data/random.js';
import type { NormalizationStats } from '../data/stats.js';
import { knnAccuracy } from '../eval/knn.js';
import type { MultiModalModel } from '../nn/models/multimodal.js';
import { cat } from '../torch/creation.js';
import type { Device } from '../torch/device.js';
import type { KnnConfig, PretrainConfig } from '../config/index.js';
import type { KnnMetrics } from '../runs/records.js';

/** Share of training time the 'auto' schedule allows the monitor. */
export const KNN_BUDGET = 0.1;

/** 'auto': epochs until the next evaluation, so that one costing `seconds` stays within the budget of their time. */
export function knnInterval(seconds: number, epochSeconds: number): number {
  return Math.max(1, Math.ceil(seconds / (KNN_BUDGET * epochSeconds)));
}

interface Setting {
  dataset: Dataset;
  config: PretrainConfig;
  normalization: NormalizationStats;
  device: Device;
}

export class KnnMonitor {
  #sinceLast = 0;
  #interval = 1;
  #trainingSeconds = 0;

  private constructor(
    readonly config: KnnConfig,
    private readonly setting: Setting,
    private readonly gallery: DataLoader,
    private readonly queries: DataLoader,
  ) {}

  /**
   * The monitor for this run, or undefined when it is off or the data have no labelled train and val samples.
   * @internal Pre-training makes it from its own setting.
   */
  static create(setting: Setting): KnnMonitor | undefined {
    const { dataset, config, normalization, device } = setting;
    if (config.knn.every === 0) return undefined;
    const labelled = (split: string) =>
      dataset.samples.flatMap((s, i) => (s.split === split && s.label >= 0 ? [i] : []));
    const queries = labelled('val');
    const train = new Random(config.seed).fork(11).shuffle(labelled('train')).slice(0, config.knn.gallerySize);
    if (queries.length === 0 || train.length === 0) return undefined;
    // Each loader's workers live as long as the monitor: starting them for every evaluation would cost more than it.
    const loader = (indices: Set<number>) =>
      new DataLoader(dataset, {
        modalities: config.modalities.map((name) => ({ name, size: config.sizes[name] })),
        batchSize: config.batchSize,
        splits: ['train', 'val'],
        filter: (_, i) => indices.has(i),
        shuffle: false,
        normalization,
        workers: config.workers,
        device,
        onBadSample: config.onBadSample,
      });
    return new KnnMonitor(config.knn, setting, loader(new Set(train)), loader(new Set(queries)));
  }

  /** Samples its loaders left out so far (onBadSample 'skip'). */
  get skipped(): SkippedSample[] {
    return [...this.gallery.skipped, ...this.queries.skipped];
  }

  /** Records an epoch's training time; true when the monitor should run after it. */
  due(epochSeconds: number): boolean {
    this.#trainingSeconds += epochSeconds;
    this.#sinceLast++;
    const interval = this.config.every === 'auto' ? this.#interval : this.config.every;
    return this.#sinceLast >= interval;
  }

  /** Evaluates `model` (left in train mode afterwards); undefined when every sample of a set was unreadable. */
  async evaluate(model: MultiModalModel, epoch: number, step: number): Promise<KnnMetrics | undefined> {
    const start = performance.now();
    model.eval();
    try {
      using gallery = await this.#embed(model, this.gallery);
      using queries = await this.#embed(model, this.queries);
      if (gallery.columns.length === 0 || queries.columns.length === 0) return undefined;
      const { k, temperature } = this.config;
      const accuracy = knnAccuracy(gallery.columns[0], gallery.labels, queries.columns[0], queries.labels, {
        numClasses: CLASSES.length,
        k,
        temperature,
      });
      const seconds = (performance.now() - start) / 1000;
      this.#schedule(seconds);
      return {
        epoch,
        step,
        knn: { accuracy, k, gallery: gallery.labels.length, queries: queries.labels.length, seconds },
      };
    } finally {
      model.train();
    }
  }

  #schedule(seconds: number): void {
    this.#interval = knnInterval(seconds, this.#trainingSeconds / this.#sinceLast);
    this.#sinceLast = 0;
    this.#trainingSeconds = 0;
  }

  /** The fused backbone features of every sample `loader` yields, and their labels. */
  #embed(model: MultiModalModel, loader: DataLoader): Promise<CollectedRows> {
    const { modalities, memoryFormat, dtype } = this.setting.config;
    return collectRows(loader, (b) => {
      const inputs = firstViews(b, modalities, memoryFormat);
      return [
        cat(
          modalities.map((m) => model.encoder(m).features(inputs[m].to({ dtype }))),
          1,
        ),
      ];
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all([this.gallery[Symbol.asyncDispose](), this.queries[Symbol.asyncDispose]()]);
  }
}
