/** `mmssl pretrain`: joint multi-modal pre-training (lib/train/pretrain.ts) with a progress bar and clean Ctrl-C. */
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';

import { PRETRAIN_OPTIONS, type PretrainConfig } from '../config/index.js';
import type { KnnMetrics, StepMetrics } from '../runs/records.js';
import type { EpochSummary } from '../train/pretrain.js';
import {
  addConfigFlags,
  commandLineValues,
  integer,
  positiveNumber,
  printBackboneInit,
  stopOnInterrupt,
} from './options.js';

/** The command's own flags (the configuration's come from PRETRAIN_OPTIONS). */
interface PretrainFlags {
  config?: string;
  out: string;
  resume?: boolean;
  nproc?: number;
  distTimeout?: number;
}

const knnText = (m: KnnMetrics) => `${(100 * m.knn.accuracy).toFixed(1)}%`;

/** A bar on a terminal; a line per epoch otherwise (logs, CI). */
function progress(config: PretrainConfig): {
  update: (m: StepMetrics) => void;
  knn: (m: KnnMetrics) => void;
  stop: () => void;
} {
  const total = (m: StepMetrics) => config.epochs * m.batches;
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      format:
        'pretrain [{bar}] epoch {epoch}/{epochs} step {value}/{total} | loss {loss} | k-NN {knn} | {rate} loc/s | data wait {wait}% | ETA {eta_formatted}',
      stream: process.stderr,
      etaBuffer: 20,
    });
    let started = false,
      knn = '-';
    return {
      update: (m) => {
        const payload = {
          epoch: m.epoch + 1,
          epochs: config.epochs,
          loss: m.loss.toFixed(4),
          knn,
          rate: m.locationsPerSecond.toFixed(1),
          wait: (100 * m.dataWait).toFixed(0),
        };
        if (!started) {
          bar.start(total(m), m.step - 1, payload);
          started = true;
        }
        bar.update(m.step, payload);
      },
      knn: (m) => {
        knn = knnText(m);
        bar.update({ knn });
      },
      stop: () => bar.stop(),
    };
  }
  let sum = 0,
    count = 0;
  return {
    update: (m) => {
      sum += m.loss;
      count++;
      if (m.batch !== m.batches - 1) return;
      console.error(
        `epoch ${m.epoch + 1}/${config.epochs}: loss ${(sum / count).toFixed(4)}, ${m.locationsPerSecond.toFixed(1)} locations/s, embedding std ${Object.entries(
          m.std,
        )
          .map(([k, v]) => `${k} ${v.toFixed(3)}`)
          .join(' ')}`,
      );
      sum = 0;
      count = 0;
    },
    knn: (m) =>
      console.error(
        `epoch ${m.epoch}/${config.epochs}: ${m.knn.k}-NN accuracy ${knnText(m)} (val ${m.knn.queries} against ${m.knn.gallery} train, ${m.knn.seconds.toFixed(1)} s)`,
      ),
    stop: () => undefined,
  };
}

export function pretrainCommand(program: Command): void {
  const command = program
    .command('pretrain')
    .description('pre-train one backbone per modality jointly with the multi-positive InfoNCE loss')
    .option('--config <file>', 'a JSON or YAML file of options (the command line overrides it)')
    .requiredOption('--out <dir>', 'the run folder (config.json, checkpoint.safetensors, metrics.jsonl)')
    .option('--resume', 'continue the run in --out from its checkpoint')
    .option(
      '--nproc <k>',
      'data-parallel: launch k processes on this machine (on a cluster, set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT instead)',
      integer(1),
    )
    .option(
      '--dist-timeout <s>',
      'with several processes: how long to wait for the others before failing (default 1800)',
      positiveNumber,
    );
  addConfigFlags(command, PRETRAIN_OPTIONS).action(async (flags: PretrainFlags) => {
    if (flags.nproc !== undefined && flags.nproc > 1 && process.env.WORLD_SIZE === undefined) {
      const { launch } = await import('../distributed/launch.js');
      const argv = [
        process.argv[1],
        ...process.argv
          .slice(2)
          .filter((a, i, all) => a !== '--nproc' && all[i - 1] !== '--nproc' && !a.startsWith('--nproc=')),
      ];
      process.exitCode = await launch({ nproc: flags.nproc, argv });
      return;
    }
    const { ConfigSource, readConfigFile, resolvePretrainConfig } = await import('../config/index.js');
    const { pretrain } = await import('../train/pretrain.js');
    const { describeSkipped } = await import('../runs/skipped.js');
    const { RunFolder } = await import('../runs/folder.js');
    const folder = new RunFolder(flags.out);
    const file = flags.config ? await readConfigFile(flags.config) : {};
    // A resumed run starts from its own configuration; the command line may only repeat it.
    const saved =
      flags.resume && folder.has('config') ? new ConfigSource(folder.path('config'), folder.readJson('config')) : {};
    const config = resolvePretrainConfig(saved, file, commandLineValues(command, PRETRAIN_OPTIONS));
    const { initProcessGroup } = await import('../distributed/process_group.js');
    const group =
      Number(process.env.WORLD_SIZE ?? 1) > 1
        ? await initProcessGroup({
            backend: config.device.startsWith('cuda') ? 'nccl' : 'gloo',
            timeoutMs: Math.round((flags.distTimeout ?? 1800) * 1000),
          })
        : undefined;
    const bar = progress(config);
    const interrupt = stopOnInterrupt('step');
    const started = Date.now();
    const skippedLog = folder.path('skipped');
    const onEpochEnd = ({ epoch, skipped }: EpochSummary) => {
      if (skipped.length > 0)
        console.log(`epoch ${epoch + 1}/${config.epochs}: ${describeSkipped(skipped)} (all in ${skippedLog})`);
    };
    const result = await pretrain({
      config,
      out: flags.out,
      resume: flags.resume,
      onBackboneInit: printBackboneInit,
      signal: interrupt.signal,
      onStep: bar.update,
      onEpoch: bar.knn,
      onEpochEnd,
      group,
    }).finally(() => {
      bar.stop();
      interrupt.dispose();
      group?.destroy();
    });
    if ((group?.rank ?? 0) !== 0) return;
    const minutes = ((Date.now() - started) / 60000).toFixed(1);
    const skipped = result.skipped > 0 ? `; ${result.skipped} samples skipped (${skippedLog})` : '';
    console.log(
      result.interrupted
        ? `${flags.out}: stopped after ${result.steps} steps (epoch ${result.epochs + 1} of ${config.epochs}); continue with --resume${skipped}. ${minutes} min`
        : `${flags.out}: ${result.epochs} epochs, ${result.steps} steps, checkpoint ${result.checkpoint}${skipped}. ${minutes} min`,
    );
  });
}
