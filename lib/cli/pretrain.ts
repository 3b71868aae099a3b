/** `mmssl pretrain`: joint multi-modal pre-training (lib/train/pretrain.ts) with a progress bar and clean Ctrl-C. */
import { Option, type Command } from 'commander';
import { SingleBar } from 'cli-progress';

import type { PretrainConfig } from '../train/config.js';
import type { KnnMetrics } from '../train/knn_monitor.js';
import type { EpochSummary, StepMetrics } from '../train/pretrain.js';
import { integer, list, positiveNumber, type RunFlags, runOptions, stopOnInterrupt } from './options.js';

interface PretrainFlags extends RunFlags {
  data?: string;
  modalities?: string[];
  augment: boolean;
  config?: string;
  out: string;
  resume?: boolean;
  epochs?: number;
  batchSize?: number;
  optimizer?: PretrainConfig['optimizer']['name'];
  lr?: number;
  temperature?: number;
  embeddingDim?: number;
  alexnetHidden?: number;
  syncBatchNorm: boolean;
  nproc?: number;
  distTimeout?: number;
  knnEvery?: number | 'auto';
}

/** The command-line values as a partial configuration (unset ones left out, so a file or the defaults apply). */
function fromFlags(f: PretrainFlags): Record<string, unknown> {
  const optimizer = { name: f.optimizer, lr: f.lr };
  return {
    data: f.data, modalities: f.modalities, augment: f.augment ? undefined : false, epochs: f.epochs, batchSize: f.batchSize,
    optimizer: Object.values(optimizer).some((v) => v !== undefined) ? JSON.parse(JSON.stringify(optimizer)) : undefined,
    temperature: f.temperature, embeddingDim: f.embeddingDim, alexnetHidden: f.alexnetHidden, sizes: f.size, seed: f.seed,
    device: f.device, threads: f.threads, workers: f.workers, onBadSample: f.onBadSample, syncBatchNorm: f.syncBatchNorm ? undefined : false,
    knn: f.knnEvery === undefined ? undefined : { every: f.knnEvery },
  };
}

const knnText = (m: KnnMetrics) => `${(100 * m.knn.accuracy).toFixed(1)}%`;

/** A bar on a terminal; a line per epoch otherwise (logs, CI). */
function progress(config: PretrainConfig): { update: (m: StepMetrics) => void; knn: (m: KnnMetrics) => void; stop: () => void } {
  const total = (m: StepMetrics) => config.epochs * m.batches;
  if (process.stderr.isTTY) {
    const bar = new SingleBar({ format: 'pretrain [{bar}] epoch {epoch}/{epochs} step {value}/{total} | loss {loss} | k-NN {knn} | {rate} loc/s | data wait {wait}% | ETA {eta_formatted}', stream: process.stderr, etaBuffer: 20 });
    let started = false, knn = '-';
    return {
      update: (m) => {
        const payload = { epoch: m.epoch + 1, epochs: config.epochs, loss: m.loss.toFixed(4), knn, rate: m.locationsPerSecond.toFixed(1), wait: (100 * m.dataWait).toFixed(0) };
        if (!started) bar.start(total(m), m.step - 1, payload), started = true;
        bar.update(m.step, payload);
      },
      knn: (m) => { knn = knnText(m); bar.update({ knn }); },
      stop: () => bar.stop(),
    };
  }
  let sum = 0, count = 0;
  return {
    update: (m) => {
      sum += m.loss, count++;
      if (m.batch !== m.batches - 1) return;
      console.error(`epoch ${m.epoch + 1}/${config.epochs}: loss ${(sum / count).toFixed(4)}, ${m.locationsPerSecond.toFixed(1)} locations/s, embedding std ${Object.entries(m.std).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(' ')}`);
      sum = 0, count = 0;
    },
    knn: (m) => console.error(`epoch ${m.epoch}/${config.epochs}: ${m.knn.k}-NN accuracy ${knnText(m)} (val ${m.knn.queries} against ${m.knn.gallery} train, ${m.knn.seconds.toFixed(1)} s)`),
    stop: () => undefined,
  };
}

