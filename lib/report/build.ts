/**
 * `mmssl report RUN [RUN ...] --out report.html`: one static page for one or several runs side by side (curves
 * overlaid, tables with a column per run): pre-training curves (loss, learning rate, throughput, the collapse
 * monitor, k-NN accuracy), the Table 1 matrix as a heat map for a table1 folder, fine-tuning curves, per-class
 * accuracy and confusion matrices, accuracy per modality subset, cross-modal retrieval beside random
 * initialisation, 2-D maps of the embeddings (PCA and UMAP, a panel per modality and one for the fused embedding)
 * coloured by class, and each run's configuration and environment.
 *
 * Retrieval and modality subsets come from the run's evaluation-<split>.json (`mmssl evaluate`), computed for the
 * report when missing (run folders are only read); the maps and those evaluations need the dataset (`data`, else the
 * one in the run's configuration).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

import { FileError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { CLASSES, NEGATIVE, type Split } from '../data/dataset.js';
import { decodeNpy } from '../data/formats/npy.js';
import { Random } from '../data/random.js';
import { embed } from '../eval/embed.js';
import { evaluateRun, type RetrievalTable } from '../eval/evaluate.js';
import type { RetrievalResult } from '../eval/retrieval.js';
import { embeddingMap, heatmap, lineChart, type MapPoint, type Point, renderSvg } from './charts.js';
import { figure, page, type Section, table } from './html.js';
import { pca2, umap2 } from './projection.js';
import {
  type FinetuneRun,
  isTable1Folder,
  type PretrainRun,
  readRun,
  readTable1,
  type Run,
  type Table1Folder,
} from './runs.js';

export interface ReportOptions {
  /** Run folders (pre-training, fine-tuning) and table1 folders. */
  runs: readonly string[];
  /** The HTML file written (atomically). */
  out: string;
  /** The dataset for the maps and missing evaluations (default: each run's own). */
  data?: string;
  /** The split evaluated and mapped (default 'val'). */
  split?: Split;
  /** Embedding maps (default true). */
  maps?: boolean;
  /** Points per map at most, a seeded subset (default 1000). */
  mapPoints?: number;
  onProgress?: (what: string) => void;
}

export interface ReportSummary {
  path: string;
  charts: number;
  sections: string[];
}

/** Writes the report; see the file's comment. */
export async function writeReport(options: ReportOptions): Promise<ReportSummary> {
  const { runs: dirs, out, split = 'val', maps = true, mapPoints = 1000, onProgress } = options;
  if (dirs.length === 0) throw new FileError(out, 'needs at least one run folder to report on');
  const tables: Table1Folder[] = [],
    byDir = new Map<string, Run>();
  for (const dir of dirs) {
    if (!existsSync(dir)) throw new FileError(dir, 'does not exist');
    if (isTable1Folder(dir)) {
      const t = readTable1(dir);
      tables.push(t);
      for (const r of t.pretrain) if (!byDir.has(resolve(r.dir))) byDir.set(resolve(r.dir), r); // tables sharing their runs
    } else {
      byDir.set(resolve(dir), readRun(dir));
    }
  }
  const runs = [...byDir.values()];
  const pretrained = runs.filter((r): r is PretrainRun => r.kind === 'pretrain');
  const finetuned = runs.filter((r): r is FinetuneRun => r.kind === 'finetune');
  const cells = tables.flatMap((t) => t.cells);
  const dataOf = (run: Run) =>
    options.data ?? (typeof run.config.data === 'string' && existsSync(run.config.data) ? run.config.data : undefined);
  for (const run of runs) {
    const data = dataOf(run);
    if (!run.evaluations[split] && data) {
      onProgress?.(`evaluating ${run.label}`);
      run.evaluations[split] = await evaluateRun({ init: run.dir, data, split, seed: 0 });
    }
  }
  const charts: string[] = [];
  const chart = async (spec: Parameters<typeof renderSvg>[0], caption: string) => {
    charts.push(caption);
    return figure(await renderSvg(spec), caption);
  };
  const sections: Section[] = [];
  for (const t of tables) sections.push(await table1Section(t, chart));
  if (pretrained.length > 0) sections.push(await pretrainSection(pretrained, chart));
  const retrievals = pretrained.filter((r) => r.evaluations[split]?.retrieval);
  if (retrievals.length > 0) sections.push(retrievalSection(retrievals, split));
  if (maps) {
    for (const run of [...pretrained, ...finetuned]) {
      const data = dataOf(run);
      if (!data) continue;
      onProgress?.(`mapping ${run.label}'s embeddings`);
      sections.push(await mapSection(run, data, split, mapPoints, chart));
    }
  }
  if (finetuned.length + cells.length > 0)
    sections.push(await finetuneSection([...finetuned, ...cells], finetuned, split, chart));
  sections.push(configurationSection(runs));
  const title = `mmssl report: ${dirs.map((d) => basename(resolve(d))).join(', ')}`;
  const html = page(
    title,
    `Generated ${new Date().toISOString()} from ${dirs.join(', ')}. Split evaluated and mapped: ${split}.`,
    sections,
  );
  await writeFileAtomic(out, [new TextEncoder().encode(html)]);
  return { path: out, charts: charts.length, sections: sections.map((s) => s.title) };
}

