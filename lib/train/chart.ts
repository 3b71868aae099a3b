/**
 * A dependency-free SVG grouped bar chart, for Table 1's results: one cluster per downstream modality set, one bar
 * (and colour, Okabe-Ito's colour-blind-safe palette) per pre-training configuration. Bars carry data-series,
 * data-group and data-value attributes, so the output can be checked, not only looked at.
 */
import { invalidArg } from '../errors.js';

export interface GroupedBarChartOptions {
  title: string;
  yLabel: string;
  groups: readonly string[];
  /** values[i] is the bar for groups[i]; null: not run (a dash instead of a bar). */
  series: readonly { name: string; values: readonly (number | null)[] }[];
  /** Default: 0 (the tens below the smallest value if it is negative); yMax: the tens above the largest. */
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];
const n2 = (x: number) => String(Math.round(x * 100) / 100);
const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function check(o: GroupedBarChartOptions): void {
  const op = 'groupedBarChart';
  if (!Array.isArray(o.groups) || o.groups.length === 0) throw invalidArg(op, 'groups', 'a non-empty array of names', o.groups);
  if (!Array.isArray(o.series) || o.series.length === 0) throw invalidArg(op, 'series', 'a non-empty array', o.series);
  o.series.forEach((s, i) => {
    if (!Array.isArray(s.values) || s.values.length !== o.groups.length) throw invalidArg(op, `series[${i}].values`, `${o.groups.length} values (one per group)`, s.values);
    s.values.forEach((v: number | null, j: number) => {
      if (v !== null && !Number.isFinite(v)) throw invalidArg(op, `series[${i}].values[${j}]`, 'a finite number or null', v);
    });
  });
}

/** The y range: the options', or from zero (bars are read by their length) to the tens above the data. */
function yRange(o: GroupedBarChartOptions): [number, number] {
  const values = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const low = values.length ? Math.min(...values) : 0, high = values.length ? Math.max(...values) : 1;
  const yMin = o.yMin ?? Math.min(0, Math.floor(low / 10) * 10);
  const yMax = o.yMax ?? Math.max(yMin + 10, Math.ceil((high + 1) / 10) * 10);
  if (!(yMin < yMax)) throw invalidArg('groupedBarChart', 'yMin', `less than yMax (${yMax})`, yMin);
  return [yMin, yMax];
}

/** A tick spacing of 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw * (1 - 1e-9))!;
}

/** A complete SVG document. */
export function groupedBarChart(options: GroupedBarChartOptions): string {
  check(options);
  const { title, yLabel, groups, series, width = 960, height = 480 } = options;
  const [yMin, yMax] = yRange(options);
  const legendHeight = 22 * Math.ceil(series.length / 4);
  const plot = { left: 70, right: width - 20, top: 50, bottom: height - 60 - legendHeight };
  const y = (v: number) => plot.bottom - ((Math.min(Math.max(v, yMin), yMax) - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);
  const cluster = (plot.right - plot.left) / groups.length, bar = (cluster * 0.8) / series.length;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${n2(width / 2)}" y="24" text-anchor="middle" font-size="16">${escape(title)}</text>`,
    `<text transform="translate(18 ${n2((plot.top + plot.bottom) / 2)}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
  ];
  const step = niceStep((yMax - yMin) / 5);
  for (let v = Math.ceil(yMin / step) * step; v <= yMax + 1e-9; v += step) {
    parts.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${n2(y(v))}" y2="${n2(y(v))}" stroke="#ddd"/>`, `<text x="${plot.left - 6}" y="${n2(y(v) + 4)}" text-anchor="end">${n2(v)}</text>`);
  }
  groups.forEach((group, g) => {
    const x0 = plot.left + g * cluster + cluster * 0.1;
    parts.push(`<text x="${n2(plot.left + (g + 0.5) * cluster)}" y="${plot.bottom + 18}" text-anchor="middle">${escape(group)}</text>`);
    series.forEach((s, i) => {
      const v = s.values[g], x = x0 + i * bar;
      if (v === null) {
        parts.push(`<text x="${n2(x + bar / 2)}" y="${plot.bottom - 4}" text-anchor="middle" fill="#999">–</text>`);
        return;
      }
      const top = y(v);
      parts.push(`<rect class="bar" data-series="${escape(s.name)}" data-group="${escape(group)}" data-value="${n2(v)}" x="${n2(x)}" y="${n2(top)}" width="${n2(bar * 0.9)}" height="${n2(plot.bottom - top)}" fill="${PALETTE[i % PALETTE.length]}"/>`);
      if (bar >= 22) parts.push(`<text x="${n2(x + bar * 0.45)}" y="${n2(top - 3)}" text-anchor="middle" font-size="9">${v.toFixed(1)}</text>`);
    });
  });
  parts.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" stroke="#333"/>`);
  series.forEach((s, i) => {
    const lx = plot.left + (i % 4) * ((plot.right - plot.left) / 4), ly = plot.bottom + 40 + 22 * Math.floor(i / 4);
    parts.push(`<rect x="${n2(lx)}" y="${ly - 10}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`, `<text x="${n2(lx + 18)}" y="${ly}">${escape(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
