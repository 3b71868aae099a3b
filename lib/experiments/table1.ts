/**
 * The paper's Table 1: pre-training on none, each modality, each pair and all three with augmentations, and the
 * pairs and the triple without (the starred rows); each fine-tuned on every downstream modality set it contains
 * (the 'none' row, random initialisation, on all of them). Writes results.json, results.md laid out like the
 * paper's table (validation accuracy) and results.svg (accuracy by pre-training for each downstream set).
 *
 * Every run lives in runs/<kind>-<hash of its configuration>/ and is reused when its configuration comes again: an
 * interrupted matrix resumes (a pre-training run from its last checkpoint).
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { checkOneOf, invalidArg } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { groupedBars, renderSvg } from '../report/charts.js';
import {
  type FinetuneConfig,
  type PretrainConfig,
  resolveFinetuneConfig,
  resolvePretrainConfig,
} from '../config/index.js';
import { knnProbe } from '../eval/probe.js';
import { writeEnvironment } from '../runs/environment.js';
import { RunFolder } from '../runs/folder.js';
import {
  type FinetuneResult,
  type StepMetrics,
  TABLE1_PROTOCOLS,
  type Table1Cell,
  type Table1Protocol,
  type Table1Results,
  type Table1Scale,
} from '../runs/records.js';
import { SkipLog } from '../runs/skipped.js';
import { finetune } from '../train/finetune.js';
import { pretrain } from '../train/pretrain.js';

export interface Table1Row {
  /** 'none', 'S1', 'S1+S2', 'S1+S2*' (starred: without augmentations), ... */
  name: string;
  modalities: string[];
  augment: boolean;
}

const LABELS: Record<string, string> = { s1: 'S1', s2: 'S2', naip: 'NAIP' };
const label = (modalities: readonly string[]) => modalities.map((m) => LABELS[m] ?? m).join('+');
const SETS = [['s1'], ['s2'], ['naip'], ['s1', 's2'], ['s1', 'naip'], ['s2', 'naip'], ['s1', 's2', 'naip']];

/** The paper's rows, in its order. */
export const TABLE1_ROWS: readonly Table1Row[] = [
  { name: 'none', modalities: [], augment: true },
  ...SETS.map((modalities) => ({ name: label(modalities), modalities, augment: true })),
  ...SETS.filter((s) => s.length > 1).map((modalities) => ({
    name: `${label(modalities)}*`,
    modalities,
    augment: false,
  })),
];
/** The downstream modality sets (columns). */
export const TABLE1_COLUMNS: readonly string[][] = SETS;

/** Per scale, what pre-training and fine-tuning use beyond the defaults (the paper's: 120 and 100 epochs). */
const SCALES: Record<Table1Scale, { pretrain: Record<string, unknown>; finetune: Record<string, unknown> }> = {
  paper: { pretrain: {}, finetune: {} },
  // Minutes on two CPU cores: narrow AlexNets, NAIP at 64x64, few epochs, Adam.
  demo: {
    pretrain: {
      epochs: 100,
      batchSize: 32,
      alexnetHidden: 256,
      sizes: { naip: [64, 64] },
      optimizer: { name: 'adam', lr: 1e-3, weightDecay: 1e-6 },
    },
    finetune: {
      epochs: 30,
      batchSize: 16,
      alexnetHidden: 256,
      sizes: { naip: [64, 64] },
      optimizer: { name: 'adam', lr: 1e-3 },
    },
  },
};

export interface Table1Options {
  data: string;
  out: string;
  scale?: Table1Scale;
  /** Row names to run (default all). */
  rows?: readonly string[];
  /** Downstream sets to run, as labels ('S2', 'S2+NAIP'; default all). */
  columns?: readonly string[];
  /**
   * How each cell measures the representation: 'finetune' (the paper's: the whole model trained), 'linear' (a linear
   * classifier on frozen backbones) or 'knn' (weighted k-NN on frozen features, no training). Default 'finetune'.
   */
  protocol?: Table1Protocol;
  /**
   * The folder runs are cached in (default `out`/runs): several tables (protocols, label fractions) can share their
   * pre-training runs by naming the same one.
   */
  runs?: string;
  /** Applied to both stages (seed, threads, workers, device, ...). */
  common?: Record<string, unknown>;
  pretrain?: Record<string, unknown>;
  finetune?: Record<string, unknown>;
  signal?: AbortSignal;
  /** Told after each pre-training step. */
  onStep?: (metrics: StepMetrics) => void;
  /** Told before each run: what it is, and whether it comes from the cache. */
  onRun?: (event: {
    kind: 'pretrain' | 'finetune';
    row: string;
    column?: string;
    cached: boolean;
    dir: string;
  }) => void;
}

const hash = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 12);

function pick<T extends { name: string }>(what: string, all: readonly T[], names: readonly string[] | undefined): T[] {
  if (names === undefined) return [...all];
  return names.map(
    (n) =>
      all.find((x) => x.name === n) ??
      (() => {
        throw invalidArg('table1', what, `names among ${all.map((x) => x.name).join(', ')}`, n);
      })(),
  );
}

async function cachedPretrain(
  config: PretrainConfig,
  runs: string,
  options: Table1Options,
  row: string,
): Promise<string> {
  const dir = join(runs, `pretrain-${hash(config)}`),
    folder = new RunFolder(dir);
  const cached = folder.has('done');
  options.onRun?.({ kind: 'pretrain', row, cached, dir });
  if (cached) return dir;
  const result = await pretrain({
    config,
    out: dir,
    resume: folder.has('checkpoint'),
    signal: options.signal,
    onStep: options.onStep,
  });
  if (!result.interrupted) await folder.writeJson('done', result);
  return dir;
}

