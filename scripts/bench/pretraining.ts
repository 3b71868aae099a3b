/**
 * The pre-training step the step benchmarks time (bench:step, bench:ddp, bench:accumulate): AlexNet on Sentinel-1
 * 2x72x72 and Sentinel-2 4x72x72, ResNet18 on NAIP 4x128x128, two views each, projection heads, InfoNCE over the
 * 6 x batch embeddings with every tenth location Negative, SGD with momentum; on random views.
 */
import { nn, torch } from '../../lib/index.js';
import type { Batch } from '../../lib/data/loader.js';
import type { ProcessGroup } from '../../lib/distributed/process_group.js';
import type { Precision } from '../../lib/torch/amp.js';
import { buildOptimizer } from '../../lib/train/optimizers.js';
import { embeddingHealthOnDevice } from '../../lib/train/monitor.js';
import { disposeStep, pretrainStep } from '../../lib/train/pretrain.js';
import { viewLayout } from '../../lib/train/views.js';
import { DEVICE, synchronize } from './harness.js';

/** Bands and side of each modality; step.py's baselines.py has the same. */
export const MODALITIES: Record<string, [number, number]> = { s1: [2, 72], s2: [4, 72], naip: [4, 128] };
export type Format = 'contiguousFormat' | 'channelsLast';

/** The model from seed 0: the weights the baselines load. */
export function benchModel(): nn.models.MultiModalModel {
  torch.manualSeed(0);
  return new nn.models.MultiModalModel({
    modalities: Object.fromEntries(Object.entries(MODALITIES).map(([m, [c]]) => [m, c])),
  });
}

export interface StepOptions {
  memoryFormat: Format;
  precision?: Precision;
  accumulate?: number;
  group?: ProcessGroup;
  /** Computes the collapse monitor after each step (the loop does so at log points only). */
  monitor?: boolean;
}

/**
 * One step of `model` (put in train mode, on DEVICE, in `memoryFormat`) on `batch` random locations, repeatable;
 * each step waits for the device.
 */
export function benchStep(
  model: nn.models.MultiModalModel,
  batch: number,
  options: StepOptions,
): { step: () => void } & Disposable {
  const { memoryFormat } = options;
  model.train().to({ device: DEVICE, memoryFormat });
  const optimizer = buildOptimizer(model.parameters(), { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const views = Object.fromEntries(
    Object.entries(MODALITIES).map(([m, [c, s]]) => [
      m,
      [0, 1].map(() => torch.randn([batch, c, s, s], { device: DEVICE }).contiguous({ memoryFormat })),
    ]),
  );
  const negative = Array.from({ length: batch }, (_, i) => i % 10 === 0);
  const input = { views, host: { negative } } as unknown as Batch; // what the step reads of a batch
  const layout = viewLayout(Object.keys(MODALITIES), true);
  const stepOptions = { temperature: 0.2, ...options };
  return {
    step: () => {
      const output = pretrainStep(model, input, layout, optimizer, stepOptions);
      if (options.monitor && output) embeddingHealthOnDevice(output.embeddings, layout, batch).dispose();
      disposeStep(output);
      synchronize();
    },
    [Symbol.dispose]: () => {
      optimizer.dispose();
      Object.values(views)
        .flat()
        .forEach((x) => x.dispose());
    },
  };
}
