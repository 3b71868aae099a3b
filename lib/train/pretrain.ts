/**
 * Joint multi-modal pre-training: one encoder per modality, every view of a batch through its modality's encoder
 * (both views of a modality in one call), the multi-positive InfoNCE over all T x N embeddings with METER-ML
 * Negatives as negatives only, one optimizer step per batch.
 *
 * The run folder (lib/runs/folder.ts) gets the resolved configuration, the band statistics, metrics.jsonl (a line
 * per step, and one per evaluation of the k-NN monitor, lib/train/knn_monitor.ts) and checkpoint.safetensors,
 * written atomically after every epoch and when stopped; it holds the position, so a resumed run repeats no batch
 * and skips none. On CPU a resumed run's losses equal an uninterrupted run's.
 *
 * With a process group (data parallelism, lib/distributed): each rank reads its shard of every batch (batchSize is
 * the global batch, divided among the ranks), the loss sees every rank's embeddings (infoNCEAcrossRanks), BatchNorm
 * statistics are synchronised (config.syncBatchNorm), gradients are averaged in one bucketed all-reduce, parameters
 * start from rank 0's, and rank 0 alone writes the run folder; every rank resumes from the same checkpoint. A stop
 * requested on any rank stops all of them after the same step.
 */
import { FileError, invalidArg, NonFiniteError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { infoNCEAcrossRanks } from '../loss/distributed.js';
import { infoNCE } from '../loss/infonce.js';
import { convertSyncBatchNorm } from '../nn/modules/batchnorm.js';
import type { MultiModalModel } from '../nn/models/multimodal.js';
import { cat, stack, tensor } from '../torch/creation.js';
import { noGrad } from '../torch/autograd.js';
import { tidy } from '../torch/scope.js';
import { getRngState, manualSeed, setRngState } from '../torch/runtime.js';
import { checkPrecision, GradScaler, type GradScalerState, type Precision, withPrecision } from '../torch/amp.js';
import { syncFree, withSyncDebugMode } from '../torch/sync.js';
import type { Tensor } from '../torch/tensor.js';
import { checkAvailable, type Device } from '../torch/device.js';
import { applyRuntimeOptions, type PretrainConfig } from '../config/index.js';
import { bandCounts, type Dataset, type SkippedSample } from '../data/dataset.js';
import { DataLoader, shuffleOf, type Batch } from '../data/loader.js';
import { openPath } from '../data/open.js';
import {
  type BandStatsOptions,
  loadOrComputeBandStats,
  type NormalizationStats,
  writeBandStats,
} from '../data/stats.js';
import { ProcessGroup } from '../distributed/process_group.js';
import { readPretrainConfig } from '../runs/config.js';
import { writeEnvironment } from '../runs/environment.js';
import { RunFolder } from '../runs/folder.js';
import { initBackbones, inputSizes, pretrainModel, withDeclaredStats } from '../runs/models.js';
import type { BackboneWeightsReport } from '../io/backbone_weights.js';
import type { EmbeddingHealth, KnnMetrics, StepMetrics } from '../runs/records.js';
import { SkipLog, type SkipRecord } from '../runs/skipped.js';
import { KnnMonitor } from './knn_monitor.js';
import { embeddingHealthOnDevice, readHealth } from './monitor.js';
import { backwardAndStep, buildOptimizer, buildScheduler, type TrainOptimizer } from './optimizers.js';
import { anchorRows, viewGroups, viewLayout, type ViewLayout } from './views.js';

/** The end of an epoch, or of the part of it a stopped run did. */
export interface EpochSummary {
  epoch: number;
  /** Whether the epoch ran to its end (false: the run was stopped in it). */
  completed: boolean;
  /** Samples left out in it (band statistics: at the session's first epoch; the k-NN monitor: where it ran). */
  skipped: SkipRecord[];
}

export interface PretrainOptions {
  config: PretrainConfig;
  /** The run folder. */
  out: string;
  /** Continue the run in `out` from its checkpoint (its config.json is used; `config` must be the same). */
  resume?: boolean;
  /** Stops after the current step, with a checkpoint. */
  signal?: AbortSignal;
  /** Data-parallel training with the other ranks of this group (see the file's comment). */
  group?: ProcessGroup;
  onStep?: (metrics: StepMetrics) => void;
  /** Told what `backboneInit` loaded into each backbone (the CLI prints its table). */
  onBackboneInit?: (modality: string, report: BackboneWeightsReport) => void;
  /** After each k-NN evaluation (the writer only). */
  onEpoch?: (metrics: KnnMetrics) => void;
  /** After each epoch's checkpoint and k-NN evaluation (the writer only). */
  onEpochEnd?: (summary: EpochSummary) => void;
}

export interface PretrainResult {
  /** Epochs completed and optimizer steps done. */
  epochs: number;
  steps: number;
  /** Stopped by the signal before the last epoch. */
  interrupted: boolean;
  checkpoint: string;
  /** Distinct samples left out (onBadSample 'skip'), earlier sessions of a resumed run included; see skipped.jsonl. */
  skipped: number;
}

/** Where a run stands: the next batch to train on. */
interface Position {
  epoch: number;
  batch: number;
}

/** What a step leaves on the device, for the next log point to read: its loss and the monitor's values. */
export interface StepOutput {
  /** This rank's loss (detached, a scalar). */
  loss: Tensor;
  /**
   * The step's embeddings (detached): the collapse monitor (`embeddingHealthOnDevice`) is computed from the last
   * step's at log points only, so that no step allocates for it.
   */
  embeddings: Tensor;
}

/** Frees what a step left on the device (nothing when it took no step). */
export function disposeStep(output: StepOutput | undefined): void {
  output?.loss.dispose();
  output?.embeddings.dispose();
}

/**
 * One training step on `batch`: embeddings of every view (under the precision's autocast), the loss in float32,
 * backward, (with a group: the gradients averaged over the ranks), the optimizer step. Reads nothing back from the
 * device (a sync-free region: see lib/torch/sync.ts), except with a gradient scaler ('16-mixed'), whose step reads
 * whether the gradients were finite, as PyTorch's does; returns the loss and the embeddings as device tensors, or
 * undefined when the batch holds no anchor (Negatives only) and no step was taken. With a group the loss spans
 * every rank's views (each rank holding at most `rankBatch` locations), and a rank whose batch holds only Negatives
 * still steps (its views are the others' negatives).
 */
export function pretrainStep(
  model: MultiModalModel,
  batch: Batch,
  layout: ViewLayout,
  optimizer: TrainOptimizer,
  options: {
    temperature: number;
    memoryFormat: PretrainConfig['memoryFormat'];
    dtype?: PretrainConfig['dtype'];
    precision?: Precision;
    /** Scales the loss and skips steps with non-finite gradients ('16-mixed'). */
    scaler?: GradScaler;
    /** Chunks the batch is embedded in (GradCache, see `embedInChunks`); default 1. */
    accumulate?: number;
    group?: ProcessGroup;
    /** Locations per rank at most (default: this batch's); with a group, the same on every rank. */
    rankBatch?: number;
  },
): StepOutput | undefined {
  const { group, scaler } = options;
  const negative = batch.host.negative;
  if (!group && negative.every(Boolean)) return undefined;
  const n = negative.length;
  const output = syncFree('the pre-training step', () =>
    tidy(() => {
      optimizer.zeroGrad({ setToNone: true }); // backward writes fresh gradients: no pass to zero them
      const chunks = chunkRanges(n, options.accumulate ?? 1);
      const { z, backward } =
        chunks.length === 1
          ? embedWithGraph(model, batch, layout, options)
          : embedInChunks(model, batch, layout, chunks, options);
      const lossOptions = { temperature: options.temperature, anchorMask: anchorRows(layout, negative) };
      const loss = group
        ? infoNCEAcrossRanks(z, viewGroups(layout, n), group, {
            ...lossOptions,
            maxViewsPerRank: layout.perLocation * (options.rankBatch ?? n),
          })
        : infoNCE(z, viewGroups(layout, n), lossOptions);
      const finish = backwardAndStep(loss, optimizer, scaler, () => {
        backward();
        group?.allReduceGradients(model.parameters());
      });
      return { loss: loss.detach(), embeddings: z.detach(), finish };
    }),
  );
  output.finish();
  return { loss: output.loss, embeddings: output.embeddings };
}

type EmbedOptions = Parameters<typeof embedViews>[3];

/** The embeddings with their graph: the loss's backward reaches the parameters, nothing is left to do after it. */
function embedWithGraph(model: MultiModalModel, batch: Batch, layout: ViewLayout, options: EmbedOptions) {
  return { z: embedViews(model, batch, layout, options), backward: () => undefined };
}

/** `n` locations in `k` contiguous chunks as even as can be (at most `n`: a chunk holds one location at least). */
export function chunkRanges(n: number, k: number): [number, number][] {
  const count = Math.min(k, n);
  return Array.from({ length: count }, (_, c) => [Math.floor((c * n) / count), Math.floor(((c + 1) * n) / count)]);
}

/**
 * GradCache (Gao et al., 2021): the embeddings of every chunk without a graph, joined as one leaf for the loss, so
 * the loss and its gradient see the whole batch's negatives; then `backward` re-runs each chunk's forward with the
 * graph, from the random state its first pass started with (the same dropout) and with BatchNorm's running
 * statistics put back as the first pass left them (each chunk counted once), and back-propagates the chunk's rows of
 * the embeddings' gradient. Activation memory is one chunk's; the parameter gradients are those of the whole batch
 * with BatchNorm computing its statistics chunk by chunk.
 */
function embedInChunks(
  model: MultiModalModel,
  batch: Batch,
  layout: ViewLayout,
  chunks: readonly [number, number][],
  options: EmbedOptions,
) {
  const n = batch.host.negative.length;
  const device = batch.views[layout.modalities[0]][0].device;
  const part = ([start, end]: [number, number]) => ({
    views: Object.fromEntries(
      layout.modalities.map((m) => [m, batch.views[m].map((v) => v.narrow(0, start, end - start))]),
    ),
  });
  const states: Tensor[] = []; // each chunk's random state before its first pass
  const joined = noGrad(() =>
    cat(
      chunks.map((range) => {
        states.push(getRngState(device));
        return embedViews(model, part(range), layout, options);
      }),
    ),
  ).requiresGrad_(true);
  const buffers = model.buffers();
  const afterFirstPass = buffers.map((b) => b.clone());
  // Row (m * views + v) * n + i of the batch's order is row (m * views + v) * size + (i - start) of its chunk's block.
  const order = chunks.flatMap(([start, end]) =>
    Array.from({ length: layout.perLocation * (end - start) }, (_, r) => {
      const size = end - start;
      return Math.floor(r / size) * n + start + (r % size);
    }),
  );
  const position = new Array<number>(order.length);
  order.forEach((row, chunkRow) => (position[row] = chunkRow));
  const z = joined.indexSelect(0, tensor(position, { dtype: 'int64', device }));
  const backward = () => {
    const grads = joined.grad!;
    let offset = 0;
    chunks.forEach((range, c) => {
      const rows = layout.perLocation * (range[1] - range[0]);
      tidy(() => {
        setRngState(states[c], device);
        embedViews(model, part(range), layout, options).backward(grads.narrow(0, offset, rows));
      });
      offset += rows;
    });
    grads.dispose();
    buffers.forEach((b, i) => noGrad(() => b.copy_(afterFirstPass[i])));
  };
  return { z, backward };
}

/**
 * Every view's embedding, in `viewGroups`' order (by modality, view, location): each modality's views in one call
 * to its encoder, under the precision's autocast; float32 (or the model's dtype) out, for the loss.
 */
export function embedViews(
  model: MultiModalModel,
  batch: Pick<Batch, 'views'>,
  layout: ViewLayout,
  options: { memoryFormat: PretrainConfig['memoryFormat']; dtype?: PretrainConfig['dtype']; precision?: Precision },
): Tensor {
  const dtype = options.dtype ?? 'float32';
  const device = batch.views[layout.modalities[0]][0].device;
  return withPrecision(options.precision ?? '32', device, () =>
    cat(
      layout.modalities.map((m) => {
        const views = batch.views[m];
        const x = (views.length === 1 ? views[0] : cat(views))
          .to({ dtype })
          .contiguous({ memoryFormat: options.memoryFormat });
        return model.forward(m, x).to({ dtype });
      }),
    ),
  );
}

/** A step taken since the last log point: its device loss, and what the host knows of it. */
interface PendingStep {
  output: StepOutput;
  epoch: number;
  batch: number;
  step: number;
  lr: number;
  ids: string[];
}

/**
 * The log point: the pending steps' losses (and the last one's monitor) in one read; with a group, the loss summed
 * over the ranks and the stop requests agreed in one all-reduce first. A loss that is not finite stops the run,
 * naming the step and its locations.
 */
async function readSteps(
  pending: readonly PendingStep[],
  group: ProcessGroup | undefined,
  stop: boolean,
  layout: ViewLayout,
): Promise<{ losses: number[]; health: EmbeddingHealth; stop: boolean }> {
  using shared = tidy(() => {
    const losses = stack(pending.map((p) => p.output.loss.to({ dtype: 'float64' })));
    return cat([losses, tensor([stop ? 1 : 0], { dtype: 'float64', device: losses.device })]);
  });
  await group?.allReduce(shared, 'sum');
  const last = pending[pending.length - 1].output.embeddings;
  const values = tidy(() =>
    cat([shared, embeddingHealthOnDevice(last, layout, last.shape[0] / layout.perLocation)]).toNumbers(),
  );
  const k = pending.length,
    worldSize = group?.worldSize ?? 1;
  const mean = values.slice(0, k).map((l) => l / worldSize);
  const bad = mean.findIndex((l) => !Number.isFinite(l));
  if (bad >= 0) {
    const { epoch, step, ids } = pending[bad];
    throw new NonFiniteError(
      `pre-training step ${step}: the loss is ${mean[bad]} (batch of ${ids.slice(0, 8).join(', ')}${ids.length > 8 ? ', ...' : ''}${group ? ' on this rank' : ''}): the run diverged or its inputs are not finite; lower the learning rate or check the data`,
      { epoch, step, ids },
    );
  }
  return { losses: mean, stop: values[k] > 0, health: readHealth(values.slice(k + 1), layout) };
}

/** The configuration of the run to resume in `folder`, which must be `config`. */
function resumedConfig(folder: RunFolder, config: PretrainConfig): PretrainConfig {
  if (!folder.has('checkpoint'))
    throw new FileError(folder.path('checkpoint'), 'missing: there is no run to resume here');
  const saved = readPretrainConfig(folder);
  if (JSON.stringify(saved) !== JSON.stringify(config)) {
    const differing = Object.keys({ ...saved, ...config }).filter(
      (k) => JSON.stringify(saved[k as keyof PretrainConfig]) !== JSON.stringify(config[k as keyof PretrainConfig]),
    );
    throw new FileError(
      folder.path('config'),
      `the run was configured differently (${differing.join(', ')}); a resumed run keeps its configuration`,
    );
  }
  return saved;
}

/** metrics.jsonl up to `step` (a resumed run rewrites what followed its checkpoint). */
async function truncateMetrics(folder: RunFolder, step: number): Promise<void> {
  const kept = folder.readLines<{ step: number }>('metrics').filter((line) => line.step <= step);
  await writeFileAtomic(folder.path('metrics'), [
    new TextEncoder().encode(kept.map((l) => `${JSON.stringify(l)}\n`).join('')),
  ]);
}

/** Rank 0's band statistics on every rank, in one broadcast on `device` (the other ranks compute nothing). */
async function sharedStats(
  group: ProcessGroup | undefined,
  dataset: Dataset,
  modalities: readonly string[],
  device: Device,
  compute: () => Promise<NormalizationStats>,
): Promise<NormalizationStats> {
  if (!group || group.worldSize === 1) return compute();
  const bands = bandCounts('pretrain', modalities, dataset);
  const own = group.rank === 0 ? await compute() : undefined;
  const flat = own
    ? modalities.flatMap((m) => [...own[m].mean, ...own[m].std])
    : modalities.flatMap((m) => new Array<number>(2 * bands[m]).fill(0));
  using t = tensor(flat, { dtype: 'float64', device });
  await group.broadcast(t, 0); // the other ranks wait off the JS thread: Ctrl-C and progress stay alive
  const values = t.toNumbers();
  let at = 0;
  const take = (n: number) => values.slice(at, (at += n));
  return Object.fromEntries(modalities.map((m) => [m, { mean: take(bands[m]), std: take(bands[m]) }]));
}

/**
 * Waits for the event loop's next turn: a signal (Ctrl-C) that arrived during a step is handled here, before the next
 * step starts, even when the next batch is already read (awaiting it alone would not turn the loop).
 */
const nextTurn = () =>
  new Promise<void>((resolve) => {
    setImmediate(resolve);
  });

/** Pre-trains as configured, writing the run folder `out`; see the file's comment. */
export function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  return withSyncDebugMode(options.config?.syncDebug, () => run(options));
}

