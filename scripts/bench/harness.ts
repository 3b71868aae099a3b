/**
 * The shared benchmark harness. Every `npm run bench:NAME` measures ours and its baseline in the same run and prints
 * either a readable table or, with `--json`, one object: {"bench", "rows": [{case, metric, unit, ours, baseline,
 * baselineName, gain}]}. `gain` > 1 means ours is better: baseline/ours for times and memory, ours/baseline for rates.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

import { torch } from '../../lib/index.js';

export interface Row {
  case: string;
  metric: string;
  unit: string;
  ours: number;
  baseline: number;
  baselineName: string;
  gain: number;
}

/** A row for a cost (time, memory): lower is better. */
export function costRow(
  c: string,
  metric: string,
  unit: string,
  ours: number,
  baseline: number,
  baselineName: string,
): Row {
  return { case: c, metric, unit, ours, baseline, baselineName, gain: baseline / ours };
}

/** A row for a rate (throughput): higher is better. */
export function rateRow(
  c: string,
  metric: string,
  unit: string,
  ours: number,
  baseline: number,
  baselineName: string,
): Row {
  return { case: c, metric, unit, ours, baseline, baselineName, gain: ours / baseline };
}

const round = (v: number) => Number(v.toPrecision(4));

export function report(bench: string, rows: Row[]): void {
  if (process.argv.includes('--json')) {
    const out = rows.map((r) => ({ ...r, ours: round(r.ours), baseline: round(r.baseline), gain: round(r.gain) }));
    process.stdout.write(`${JSON.stringify({ bench, rows: out })}\n`);
    return;
  }
  const header = ['case', 'metric', 'ours', 'baseline', 'gain'];
  const lines = rows.map((r) => [
    r.case,
    `${r.metric} (${r.unit})`,
    String(round(r.ours)),
    `${round(r.baseline)} (${r.baselineName})`,
    `${round(r.gain)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(
    `bench:${bench}\n${fmt(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${lines.map(fmt).join('\n')}`,
  );
}

/** Where the benchmarks that can use a GPU run: BENCH_DEVICE (default cpu; cuda in scripts/check-gpu.sh). */
export const DEVICE = (process.env.BENCH_DEVICE ?? 'cpu') as torch.Device;

/** Waits for the device's queued work, so that a timing covers it (CPU work is done when a call returns). */
export function synchronize(): void {
  if (DEVICE !== 'cpu') torch.cuda.synchronize();
}

/** Median of `repeats` timings of `fn`, in milliseconds. */
export function medianMs(fn: () => void, repeats = 5): number {
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

/** Debian's PyTorch (python3-torch) on the same LibTorch: the baselines run here. */
export const PYTHON = process.env.MMSSL_BENCH_PYTHON ?? '/usr/bin/python3';

export function pytorchVersion(): string {
  return execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).trim();
}

/** Runs a baseline script (scripts/bench/NAME.py) and parses the JSON object it prints. */
export function runPython<T>(script: string, args: (string | number)[], env: NodeJS.ProcessEnv = {}): T {
  const path = new URL(`../../../scripts/bench/${script}`, import.meta.url).pathname;
  return JSON.parse(
    execFileSync(PYTHON, [path, ...args.map(String)], { encoding: 'utf8', env: { ...process.env, ...env } }),
  ) as T;
}

/**
 * glibc returns freed blocks of at least this size to the system at once (a fixed threshold turns off its adaptive
 * one), so a process's resident set falls back after each step and its peak measures the step alone. Memory benches
 * run their measuring processes, ours and the baselines alike, with it set.
 */
export const MEASURING_ENV = { MALLOC_MMAP_THRESHOLD_: '131072' };

function residentKiB(field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(line!.split(/\s+/)[1]);
}

/** Peak resident memory `fn` adds to the process (Linux: the high-water mark is reset through /proc/self/clear_refs). */
export function peakExtraBytes(fn: () => void): number {
  writeFileSync('/proc/self/clear_refs', '5');
  const base = residentKiB('VmRSS');
  fn();
  return (residentKiB('VmHWM') - base) * 1024;
}
