// The Table 1 runner on a few rows and columns at a tiny scale: which cells run, the paper's layout in results.md,
// the chart, the cache that makes a second run instant, and embeddings from its runs.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { encodeGeoTiff } from '../../lib/data/formats/geotiff.js';
import { decodeNpy } from '../../lib/data/formats/npy.js';
import { openMeterML } from '../../lib/data/meterml.js';
import { synthesize } from '../../lib/data/synth/index.js';
import { groupedBarChart } from '../../lib/train/chart.js';
import { embed } from '../../lib/train/embed.js';
import { formatTable1, table1, TABLE1_COLUMNS, TABLE1_ROWS, type Table1Options } from '../../lib/train/table1.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-table1-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const ready = synthesize({ out: data, perClass: 4, seed: 8, holdout: { val: 0.25, test: 0.25 } });

const options = (events: unknown[]): Table1Options => ({
  data, out: join(scratch, 'table'), scale: 'demo', rows: ['none', 'S2', 'S1+S2*'], columns: ['S2', 'NAIP', 'S1+S2'],
  common: { alexnetHidden: 32, batchSize: 4, threads: 1, workers: 1, seed: 1 },
  pretrain: { epochs: 1, hiddenDim: 32, embeddingDim: 16 }, finetune: { epochs: 1 },
  onRun: (e) => events.push(e),
});

test('the paper\'s rows and columns: none, 7 augmented sets, 4 starred ones; 7 downstream sets', (t) => {
  t.deepEqual(TABLE1_ROWS.map((r) => r.name), ['none', 'S1', 'S2', 'NAIP', 'S1+S2', 'S1+NAIP', 'S2+NAIP', 'S1+S2+NAIP', 'S1+S2*', 'S1+NAIP*', 'S2+NAIP*', 'S1+S2+NAIP*']);
  t.deepEqual(TABLE1_ROWS.filter((r) => !r.augment).map((r) => r.modalities.length), [2, 2, 2, 3]);
  t.is(TABLE1_COLUMNS.length, 7);
});

test.serial('runs each row on the columns it holds, writes the table, the chart and the JSON; a second run comes from the cache', async (t) => {
  await ready;
  const events: { kind: string; row: string; column?: string; cached: boolean }[] = [];
  const results = await table1(options(events));
  t.deepEqual(events.map((e) => `${e.kind} ${e.row}${e.column ? ` ${e.column}` : ''}`), [
    'finetune none S2', 'finetune none NAIP', 'finetune none S1+S2',
    'pretrain S2', 'finetune S2 S2',
    'pretrain S1+S2*', 'finetune S1+S2* S2', 'finetune S1+S2* S1+S2',
  ]);
  t.true(events.every((e) => !e.cached));
  const md = readFileSync(join(scratch, 'table', 'results.md'), 'utf8');
  const line = (row: string) => md.split('\n').find((l) => l.startsWith(`| ${row} |`))!.split('|').slice(2, -1).map((c) => c.trim());
  t.true(md.includes('| pre-training | S2 | NAIP | S1+S2 |'));
  t.deepEqual(line('S2').map((c) => c === '-'), [false, true, true]);
  t.deepEqual(line('S1+S2*').map((c) => c === '-'), [false, true, false]);
  t.is(line('none')[1], (100 * results.rows[0].cells.NAIP.valAccuracy).toFixed(2));
  t.is(md, formatTable1(results));
  t.deepEqual(JSON.parse(readFileSync(join(scratch, 'table', 'results.json'), 'utf8')), results);
  const svg = readFileSync(join(scratch, 'table', 'results.svg'), 'utf8');
  const bars = execFileSync('/usr/bin/python3', ['-c', 'import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.read()); print(sum(1 for e in r.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "bar"))'], { input: svg, encoding: 'utf8' });
  t.is(Number(bars), 3 + 1 + 2, 'one bar per cell run');

  const again: typeof events = [];
  t.deepEqual(await table1(options(again)), results);
  t.is(again.length, events.length);
  t.true(again.every((e) => e.cached));
});

