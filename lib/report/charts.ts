/**
 * The report's charts: Vega-Lite specifications, rendered to static SVG in Node by Vega (no browser, no network).
 * Vega and Vega-Lite load with the first chart rendered, not with `import 'mmssl'`.
 */
import type { TopLevelSpec } from 'vega-lite';

import { invalidArg } from '../errors.js';

const WIDTH = 380,
  HEIGHT = 220;
const CONFIG = {
  font: 'system-ui, sans-serif',
  view: { stroke: '#ddd' },
  axis: { labelFontSize: 11, titleFontSize: 11 },
  legend: { labelFontSize: 11, titleFontSize: 11, labelLimit: 220 },
};

/** The SVG of a Vega-Lite specification. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface Point {
  x: number;
  y: number;
  /** The line it belongs to: a run, or a run and a modality. */
  series: string;
}

/** Lines over x, one per series (several runs overlaid). */
export function lineChart(
  title: string,
  x: string,
  y: string,
  points: readonly Point[],
  options: { logY?: boolean; percent?: boolean } = {},
): TopLevelSpec {
  return {
    title,
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values: [...points] },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: x, axis: { tickMinStep: 1, format: 'd' } }, // steps and epochs
      y: {
        field: 'y',
        type: 'quantitative',
        title: y,
        scale: options.logY ? { type: 'log' } : { zero: false },
        axis: options.percent ? { format: '.0%' } : {},
      },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

export interface Cell {
  row: string;
  column: string;
  /** null: not run (drawn empty). */
  value: number | null;
}

/** A matrix of values as coloured cells with their numbers (Table 1, confusion matrices, per-class accuracy). */
export function heatmap(
  title: string,
  cells: readonly Cell[],
  options: { rowTitle: string; columnTitle: string; percent?: boolean; rows?: string[]; columns?: string[] },
): TopLevelSpec {
  const format = options.percent ? '.1%' : 'd';
  const rows = options.rows ?? [...new Set(cells.map((c) => c.row))],
    columns = options.columns ?? [...new Set(cells.map((c) => c.column))];
  const dark = 0.6 * Math.max(0, ...cells.map((c) => c.value ?? 0)); // white numbers on the darker cells
  return {
    title,
    config: CONFIG,
    data: { values: cells.filter((c) => c.value !== null) },
    width: Math.max(120, 46 * columns.length),
    height: Math.max(60, 24 * rows.length),
    encoding: {
      x: { field: 'column', type: 'nominal', sort: columns, title: options.columnTitle, axis: { labelAngle: -30 } },
      y: { field: 'row', type: 'nominal', sort: rows, title: options.rowTitle },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: 'value',
            type: 'quantitative',
            title: null,
            scale: { scheme: 'blues' },
            legend: options.percent ? { format: '.0%' } : {},
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: {
          text: { field: 'value', type: 'quantitative', format },
          color: { condition: { test: `datum.value > ${dark}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  } as TopLevelSpec;
}

export interface MapPoint {
  x: number;
  y: number;
  label: string;
  panel: string;
}

/** 2-D embedding maps, one panel per modality (and the fused one), points coloured by class. */
export function embeddingMap(
  title: string,
  points: readonly MapPoint[],
  panels: readonly string[],
  classes: readonly string[],
): TopLevelSpec {
  return {
    title,
    config: CONFIG,
    data: { values: [...points] },
    facet: { field: 'panel', type: 'nominal', sort: [...panels], title: null },
    columns: Math.min(4, panels.length),
    spec: {
      width: 200,
      height: 200,
      mark: { type: 'circle', size: 14, opacity: 0.75 },
      encoding: {
        x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false } },
        y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false } },
        color: { field: 'label', type: 'nominal', title: 'class', sort: [...classes], scale: { scheme: 'tableau10' } },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  } as TopLevelSpec;
}

export interface BarSeries {
  name: string;
  /** One per group; null: no bar. */
  values: readonly (number | null)[];
}

/** Grouped bars from zero: a cluster per group, a bar per series in it (Table 1's results.svg). */
export function groupedBars(
  title: string,
  yTitle: string,
  groups: readonly string[],
  series: readonly BarSeries[],
): TopLevelSpec {
  series.forEach((s, i) => {
    if (s.values.length !== groups.length)
      throw invalidArg(
        'groupedBars',
        `series[${i}].values`,
        `${groups.length} values, one per group`,
        `${s.values.length}`,
      );
    const bad = s.values.findIndex((v) => v !== null && !Number.isFinite(v));
    if (bad >= 0)
      throw invalidArg('groupedBars', `series[${i}].values[${bad}]`, 'a finite number or null', s.values[bad]);
  });
  const values = series.flatMap((s) =>
    s.values.flatMap((value, g) => (value === null ? [] : [{ group: groups[g], series: s.name, value }])),
  );
  return {
    title,
    config: CONFIG,
    data: { values },
    width: { step: 22 * Math.max(1, series.length) },
    height: HEIGHT,
    mark: 'bar',
    encoding: {
      x: { field: 'group', type: 'nominal', sort: [...groups], title: null, axis: { labelAngle: 0 } },
      xOffset: { field: 'series', type: 'nominal', sort: series.map((s) => s.name) },
      y: { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: true } },
      color: { field: 'series', type: 'nominal', sort: series.map((s) => s.name), title: null },
    },
  };
}
