/**
 * The runs a report shows, read from their folders: a pre-training run (config.json, metrics.jsonl, checkpoint), a
 * fine-tuning run (config.json, metrics.jsonl, report.json, model.safetensors), or a `mmssl table1` folder
 * (results.json, whose pre-training runs and fine-tuned cells are read in turn); with environment.json and the
 * evaluation-<split>.json files `mmssl evaluate` wrote, where present.
 */
import { readdirSync } from 'node:fs';
import { basename } from 'node:path';

import { FileError } from '../errors.js';
import type { Evaluation } from '../eval/evaluate.js';
import type { Environment } from '../runs/environment.js';
import { readJson, RunFolder } from '../runs/folder.js';
import type { FinetuneEpochRecord, FinetuneResult, KnnMetrics, StepMetrics, Table1Results } from '../runs/records.js';

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
  epochs: FinetuneEpochRecord[];
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

function base(folder: RunFolder, label: string): RunBase {
  const evaluations = Object.fromEntries(
    readdirSync(folder.dir).flatMap((f) => {
      const split = /^evaluation-(\w+)\.json$/.exec(f)?.[1];
      return split ? [[split, readJson<Evaluation>(folder.evaluationPath(split))]] : [];
    }),
  );
  const environment = folder.has('environment') ? folder.readJson<Environment>('environment') : undefined;
  return { dir: folder.dir, label, config: folder.readJson('config'), environment, evaluations };
}

/** The run in `dir`: pre-training or fine-tuning, told apart by their files. */
export function readRun(dir: string, label = basename(dir)): Run {
  const folder = new RunFolder(dir);
  const kind = folder.kind;
  if (kind === 'finetune') {
    return { ...base(folder, label), kind, epochs: folder.readLines('metrics'), result: folder.readJson('report') };
  }
  if (kind === 'pretrain') {
    const lines = folder.readLines<StepMetrics | KnnMetrics>('metrics');
    return {
      ...base(folder, label),
      kind,
      steps: lines.filter((l): l is StepMetrics => 'loss' in l),
      knn: lines.filter((l): l is KnnMetrics => 'knn' in l),
    };
  }
  throw new FileError(
    dir,
    'is not a run: no report.json (mmssl finetune), checkpoint.safetensors (mmssl pretrain) or results.json (mmssl table1)',
  );
}

export function isTable1Folder(dir: string): boolean {
  return new RunFolder(dir).kind === 'table1';
}

/** A Table 1 folder with its runs: each row's pre-training run (found through its cells' init) and every cell. */
export function readTable1(dir: string): Table1Folder {
  const results = new RunFolder(dir).readJson<Table1Results>('results');
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