test.serial('embed: fused features of a pre-training run, one row per readable sample, columns per modality', async (t) => {
  await ready;
  const events: { kind: string; row: string; dir: string }[] = [];
  await table1({ ...options(events), rows: ['S1+S2*'], columns: ['S1+S2'] });
  const run = events.find((e) => e.kind === 'pretrain')!.dir;
  const index = await embed({ init: run, data, out: join(scratch, 'emb', 'all'), workers: 1 });
  const fused = decodeNpy(readFileSync(join(scratch, 'emb', 'all.npy')), 'all.npy');
  t.deepEqual(index.columns, { s1: [0, 32], s2: [32, 64] });
  t.deepEqual(fused.shape, [index.ids.length, 64]);
  t.true(index.ids.length >= 26 && index.ids.length <= 28, `${index.ids.length} of 28 samples (the broken ones skipped)`);
  const perModality = await embed({ init: run, data, out: join(scratch, 'emb', 'each'), perModality: true, workers: 1, modalities: ['s2'] });
  const s2 = decodeNpy(readFileSync(join(scratch, 'emb', 'each.s2.npy')), 'each.s2.npy');
  t.true(index.ids.every((id) => perModality.ids.includes(id)), 's2 alone reads every sample the fused s1+s2 does (and the one lacking s1)');
  t.is(perModality.ids.length, index.ids.length + 1);
  const row = perModality.ids.indexOf(index.ids[0]);
  t.deepEqual(Array.from(s2.data as Float32Array).slice(row * 32, row * 32 + 32), Array.from(fused.data as Float32Array).slice(32, 64), 'the same features, fused or not');

  // loose GeoTIFF files of one modality: the same features as the same rasters read from the dataset
  const dataset = await openMeterML(data);
  const files = await Promise.all([0, 1].map(async (k) => {
    const { shape: [c, h, w], data: values } = await dataset.read(dataset.samples.findIndex((s) => s.id === index.ids[k]), 's2');
    const interleaved = Uint16Array.from({ length: c * h * w }, (_, i) => values[(i % c) * h * w + Math.floor(i / c)]);
    const file = join(scratch, `tile${k}.tif`);
    writeFileSync(file, encodeGeoTiff({ width: w, height: h, bands: c, data: interleaved, origin: [0, 0], pixelSize: 1e-4 }));
    return file;
  }));
  const loose = await embed({ init: run, data: files, out: join(scratch, 'emb', 'loose'), modalities: ['s2'], workers: 1 });
  t.deepEqual(loose.ids, files);
  const features = Array.from(decodeNpy(readFileSync(join(scratch, 'emb', 'loose.npy')), 'loose.npy').data as Float32Array);
  for (const k of [0, 1]) {
    const expected = Array.from(fused.data as Float32Array).slice(k * 64 + 32, k * 64 + 64);
    t.true(features.slice(k * 32, k * 32 + 32).every((v, i) => Math.abs(v - expected[i]) <= 1e-5 * (1 + Math.abs(expected[i]))), `tile ${k}`);
  }
  await t.throwsAsync(embed({ init: run, data: files, out: join(scratch, 'emb', 'x'), workers: 1 }), { code: 'ERR_MMSSL_ARG', message: /exactly one modality/ });
});

test('the chart: bar heights proportional to the values, clusters in group order, escaped names, errors', (t) => {
  const svg = groupedBarChart({ title: 'a & b', yLabel: 'y', groups: ['G<1>', 'G2'], series: [{ name: 'x "1"', values: [50, null] }, { name: 'y', values: [75, 100] }], yMin: 0, yMax: 100 });
  const bars = [...svg.matchAll(/<rect class="bar" data-series="([^"]*)" data-group="([^"]*)" data-value="([^"]*)" x="([^"]*)" y="([^"]*)" width="([^"]*)" height="([^"]*)"/g)]
    .map((m) => ({ series: m[1], group: m[2], value: Number(m[3]), x: Number(m[4]), height: Number(m[7]) }));
  t.deepEqual(bars.map((b) => [b.series, b.group]), [['x &quot;1&quot;', 'G&lt;1&gt;'], ['y', 'G&lt;1&gt;'], ['y', 'G2']]);
  const unit = bars[0].height / 50;
  for (const b of bars) t.true(Math.abs(b.height - unit * b.value) < 0.02, `${b.value}: ${b.height}`);
  t.true(bars[0].x < bars[1].x && bars[1].x < bars[2].x);
  t.true(svg.includes('a &amp; b'));
  t.throws(() => groupedBarChart({ title: '', yLabel: '', groups: ['a'], series: [{ name: 's', values: [1, 2] }] }), { code: 'ERR_MMSSL_ARG', message: /values/ });
  t.throws(() => groupedBarChart({ title: '', yLabel: '', groups: ['a'], series: [{ name: 's', values: [Number.NaN] }] }), { code: 'ERR_MMSSL_ARG' });
  t.throws(() => groupedBarChart({ title: '', yLabel: '', groups: ['a'], series: [{ name: 's', values: [1] }], yMin: 5, yMax: 5 }), { code: 'ERR_MMSSL_ARG', message: /yMin/ });
});
