/**
 * The run report: one self-contained HTML page for runs side by side (`mmssl report`).
 */
export { writeReport } from './build.js';
export type { ReportOptions, ReportSummary } from './build.js';
export { readRun, readTable1 } from './runs.js';
export type { FinetuneRun, PretrainRun, Run, Table1Folder } from './runs.js';
export { embeddingMap, groupedBars, heatmap, lineChart, renderSvg } from './charts.js';
export type { BarSeries, Cell, MapPoint, Point } from './charts.js';