/** A fine-tuning run is short: one that was interrupted is started again, in a folder renamed into place at the end. */
async function freshFinetune(
  config: FinetuneConfig,
  dir: string,
  signal: AbortSignal | undefined,
): Promise<FinetuneResult | undefined> {
  const partial = `${dir}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  const result = await finetune({ config, out: partial, signal });
  if (result.epochs < config.epochs) return void (await rm(partial, { recursive: true, force: true }));
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return result;
}

/** The k-NN probe's configuration and reports, in a folder of its own like a fine-tuning run's (report.json last). */
async function freshKnn(config: FinetuneConfig, dir: string): Promise<FinetuneResult> {
  const folder = new RunFolder(dir);
  await folder.start();
  const result = await knnProbe(config, { skipLog: new SkipLog(folder.path('skipped')) });
  await folder.writeJson('config', config);
  await writeEnvironment(folder, config.device);
  await folder.writeJson('report', result);
  return result;
}

/** The cell, or undefined when the signal stopped its run. */
async function cachedFinetune(
  config: FinetuneConfig,
  protocol: Table1Protocol,
  runs: string,
  options: Table1Options,
  row: string,
  column: string,
): Promise<Table1Cell | undefined> {
  const dir = join(runs, `${protocol === 'knn' ? 'knn' : 'finetune'}-${hash(config)}`),
    folder = new RunFolder(dir);
  const cached = folder.has('report');
  options.onRun?.({ kind: 'finetune', row, column, cached, dir });
  const result = cached
    ? folder.readJson<FinetuneResult>('report')
    : protocol === 'knn'
      ? await freshKnn(config, dir)
      : await freshFinetune(config, dir, options.signal);
  return (
    result && {
      valAccuracy: result.val.accuracy,
      valMacroF1: result.val.macroF1,
      testAccuracy: result.test.accuracy,
      run: dir,
    }
  );
}

/** results.md: the paper's layout, validation accuracy in percent; '-' where the row does not hold the column. */
export function formatTable1(results: Table1Results): string {
  const header = `| pre-training | ${results.columns.join(' | ')} |\n|---|${results.columns.map(() => '---:').join('|')}|`;
  const rows = results.rows.map(
    (r) =>
      `| ${r.name} | ${results.columns.map((c) => (r.cells[c] ? (100 * r.cells[c].valAccuracy).toFixed(2) : '-')).join(' | ')} |`,
  );
  return `Validation accuracy (%) by pre-training (rows; * without augmentations) and downstream modalities (columns); ${PROTOCOL_NAMES[results.protocol]}, ${results.scale} scale.\n\n${header}\n${rows.join('\n')}\n`;
}

const PROTOCOL_NAMES: Record<Table1Protocol, string> = {
  finetune: 'fine-tuned',
  linear: 'linear probe on frozen backbones',
  knn: 'k-NN on frozen features',
};

/** Runs the matrix (or the chosen rows and columns) and writes the results; see the file's comment. */
export async function table1(options: Table1Options): Promise<Table1Results> {
  const { data, out, scale = 'demo', protocol = 'finetune', runs = join(out, 'runs'), common = {}, signal } = options;
  checkOneOf('table1', 'scale', scale, ['demo', 'paper']);
  checkOneOf('table1', 'protocol', protocol, TABLE1_PROTOCOLS);
  const rows = pick('rows', TABLE1_ROWS, options.rows);
  const columns = pick(
    'columns',
    TABLE1_COLUMNS.map((modalities) => ({ name: label(modalities), modalities })),
    options.columns,
  );
  await mkdir(out, { recursive: true });
  const results: Table1Results = { scale, protocol, columns: columns.map((c) => c.name), rows: [] };
  for (const row of rows) {
    if (signal?.aborted) break;
    const init =
      row.modalities.length === 0
        ? null
        : await cachedPretrain(
            resolvePretrainConfig(SCALES[scale].pretrain, common, options.pretrain ?? {}, {
              data,
              modalities: row.modalities,
              augment: row.augment,
            }),
            runs,
            options,
            row.name,
          );
    const cells: Record<string, Table1Cell> = {};
    for (const column of columns.filter((c) =>
      c.modalities.every((m) => row.modalities.length === 0 || row.modalities.includes(m)),
    )) {
      if (signal?.aborted) break;
      const config = resolveFinetuneConfig(
        SCALES[scale].finetune,
        common,
        options.finetune ?? {},
        { data, modalities: column.modalities, init },
        protocol === 'linear' ? { linearProbe: true } : {},
      );
      const cell = await cachedFinetune(config, protocol, runs, options, row.name, column.name);
      if (cell) cells[column.name] = cell;
    }
    results.rows.push({ ...row, cells });
    await write(out, results);
  }
  return results;
}

async function write(out: string, results: Table1Results): Promise<void> {
  const text = (s: string) => [new TextEncoder().encode(s)];
  await new RunFolder(out).writeJson('results', results);
  await writeFileAtomic(join(out, 'results.md'), text(formatTable1(results)));
  await writeFileAtomic(
    join(out, 'results.svg'),
    text(
      await renderSvg(
        groupedBars(
          `Table 1 (${PROTOCOL_NAMES[results.protocol]}, ${results.scale} scale): validation accuracy by pre-training`,
          'validation accuracy (%)',
          results.columns,
          results.rows.map((r) => ({
            name: r.name === 'none' ? 'none (random init)' : r.name,
            values: results.columns.map((c) => (r.cells[c] ? 100 * r.cells[c].valAccuracy : null)),
          })),
        ),
      ),
    ),
  );
}
