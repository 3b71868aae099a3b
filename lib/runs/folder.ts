/**
 * A run folder's layout: which file holds what (named here only), reading and writing them, and what kind of run a
 * folder holds. Pre-training and fine-tuning write through `RunFolder`; loading for inference, evaluation, Table 1
 * and the report read through it.
 *
 * A pre-training run: config.json, environment.json, band-stats.json, metrics.jsonl (a line per step and per k-NN
 * evaluation), skipped.jsonl, checkpoint.safetensors. A fine-tuned run: the same first five, model.safetensors and
 * report.json. Either may gain evaluation-<split>.json (`mmssl evaluate`). A Table 1 folder: results.json (.md,
 * .svg) and runs/.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { FileError } from '../errors.js';
import { writeJsonAtomic } from '../io/atomic.js';

export const RUN_FILES = {
  config: 'config.json',
  environment: 'environment.json',
  bandStats: 'band-stats.json',
  /** What `backboneInit` loaded into each backbone, band by band. */
  backboneInit: 'backbone-init.json',
  metrics: 'metrics.jsonl',
  skipped: 'skipped.jsonl',
  /** A pre-training run's weights, optimizer and position. */
  checkpoint: 'checkpoint.safetensors',
  /** A fine-tuned model, with what inference needs in its metadata. */
  model: 'model.safetensors',
  /** A fine-tuned run's (or a probe's) validation and test reports. */
  report: 'report.json',
  /** A finished pre-training run's result, written by Table 1 (the run is reused as it is). */
  done: 'done.json',
  /** A Table 1 folder's results. */
  results: 'results.json',
} as const;
export type RunFile = keyof typeof RUN_FILES;

/** What a folder holds, told by its files: a run of either kind, a Table 1 folder, or nothing of mmssl's. */
export type FolderKind = 'pretrain' | 'finetune' | 'table1' | undefined;

/** A JSON file's value; a FileError naming the file when it cannot be read or parsed. */
export function readJson<T = unknown>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FileError(
      path,
      (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : `cannot be read: ${(e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new FileError(path, `is not valid JSON: ${(e as Error).message}`);
  }
}

export class RunFolder {
  constructor(readonly dir: string) {}

  path(file: RunFile): string {
    return join(this.dir, RUN_FILES[file]);
  }

  has(file: RunFile): boolean {
    return existsSync(this.path(file));
  }

  get kind(): FolderKind {
    if (this.has('model') || this.has('report')) return 'finetune';
    if (this.has('checkpoint')) return 'pretrain';
    if (this.has('results')) return 'table1';
    return undefined;
  }

  readJson<T>(file: RunFile): T {
    return readJson<T>(this.path(file));
  }

  /** One JSON value per line (metrics.jsonl, skipped.jsonl); none when the file is absent. */
  readLines<T>(file: RunFile): T[] {
    if (!this.has(file)) return [];
    return readFileSync(this.path(file), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l, i) => {
        try {
          return JSON.parse(l) as T;
        } catch (e) {
          throw new FileError(this.path(file), `line ${i + 1} is not JSON: ${(e as Error).message}`);
        }
      });
  }

  async writeJson(file: RunFile, value: unknown): Promise<void> {
    await writeJsonAtomic(this.path(file), value);
  }

  /** Appends records as lines (metrics.jsonl, skipped.jsonl). */
  appendLines(file: RunFile, records: readonly unknown[]): void {
    if (records.length > 0) appendFileSync(this.path(file), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  /**
   * Makes the folder for a fresh run (the caller has checked that it holds no run to keep): the files of a run that
   * stopped before it could be resumed are removed, so that they are not mixed with the new run's (metrics.jsonl
   * twice over).
   */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await Promise.all((Object.keys(RUN_FILES) as RunFile[]).map((f) => rm(this.path(f), { force: true })));
  }

  /** Where `mmssl evaluate` writes its evaluation of `split`. */
  evaluationPath(split: string): string {
    return join(this.dir, `evaluation-${split}.json`);
  }
}
