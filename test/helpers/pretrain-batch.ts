/**
 * A small two-modality pre-training model and a seeded global batch, the same in every process that builds them: the
 * accumulation tests compare steps on parts of the batch (chunks, ranks) with one step on the whole.
 */
import type { Batch } from '../../lib/data/loader.js';
import { MultiModalModel } from '../../lib/nn/models/multimodal.js';
import { randn } from '../../lib/torch/creation.js';
import { manualSeed } from '../../lib/torch/runtime.js';
import type { Tensor } from '../../lib/torch/tensor.js';
import { viewLayout } from '../../lib/train/views.js';

export const layout = viewLayout(['s2', 'naip'], true);
export const stepOptions = { temperature: 0.2, memoryFormat: 'contiguousFormat', dtype: 'float64' } as const;

/** The model (float64, train mode) from a fixed seed. */
export function smallModel(): MultiModalModel {
  manualSeed(3);
  return new MultiModalModel({
    modalities: { s2: 4, naip: 4 },
    backbones: { s2: 'alexnet', naip: 'resnet18' },
    alexnetHidden: 16,
    hiddenDim: 16,
    embeddingDim: 8,
  })
    .train()
    .to({ dtype: 'float64' });
}

/** Two views per modality of `negative.length` locations; the batch of rows [start, start + count) of them. */
export function globalViews(n: number): Record<string, Tensor[]> {
  manualSeed(5);
  const view = (size: number) => randn([n, 4, size, size], { dtype: 'float64' });
  return { s2: [view(64), view(64)], naip: [view(32), view(32)] };
}

/** What a step reads of a batch: its views, and the host arrays beside them. */
export function batchOf(views: Record<string, Tensor[]>, negative: readonly boolean[], start = 0): Batch {
  const count = negative.length;
  const rows = Object.fromEntries(
    Object.entries(views).map(([m, vs]) => [m, vs.map((v) => v.narrow(0, start, count))]),
  );
  const locations = Array.from({ length: count }, (_, i) => start + i);
  const host = { locations, labels: new Array<number>(count).fill(0), negative: [...negative] };
  return { views: rows, host, ids: locations.map(String), index: 0 } as unknown as Batch;
}