type Chart = (spec: Parameters<typeof renderSvg>[0], caption: string) => Promise<string>;

async function table1Section(t: Table1Folder, chart: Chart): Promise<Section> {
  const { results } = t;
  const values = results.rows.flatMap((r) =>
    results.columns.map((c) => ({ row: r.name, column: c, value: r.cells[c]?.valAccuracy ?? null })),
  );
  const figureHtml = await chart(
    heatmap(`Table 1: validation accuracy (${results.protocol ?? 'finetune'}, ${results.scale} scale)`, values, {
      rowTitle: 'pre-training',
      columnTitle: 'downstream modalities',
      percent: true,
      rows: results.rows.map((r) => r.name),
      columns: results.columns,
    }),
    `${t.dir}: rows are pre-training sets (* without augmentations, none is random initialisation), columns the downstream modalities; empty where a row does not hold a column.`,
  );
  return { title: `Table 1 (${t.dir})`, blocks: [figureHtml] };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Per-step values averaged per epoch (the x of throughput and monitor curves, less noisy than steps). */
function perEpoch(run: PretrainRun, value: (m: PretrainRun['steps'][number]) => number): Point[] {
  const byEpoch = new Map<number, number[]>();
  for (const m of run.steps) byEpoch.set(m.epoch + 1, [...(byEpoch.get(m.epoch + 1) ?? []), value(m)]);
  return [...byEpoch].map(([x, ys]) => ({ x, y: mean(ys), series: run.label }));
}

async function pretrainSection(runs: PretrainRun[], chart: Chart): Promise<Section> {
  const modalities = (run: PretrainRun) => Object.keys(run.steps[0]?.std ?? {});
  const blocks = [
    await chart(
      lineChart(
        'Pre-training loss',
        'step',
        'InfoNCE loss',
        runs.flatMap((r) => r.steps.map((m) => ({ x: m.step, y: m.loss, series: r.label }))),
      ),
      'The multi-positive InfoNCE loss per step.',
    ),
    await chart(
      lineChart(
        'Learning rate',
        'step',
        'learning rate',
        runs.flatMap((r) => r.steps.map((m) => ({ x: m.step, y: m.lr, series: r.label }))),
      ),
      'The schedule, per step.',
    ),
    await chart(
      lineChart(
        'Throughput',
        'epoch',
        'locations / s',
        runs.flatMap((r) => perEpoch(r, (m) => m.locationsPerSecond)),
      ),
      'Locations per second, mean per epoch.',
    ),
    await chart(
      lineChart(
        'k-NN accuracy',
        'epoch',
        'validation accuracy',
        runs.flatMap((r) => r.knn.map((m) => ({ x: m.epoch, y: m.knn.accuracy, series: r.label }))),
        { percent: true },
      ),
      "The online k-NN monitor: validation samples classified by their 20 nearest training samples (weighted votes) in the backbones' fused features.",
    ),
    await chart(
      lineChart(
        'Embedding spread',
        'epoch',
        'mean per-dimension std',
        runs.flatMap((r) =>
          modalities(r).flatMap((mod) =>
            perEpoch(r, (m) => m.std[mod]).map((p) => ({ ...p, series: `${r.label} · ${mod}` })),
          ),
        ),
      ),
      'Collapse monitor: per modality, the spread of the normalised embeddings (about 1/sqrt(d) when spread over the sphere, 0 when collapsed).',
    ),
    await chart(
      lineChart(
        'Alignment and uniformity',
        'epoch',
        'value',
        runs.flatMap((r) => [
          ...perEpoch(r, (m) => m.alignment).map((p) => ({ ...p, series: `${r.label} · alignment` })),
          ...perEpoch(r, (m) => m.uniformity).map((p) => ({ ...p, series: `${r.label} · uniformity` })),
        ]),
      ),
      "Wang & Isola's alignment (positives' mean squared distance) and uniformity (lower is more uniform), mean per epoch.",
    ),
  ];
  return { title: 'Pre-training', intro: 'Curves of every pre-training run, overlaid.', blocks };
}

function retrievalSection(runs: PretrainRun[], split: Split): Section {
  const fmt = (r: RetrievalResult | undefined) =>
    r
      ? `${(100 * r.recall[1]).toFixed(1)} / ${(100 * r.recall[5]).toFixed(1)} / ${(100 * r.recall[10]).toFixed(1)} / ${r.medianRank}`
      : '-';
  const evaluation = (r: PretrainRun) => r.evaluations[split]!.retrieval!;
  const keys = [
    ...new Set(
      runs.flatMap((r) => [
        ...Object.keys(evaluation(r).pretrained.crossModal),
        ...Object.keys(evaluation(r).pretrained.views).map((m) => `${m} view -> view`),
      ]),
    ),
  ];
  const cell = (t: RetrievalTable, key: string) =>
    key.endsWith(' view -> view') ? t.views[key.replace(' view -> view', '')] : t.crossModal[key];
  const rows = keys.map((k) => [
    k.replace('->', '→'),
    ...runs.flatMap((r) => [fmt(cell(evaluation(r).pretrained, k)), fmt(cell(evaluation(r).random, k))]),
  ]);
  return {
    title: 'Cross-modal retrieval',
    intro: `Finding each location of the ${split} split (${runs.map((r) => `${r.label}: ${r.evaluations[split]!.locations}`).join(', ')} locations) from its embedding in another modality, or from another augmented view: recall@1 / @5 / @10 (%) and median rank, beside the same architecture at random initialisation.`,
    blocks: [table(['query → gallery', ...runs.flatMap((r) => [r.label, `${r.label} (random init)`])], rows)],
  };
}

/** The run's backbone features of the split: per modality and fused, with the samples' class names. */
async function features(run: Run, data: string, split: Split, limit: number) {
  const dir = await mkdtemp(join(tmpdir(), 'mmssl-report-'));
  try {
    const index = await embed({
      init: run.dir,
      data,
      out: join(dir, 'emb'),
      perModality: true,
      splits: [split],
      workers: 2,
    });
    const chosen = index.ids.map((_, i) => i);
    const kept =
      chosen.length > limit
        ? new Random(0)
            .shuffle([...chosen])
            .slice(0, limit)
            .sort((a, b) => a - b)
        : chosen;
    const className = (i: number) => (index.labels[i] >= 0 ? CLASSES[index.labels[i]] : NEGATIVE);
    const modalities = Object.keys(index.columns);
    const arrays = Object.fromEntries(
      modalities.map((m) => {
        const { data: values, shape } = decodeNpy(readFileSync(join(dir, `emb.${m}.npy`)), `emb.${m}.npy`);
        const width = shape[1];
        const rows = new Float32Array(kept.length * width);
        kept.forEach((i, k) => rows.set((values as Float32Array).subarray(i * width, (i + 1) * width), k * width));
        return [m, { rows, width }];
      }),
    );
    const fusedWidth = modalities.reduce((s, m) => s + arrays[m].width, 0);
    const fused = new Float32Array(kept.length * fusedWidth);
    kept.forEach((_, k) => {
      let at = k * fusedWidth;
      for (const m of modalities) {
        fused.set(arrays[m].rows.subarray(k * arrays[m].width, (k + 1) * arrays[m].width), at);
        at += arrays[m].width;
      }
    });
    const panels = modalities.length > 1 ? { ...arrays, fused: { rows: fused, width: fusedWidth } } : arrays;
    return { panels, labels: kept.map(className) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function mapSection(run: Run, data: string, split: Split, limit: number, chart: Chart): Promise<Section> {
  const { panels, labels } = await features(run, data, split, limit);
  const n = labels.length;
  const names = Object.keys(panels);
  type Projection = (rows: Float32Array, n: number, d: number) => [number, number][] | Promise<[number, number][]>;
  const points = async (project: Projection): Promise<MapPoint[]> =>
    (
      await Promise.all(
        names.map(async (panel) => {
          const { rows, width } = panels[panel as keyof typeof panels];
          return (await project(rows, n, width)).map(([x, y], i) => ({ x, y, label: labels[i], panel }));
        }),
      )
    ).flat();
  const classes = [...CLASSES, NEGATIVE];
  if (n < 3)
    return { title: `Embeddings of ${run.label}`, intro: `Too few ${split} samples to map (${n}).`, blocks: [] };
  return {
    title: `Embeddings of ${run.label}`,
    intro: `The backbones' features of the ${n} ${split} samples${n === limit ? ' (a seeded subset)' : ''}, per modality and fused (concatenated, as fine-tuning sees them), in two dimensions, coloured by class.`,
    blocks: [
      await chart(
        embeddingMap(`PCA: ${run.label}`, await points(pca2), names, classes),
        'The two leading principal components.',
      ),
      await chart(
        embeddingMap(
          `UMAP: ${run.label}`,
          await points((rows, count, width) => umap2(rows, count, width)),
          names,
          classes,
        ),
        'UMAP (umap-js, 15 neighbours, seeded).',
      ),
    ],
  };
}

async function finetuneSection(
  runs: FinetuneRun[],
  standalone: FinetuneRun[],
  split: Split,
  chart: Chart,
): Promise<Section> {
  const classNames = runs[0].result.classNames;
  const perClass = runs.flatMap((r) =>
    r.result.classNames.map((c, i) => ({ row: r.label, column: c, value: r.result.val.perClassAccuracy[i] })),
  );
  const blocks = [
    await chart(
      lineChart(
        'Fine-tuning loss',
        'epoch',
        'cross-entropy',
        standalone.flatMap((r) => r.epochs.map((m) => ({ x: m.epoch + 1, y: m.loss, series: r.label }))),
      ),
      'Training loss per epoch.',
    ),
    await chart(
      lineChart(
        'Validation accuracy',
        'epoch',
        'accuracy',
        runs.flatMap((r) => r.epochs.map((m) => ({ x: m.epoch + 1, y: m.valAccuracy, series: r.label }))),
        { percent: true },
      ),
      'Validation accuracy after each epoch.',
    ),
    await chart(
      heatmap('Per-class validation accuracy', perClass, {
        rowTitle: 'run',
        columnTitle: 'class',
        percent: true,
        rows: runs.map((r) => r.label),
        columns: classNames,
      }),
      'Recall of each class on the validation split (empty: no validation sample of that class).',
    ),
  ];
  for (const r of standalone) {
    const matrix = r.result.val.confusionMatrix;
    blocks.push(
      await chart(
        heatmap(
          `Confusion matrix: ${r.label}`,
          matrix.flatMap((row, i) =>
            row.map((v, j) => ({ row: r.result.classNames[i], column: r.result.classNames[j], value: v })),
          ),
          {
            rowTitle: 'true class',
            columnTitle: 'predicted',
            rows: r.result.classNames,
            columns: r.result.classNames,
          },
        ),
        `Validation split, ${r.result.val.total} samples.`,
      ),
    );
  }
  const subsets = standalone.filter((r) => r.evaluations[split]?.subsets);
  if (subsets.length > 0) {
    const keys = [
      ...new Set(subsets.flatMap((r) => r.evaluations[split]!.subsets!.map((s) => s.modalities.join('+')))),
    ];
    blocks.push(
      table(
        ['modalities present', ...subsets.map((r) => r.label)],
        keys.map((k) => [
          k,
          ...subsets.map((r) => {
            const s = r.evaluations[split]!.subsets!.find((x) => x.modalities.join('+') === k);
            return s ? `${(100 * s.accuracy).toFixed(1)}%` : '-';
          }),
        ]),
        `Accuracy on the ${split} split with only these modalities; the others replaced by the missing token.`,
      ),
    );
  }
  const reports = runs.map((r) => [
    r.label,
    `${(100 * r.result.val.accuracy).toFixed(1)}%`,
    `${(100 * r.result.val.macroF1).toFixed(1)}%`,
    `${(100 * r.result.test.accuracy).toFixed(1)}%`,
    String(r.result.trainSamples),
  ]);
  blocks.push(table(['run', 'val accuracy', 'val macro F1', 'test accuracy', 'labelled train samples'], reports));
  return { title: 'Fine-tuning', blocks };
}

/** Nested configuration values as dotted keys. */
function flatten(value: unknown, prefix = ''): [string, string][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  }
  return [[prefix, typeof value === 'string' ? value : JSON.stringify(value)]];
}

function configurationSection(runs: Run[]): Section {
  const entries = runs.map((r) => new Map([...flatten(r.config), ...flatten(r.environment ?? {}, 'environment')]));
  const keys = [...new Set(entries.flatMap((e) => [...e.keys()]))].sort();
  return {
    title: 'Configuration and environment',
    intro: "Each run's resolved configuration and what it ran on (mmssl, LibTorch, Node, device, threads).",
    blocks: [
      table(
        ['', ...runs.map((r) => r.label)],
        keys.map((k) => [k, ...entries.map((e) => e.get(k) ?? '-')]),
      ),
    ],
  };
}
