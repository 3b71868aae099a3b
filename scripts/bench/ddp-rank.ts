/**
 * One rank of bench:ddp (scripts/bench/ddp.ts), ours: the pre-training step of bench:step on this rank's share of the
 * batch, with the process group (SyncBatchNorm, global negatives, the bucketed gradient all-reduce) or, in mode
 * 'local', without one. usage: ddp-rank.js WEIGHTS BATCH REPEATS MODE [nosync] (BatchNorm per process); rank 0 prints {"ms", "commWait"}.
 */
import { distributed, nn, io, torch } from '../../lib/index.js';
import type { Batch } from '../../lib/data/loader.js';
import { buildOptimizer } from '../../lib/train/optimizers.js';
import { disposeStep, pretrainStep } from '../../lib/train/pretrain.js';
import { viewLayout } from '../../lib/train/views.js';
import { medianMs } from './harness.js';

const [weights, batchArg, repeatsArg, mode, sync = 'sync'] = process.argv.slice(2);
const batch = Number(batchArg),
  repeats = Number(repeatsArg);
const MODALITIES: Record<string, [number, number]> = { s1: [2, 72], s2: [4, 72], naip: [4, 128] };
const group = mode === 'distributed' ? await distributed.initProcessGroup() : undefined;
const rank = group?.rank ?? 0;

using model = new nn.models.MultiModalModel({
  modalities: Object.fromEntries(Object.entries(MODALITIES).map(([m, [c]]) => [m, c])),
});
model.loadStateDict(await io.safetensors.loadFile(weights));
model.train().to({ memoryFormat: 'channelsLast' });
if (group && sync === 'sync') nn.convertSyncBatchNorm(model, group);
using optimizer = buildOptimizer(model.parameters(), { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
torch.manualSeed(rank);
const views = Object.fromEntries(
  Object.entries(MODALITIES).map(([m, [c, s]]) => [
    m,
    [0, 1].map(() => torch.randn([batch, c, s, s]).contiguous({ memoryFormat: 'channelsLast' })),
  ]),
);
const negative = Array.from({ length: batch }, (_, i) => i % 10 === 0);
const layout = viewLayout(Object.keys(MODALITIES), true);
const step = () =>
  disposeStep(
    pretrainStep(model, { views, host: { negative } } as unknown as Batch, layout, optimizer, {
      temperature: 0.2,
      memoryFormat: 'channelsLast',
      group,
    }),
  );
step();
const waited = distributed.ProcessGroup.waitSeconds();
const ms = medianMs(step, repeats);
const commWait = (distributed.ProcessGroup.waitSeconds() - waited) / ((repeats * ms) / 1000);
if (rank === 0) process.stdout.write(`${JSON.stringify({ ms, commWait })}\n`);
group?.destroy();
