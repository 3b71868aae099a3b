/**
 * The runs a report shows, read from their folders: a pre-training run (config.json, metrics.jsonl, checkpoint), a
 * fine-tuning run (config.json, metrics.jsonl, report.json, model.safetensors), or a `mmssl table1` folder
 * (results.json, whose pre-training runs and fine-tuned cells are read in turn); with environment.json and the
 * evaluation-<split>.json files `mmssl evaluate` wrote, where present.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { FileError } from '../errors.js';
import type { Evaluation } from '../train/evaluate.js';
import type { Environment } from '../train/environment.js';
import type { FinetuneEpochMetrics, FinetuneResult } from '../train/finetune.js';
import type { KnnMetrics } from '../train/knn_monitor.js';
import { readJson, type StepMetrics } from '../train/pretrain.js';
import type { Table1Results } from '../train/table1.js';

interface RunBase {
  dir: string;
  /** The name shown: the folder's, or the Table 1 row's. */
  label: string;
  config: Record<string, unknown>;
  environment?: Environment;
  evaluations: Record<string, Evaluation>;
}

export interface PretrainRun extends RunBase {
  kind: 'pretrain';
  steps: StepMetrics[];
  knn: KnnMetrics[];
}

export interface FinetuneRun extends RunBase {
  kind: 'finetune';
  epochs: FinetuneEpochMetrics[];
  result: FinetuneResult;
}

export type Run = PretrainRun | FinetuneRun;

export interface Table1Folder {
  dir: string;
  results: Table1Results;
  /** Its pre-training runs, labelled by row, and its fine-tuned cells, labelled 'row -> column'. */
  pretrain: PretrainRun[];
  cells: FinetuneRun[];
}

function readLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l) as T;
    } catch (e) {
      throw new FileError(path, `line ${i + 1} is not JSON: ${(e as Error).message}`);
    }
  });
}

function base(dir: string, label: string): RunBase {
  const environment = join(dir, 'environment.json');
  const evaluations = Object.fromEntries(readdirSync(dir).flatMap((f) => {
    const split = /^evaluation-(\w+)\.json$/.exec(f)?.[1];
    return split ? [[split, readJson<Evaluation>(join(dir, f))]] : [];
  }));
  return { dir, label, config: readJson(join(dir, 'config.json')), environment: existsSync(environment) ? readJson(environment) : undefined, evaluations };
}

/** The run in `dir`: pre-training or fine-tuning, told apart by their files. */
export function readRun(dir: string, label = basename(dir)): Run {
  if (existsSync(join(dir, 'report.json'))) {
    return { ...base(dir, label), kind: 'finetune', epochs: readLines(join(dir, 'metrics.jsonl')), result: readJson(join(dir, 'report.json')) };
  }
  if (existsSync(join(dir, 'checkpoint.safetensors'))) {
    const lines = readLines<StepMetrics | KnnMetrics>(join(dir, 'metrics.jsonl'));
    return {
      ...base(dir, label), kind: 'pretrain',
      steps: lines.filter((l): l is StepMetrics => 'loss' in l), knn: lines.filter((l): l is KnnMetrics => 'knn' in l),
    };
  }
  throw new FileError(dir, 'is not a run: no report.json (mmssl finetune), checkpoint.safetensors (mmssl pretrain) or results.json (mmssl table1)');
}

export function isTable1Folder(dir: string): boolean {
  return existsSync(join(dir, 'results.json'));
}

/** A Table 1 folder with its runs: each row's pre-training run (found through its cells' init) and every cell. */
export function readTable1(dir: string): Table1Folder {
  const results = readJson<Table1Results>(join(dir, 'results.json'));
  const pretrain = new Map<string, PretrainRun>();
  const cells: FinetuneRun[] = [];
  // Cells of tables with other protocols share row and column names: the protocol tells them apart.
  const protocol = results.protocol && results.protocol !== 'finetune' ? ` (${results.protocol})` : '';
  for (const row of results.rows) {
    for (const [column, cell] of Object.entries(row.cells)) {
      const run = readRun(cell.run, `${row.name} -> ${column}${protocol}`) as FinetuneRun;
      cells.push(run);
      const init = run.config.init as string | null;
      if (init && !pretrain.has(init)) pretrain.set(init, readRun(init, row.name) as PretrainRun);
    }
  }
  return { dir, results, pretrain: [...pretrain.values()], cells };
}