export function pretrainCommand(program: Command): void {
  runOptions(program.command('pretrain')
    .description('pre-train one backbone per modality jointly with the multi-positive InfoNCE loss')
    .option('--data <dir>', 'dataset: a METER-ML folder, a folder with manifest.geojson, or a manifest file')
    .option('--modalities <list>', 'modalities, comma-separated (e.g. s1,s2,naip)', list)
    .option('--no-augment', 'no augmentations: one view per modality (needs two modalities at least)')
    .option('--config <file>', 'a JSON or YAML file of options (the command line overrides it)')
    .requiredOption('--out <dir>', 'the run folder (config.json, checkpoint.safetensors, metrics.jsonl)')
    .option('--resume', 'continue the run in --out from its checkpoint')
    .option('--epochs <n>', 'epochs (default 120, the paper\'s)', integer(1))
    .option('--batch-size <n>', 'locations per batch (default 64)', integer(1))
    .addOption(new Option('--optimizer <name>', 'optimizer (default sgd)').choices(['sgd', 'adam', 'adamw', 'lars']))
    .option('--lr <x>', 'learning rate (default 0.01)', positiveNumber)
    .option('--temperature <x>', 'InfoNCE temperature (default 0.2)', positiveNumber)
    .option('--embedding-dim <n>', 'width of the shared embedding space (default 128)', integer(1))
    .option('--alexnet-hidden <n>', "AlexNet's fc6/fc7 width (default 4096, torchvision's)", integer(1))
    .option('--nproc <k>', 'data-parallel: launch k processes on this machine (on a cluster, set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT instead)', integer(1))
    .option('--no-sync-batch-norm', 'with several processes: BatchNorm statistics per process instead of over all')
    .option('--knn-every <n>', "the k-NN monitor's interval in epochs: 'auto' (default, within 10% of training time), n, or 0 (off)", (v: string) => (v === 'auto' ? v : integer(0)(v)))
    .option('--dist-timeout <s>', 'with several processes: how long to wait for the others before failing (default 1800)', positiveNumber))
    .action(async (flags: PretrainFlags) => {
      if (flags.nproc !== undefined && flags.nproc > 1 && process.env.WORLD_SIZE === undefined) {
        const { launch } = await import('../distributed/launch.js');
        const argv = [process.argv[1], ...process.argv.slice(2).filter((a, i, all) => a !== '--nproc' && all[i - 1] !== '--nproc' && !a.startsWith('--nproc='))];
        process.exitCode = await launch({ nproc: flags.nproc, argv });
        return;
      }
      const { readConfigFile, resolvePretrainConfig } = await import('../train/config.js');
      const { pretrain, RUN_FILES } = await import('../train/pretrain.js');
      const { describeSkipped } = await import('../train/skipped.js');
      const { readFile } = await import('node:fs/promises');
      const { join } = await import('node:path');
      const file = flags.config ? await readConfigFile(flags.config) : {};
      // A resumed run starts from its own configuration; the command line may only repeat it.
      const saved = flags.resume ? JSON.parse(await readFile(join(flags.out, RUN_FILES.config), 'utf8').catch(() => '{}')) as Record<string, unknown> : {};
      const config = resolvePretrainConfig(saved, file, fromFlags(flags));
      const { initProcessGroup } = await import('../distributed/process_group.js');
      const group = Number(process.env.WORLD_SIZE ?? 1) > 1 ? await initProcessGroup({ backend: config.device.startsWith('cuda') ? 'nccl' : 'gloo', timeoutMs: Math.round((flags.distTimeout ?? 1800) * 1000) }) : undefined;
      const bar = progress(config);
      const interrupt = stopOnInterrupt('step');
      const started = Date.now();
      const skippedLog = join(flags.out, RUN_FILES.skipped);
      const onEpochEnd = ({ epoch, skipped }: EpochSummary) => {
        if (skipped.length > 0) console.log(`epoch ${epoch + 1}/${config.epochs}: ${describeSkipped(skipped)} (all in ${skippedLog})`);
      };
      const result = await pretrain({ config, out: flags.out, resume: flags.resume, signal: interrupt.signal, onStep: bar.update, onEpoch: bar.knn, onEpochEnd, group })
        .finally(() => { bar.stop(); interrupt.dispose(); group?.destroy(); });
      if ((group?.rank ?? 0) !== 0) return;
      const minutes = ((Date.now() - started) / 60000).toFixed(1);
      const skipped = result.skipped > 0 ? `; ${result.skipped} samples skipped (${skippedLog})` : '';
      console.log(result.interrupted
        ? `${flags.out}: stopped after ${result.steps} steps (epoch ${result.epochs + 1} of ${config.epochs}); continue with --resume${skipped}. ${minutes} min`
        : `${flags.out}: ${result.epochs} epochs, ${result.steps} steps, checkpoint ${result.checkpoint}${skipped}. ${minutes} min`);
    });
}
