/**
 * The samples a run leaves out under `onBadSample: 'skip'`: each written once per phase (band statistics, training,
 * the k-NN monitor, an evaluation split) to skipped.jsonl in the run folder with its reason, so that nothing about a
 * run hides that some of its data were never seen. The default policy, 'raise', stops at the first such sample.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

import type { SkippedSample } from '../data/dataset.js';

/** Where a sample was left out: computing band statistics, training, the k-NN monitor, or evaluating a split. */
export type SkipPhase = 'stats' | 'train' | 'knn' | 'val' | 'test';

export interface SkipRecord extends SkippedSample {
  phase: SkipPhase;
}

export class SkipLog {
  readonly #logged = new Set<string>();
  readonly #ids = new Set<string>();

  /** `path`: the run's skipped.jsonl (kept from earlier sessions of a resumed run), or undefined to keep none. */
  constructor(readonly path: string | undefined) {
    if (!path || !existsSync(path)) return;
    for (const line of readFileSync(path, 'utf8').split('\n'))
      if (line !== '') this.#remember(JSON.parse(line) as SkipRecord);
  }

  #remember(record: SkipRecord): boolean {
    const key = `${record.phase}\0${record.id}`;
    if (this.#logged.has(key)) return false;
    this.#logged.add(key);
    this.#ids.add(record.id);
    return true;
  }

  /** Logs the samples of `phase` not logged for it before; returns them. */
  add(phase: SkipPhase, samples: readonly SkippedSample[]): SkipRecord[] {
    const fresh = samples.map((s) => ({ phase, ...s })).filter((r) => this.#remember(r));
    if (this.path && fresh.length > 0) appendFileSync(this.path, fresh.map((r) => `${JSON.stringify(r)}\n`).join(''));
    return fresh;
  }

  /** Distinct samples left out in any phase. */
  get count(): number {
    return this.#ids.size;
  }
}

/**
 * 'N samples skipped: id (reason); ...' naming the first `shown`; a sample skipped in several phases (statistics and
 * training) is one sample.
 */
export function describeSkipped(samples: readonly SkippedSample[], shown = 3): string {
  const distinct = [...new Map(samples.map((s) => [s.id, s])).values()];
  const named = distinct
    .slice(0, shown)
    .map((s) => `${s.id} (${s.message})`)
    .join('; ');
  const more = distinct.length > shown ? `; and ${distinct.length - shown} more` : '';
  return `${distinct.length} sample${distinct.length === 1 ? '' : 's'} skipped: ${named}${more}`;
}