async function run(options: PretrainOptions): Promise<PretrainResult> {
  const { out, resume = false, signal, onStep, onEpoch, onEpochEnd, group } = options;
  const worldSize = group?.worldSize ?? 1,
    writer = (group?.rank ?? 0) === 0;
  const folder = new RunFolder(out);
  // Everything that can be refused is checked before the run folder is touched.
  const config = resume ? resumedConfig(folder, options.config) : options.config;
  const layout = viewLayout(config.modalities, config.augment);
  if (config.batchSize % worldSize !== 0)
    throw invalidArg(
      'pretrain',
      'batchSize',
      `a multiple of the ${worldSize} processes (it is the global batch)`,
      config.batchSize,
    );
  if (config.accumulate > config.batchSize / worldSize)
    throw invalidArg(
      'pretrain',
      'accumulate',
      `at most the ${config.batchSize / worldSize} locations of ${worldSize > 1 ? "a rank's" : 'a'} batch`,
      config.accumulate,
    );
  // With several GPUs on a machine, each rank takes its own (torchrun's LOCAL_RANK convention).
  const device = checkAvailable(
    'pretrain',
    group && config.device === 'cuda' ? `cuda:${group.localRank}` : config.device,
  );
  checkPrecision('pretrain', config.precision, device);
  if (!resume && folder.has('checkpoint'))
    throw new FileError(out, 'holds a run already: resume it (--resume) or choose another folder');
  const dataset = await openPath(config.data);
  bandCounts('pretrain', config.modalities, dataset);
  const train = dataset.samples.filter((s) => s.split === 'train');
  if (!train.some((s) => !s.negative))
    throw new FileError(
      config.data,
      `the training split holds no anchor: ${train.length === 0 ? 'it is empty' : `all ${train.length} of its locations are Negatives`}, which are only ever negatives; pre-training needs locations of other types`,
    );
  applyRuntimeOptions(config);
  const statsOptions: BandStatsOptions = {
    modalities: config.modalities,
    maxSamples: config.statsSamples,
    seed: config.seed,
    workers: config.workers,
    onBadSample: config.onBadSample,
  };
  const statsSkipped: SkippedSample[] = [];
  const computedStats = await sharedStats(group, dataset, config.modalities, device, () =>
    loadOrComputeBandStats(dataset, {
      ...statsOptions,
      lookIn: [folder.path('bandStats')],
      onSkip: (s) => statsSkipped.push(s),
    }),
  );
  // band-stats.json keeps the computed statistics (what resuming looks up); the run standardises with the declared
  const normalization = withDeclaredStats(config, dataset, computedStats);
  await using loader = new DataLoader(dataset, {
    modalities: config.modalities.map((name) => ({ name, size: config.sizes[name] })),
    batchSize: config.batchSize / worldSize,
    dropLast: true,
    shuffle: shuffleOf(config),
    augmentation: config.augment,
    normalization,
    seed: config.seed,
    workers: config.workers,
    device,
    onBadSample: config.onBadSample,
    shard: { rank: group?.rank ?? 0, worldSize },
  });
  const batches = loader.batches(0).length;
  if (batches === 0)
    throw invalidArg(
      'pretrain',
      'batchSize',
      `at most the training split's ${dataset.samples.filter((s) => s.split === 'train').length} locations`,
      config.batchSize,
    );
  manualSeed(config.seed);
  using model = pretrainModel(config, dataset).train();
  const initialised = resume ? {} : await initBackbones(config, dataset, (m) => model.encoder(m).backbone);
  model.to({ device, dtype: config.dtype, memoryFormat: config.memoryFormat });
  if (group && worldSize > 1) {
    if (config.syncBatchNorm) convertSyncBatchNorm(model, group);
    await group.broadcast([...model.stateDict().values()], 0); // the same start even if seeds were to differ
  }
  using optimizer = buildOptimizer(model.parameters(), config.optimizer);
  const scheduler = buildScheduler(optimizer, config.schedule, batches, config.epochs);
  using scaler = config.precision === '16-mixed' ? new GradScaler(device) : undefined;
  const checkpoint = folder.path('checkpoint');
  if (writer && !resume) {
    await folder.start();
    await folder.writeJson('config', config);
    await writeEnvironment(folder, config.device);
    if (Object.keys(initialised).length > 0) await folder.writeJson('backboneInit', initialised);
  }
  Object.entries(initialised).forEach(([m, report]) => options.onBackboneInit?.(m, report));
  if (writer) await writeBandStats(folder.path('bandStats'), dataset, statsOptions, computedStats, statsSkipped);
  const skips = new SkipLog(writer ? folder.path('skipped') : undefined);
  let pendingSkips = skips.add('stats', statsSkipped);
  let position: Position = { epoch: 0, batch: 0 },
    step = 0;
  if (resume) {
    const loaded = await loadCheckpoint(checkpoint, { model, optimizer, scheduler });
    const extra = loaded.extra as { position: Position; scaler?: GradScalerState };
    position = extra.position;
    if (scaler && extra.scaler) scaler.loadStateDict(extra.scaler);
    step = loaded.step;
    if (writer) await truncateMetrics(folder, step);
  }
  const save = async () =>
    writer &&
    saveCheckpoint(checkpoint, {
      model,
      optimizer,
      scheduler,
      step,
      epoch: position.epoch,
      extra: {
        position,
        normalization,
        modalities: config.modalities,
        inputSizes: inputSizes(config, dataset),
        ...(scaler ? { scaler: scaler.stateDict() } : {}),
      },
      metadata: { config: JSON.stringify(config) },
    });
  await using monitor = writer ? KnnMonitor.create({ dataset, config, normalization, device }) : undefined;
  let stop = false;
  while (position.epoch < config.epochs && !stop) {
    let stopped = false,
      pending: PendingStep[] = [],
      interval = { start: performance.now(), waited: 0, locations: 0, comm: ProcessGroup.waitSeconds() },
      waitStart = interval.start;
    const epochStart = interval.start,
      epoch = position.epoch,
      skippedBefore = loader.skipped.length;
    // The log point: the pending steps read in one go, a metrics line written; whether the ranks agreed to stop.
    const flush = async (): Promise<boolean> => {
      if (pending.length === 0) return false;
      try {
        const read = await readSteps(pending, group, signal?.aborted ?? false, layout);
        const last = pending[pending.length - 1],
          end = performance.now(),
          elapsed = end - interval.start;
        if (writer) {
          const metrics: StepMetrics = {
            epoch: last.epoch,
            batch: last.batch,
            batches,
            step: last.step,
            loss: read.losses.reduce((sum, l) => sum + l, 0) / read.losses.length,
            lr: last.lr,
            locationsPerSecond: (interval.locations * worldSize) / (elapsed / 1000),
            dataWait: interval.waited / elapsed,
            skipped: loader.skipped.length - skippedBefore,
            ...read.health,
            ...(group ? { commWait: ((ProcessGroup.waitSeconds() - interval.comm) * 1000) / elapsed } : {}),
          };
          folder.appendLines('metrics', [metrics]);
          onStep?.(metrics);
        }
        interval = { start: performance.now(), waited: 0, locations: 0, comm: ProcessGroup.waitSeconds() };
        return read.stop;
      } finally {
        pending.forEach(({ output }) => disposeStep(output));
        pending = [];
      }
    };
    for await (const batch of loader.epoch(position.epoch, { from: position.batch })) {
      using b = batch;
      await nextTurn();
      // Without a group a stop takes effect before the next step; with one, at a log point all ranks agree on.
      if (!group && signal?.aborted) {
        stopped = stop = true;
        break;
      }
      const lr = optimizer.paramGroups[0].lr;
      interval.waited += performance.now() - waitStart;
      const output = pretrainStep(model, b, layout, optimizer, {
        ...config,
        scaler,
        group,
        rankBatch: config.batchSize / worldSize,
      });
      position = { epoch: position.epoch, batch: b.index + 1 };
      if (output) {
        scheduler.step();
        step++;
        pending.at(-1)?.output.embeddings.dispose(); // the monitor reads the last step's only
        pending.push({ output, epoch: position.epoch, batch: b.index, step, lr, ids: b.ids });
        interval.locations += b.ids.length;
      }
      const agreed = step % config.logEvery === 0 && pending.length > 0 ? await flush() : false;
      stop = group ? agreed : (signal?.aborted ?? false);
      if (stop && position.batch < batches) {
        stopped = true;
        break;
      }
      waitStart = performance.now();
    }
    if ((await flush()) && group) stop = true; // the epoch's last steps, if the last log point was before them
    if (!stopped) position = { epoch: position.epoch + 1, batch: 0 };
    if (!stopped && step === 0) throw noStep(config.data, epoch, loader.skipped.length);
    await save();
    const trained = loader.skipped.slice(skippedBefore);
    skips.add('train', trained);
    const epochSkips = [...pendingSkips, ...trained.map((s) => ({ phase: 'train' as const, ...s }))];
    pendingSkips = [];
    if (!stopped && monitor?.due((performance.now() - epochStart) / 1000)) {
      const knn = await monitor.evaluate(model, position.epoch, step);
      epochSkips.push(...skips.add('knn', monitor.skipped));
      if (knn) {
        folder.appendLines('metrics', [knn]);
        onEpoch?.(knn);
      }
    }
    if (writer) onEpochEnd?.({ epoch, completed: !stopped, skipped: epochSkips });
  }
  return {
    epochs: position.epoch,
    steps: step,
    interrupted: position.epoch < config.epochs,
    checkpoint,
    skipped: skips.count,
  };
}

/**
 * A whole epoch without a step (every batch held only Negatives or samples that could not be read): stopping beats
 * writing an untrained checkpoint as if it were a result.
 */
function noStep(data: string, epoch: number, skipped: number): FileError {
  const why =
    skipped > 0 ? `${skipped} samples could not be read (skipped.jsonl lists them)` : 'every batch held only Negatives';
  return new FileError(data, `epoch ${epoch + 1} took no optimizer step: ${why}; no checkpoint was written`);
}
