/**
 * One rank of bench:ddp (scripts/bench/ddp.ts), ours: the pre-training step of bench:step on this rank's share of the
 * batch, with the process group (SyncBatchNorm, global negatives, the bucketed gradient all-reduce) or, in mode
 * 'local', without one. usage: ddp-rank.js WEIGHTS BATCH REPEATS MODE [nosync] (BatchNorm per process); rank 0 prints {"ms", "commWait"}.
 */
import { distributed, nn, io, torch } from '../../lib/index.js';
import { medianMs } from './harness.js';
import { benchModel, benchStep } from './pretraining.js';

const [weights, batchArg, repeatsArg, mode, sync = 'sync'] = process.argv.slice(2);
const batch = Number(batchArg),
  repeats = Number(repeatsArg);
const group = mode === 'distributed' ? await distributed.initProcessGroup() : undefined;
const rank = group?.rank ?? 0;

using model = benchModel();
model.loadStateDict(await io.safetensors.loadFile(weights));
if (group && sync === 'sync') nn.convertSyncBatchNorm(model, group);
torch.manualSeed(rank);
using bench = benchStep(model, batch, { memoryFormat: 'channelsLast', group });
bench.step();
const waited = distributed.ProcessGroup.waitSeconds();
const ms = medianMs(bench.step, repeats);
const commWait = (distributed.ProcessGroup.waitSeconds() - waited) / ((repeats * ms) / 1000);
if (rank === 0)
  process.stdout.write(`${JSON.stringify({ ms, commWait })}
`);
group?.destroy();
