// The Table 1 runner on a few rows and columns at a tiny scale: which cells run, the paper's layout in results.md,
// the chart, the cache that makes a second run instant, and embeddings from its runs.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { encodeGeoTiff } from '../../lib/data/formats/geotiff.js';
import { decodeNpy } from '../../lib/data/formats/npy.js';
import { openMeterML } from '../../lib/data/meterml.js';
import { synthesize } from '../../lib/data/synth/index.js';
import { DataLoader } from '../../lib/data/loader.js';
import { loadOrComputeBandStats } from '../../lib/data/stats.js';
import { evaluation, torch } from '../../lib/index.js';
import { FusionClassifier } from '../../lib/nn/models/multimodal.js';
import { groupedBars, renderSvg } from '../../lib/report/charts.js';
import { embed } from '../../lib/eval/embed.js';
import { formatTable1, table1, TABLE1_COLUMNS, TABLE1_ROWS, type Table1Options } from '../../lib/experiments/table1.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-table1-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const ready = synthesize({ out: data, perClass: 4, seed: 8, holdout: { val: 0.25, test: 0.25 } });

const options = (events: unknown[]): Table1Options => ({
  data,
  out: join(scratch, 'table'),
  scale: 'demo',
  rows: ['none', 'S2', 'S1+S2*'],
  columns: ['S2', 'NAIP', 'S1+S2'],
  common: { alexnetHidden: 32, batchSize: 4, threads: 1, workers: 1, seed: 1, onBadSample: 'skip' },
  pretrain: { epochs: 1, hiddenDim: 32, embeddingDim: 16 },
  finetune: { epochs: 1 },
  onRun: (e) => events.push(e),
});

test("the paper's rows and columns: none, 7 augmented sets, 4 starred ones; 7 downstream sets", (t) => {
  t.deepEqual(
    TABLE1_ROWS.map((r) => r.name),
    [
      'none',
      'S1',
      'S2',
      'NAIP',
      'S1+S2',
      'S1+NAIP',
      'S2+NAIP',
      'S1+S2+NAIP',
      'S1+S2*',
      'S1+NAIP*',
      'S2+NAIP*',
      'S1+S2+NAIP*',
    ],
  );
  t.deepEqual(
    TABLE1_ROWS.filter((r) => !r.augment).map((r) => r.modalities.length),
    [2, 2, 2, 3],
  );
  t.is(TABLE1_COLUMNS.length, 7);
});

test.serial(
  'runs each row on the columns it holds, writes the table, the chart and the JSON; a second run comes from the cache',
  async (t) => {
    await ready;
    const events: { kind: string; row: string; column?: string; cached: boolean }[] = [];
    const results = await table1(options(events));
    t.deepEqual(
      events.map((e) => `${e.kind} ${e.row}${e.column ? ` ${e.column}` : ''}`),
      [
        'finetune none S2',
        'finetune none NAIP',
        'finetune none S1+S2',
        'pretrain S2',
        'finetune S2 S2',
        'pretrain S1+S2*',
        'finetune S1+S2* S2',
        'finetune S1+S2* S1+S2',
      ],
    );
    t.true(events.every((e) => !e.cached));
    const md = readFileSync(join(scratch, 'table', 'results.md'), 'utf8');
    const line = (row: string) =>
      md
        .split('\n')
        .find((l) => l.startsWith(`| ${row} |`))!
        .split('|')
        .slice(2, -1)
        .map((c) => c.trim());
    t.true(md.includes('| pre-training | S2 | NAIP | S1+S2 |'));
    t.deepEqual(
      line('S2').map((c) => c === '-'),
      [false, true, true],
    );
    t.deepEqual(
      line('S1+S2*').map((c) => c === '-'),
      [false, true, false],
    );
    t.is(line('none')[1], (100 * results.rows[0].cells.NAIP.valAccuracy).toFixed(2));
    t.is(md, formatTable1(results));
    t.deepEqual(JSON.parse(readFileSync(join(scratch, 'table', 'results.json'), 'utf8')), results);
    const svg = readFileSync(join(scratch, 'table', 'results.svg'), 'utf8');
    t.is(bars(svg).length, 3 + 1 + 2, 'one bar per cell run');

    const again: typeof events = [];
    t.deepEqual(await table1(options(again)), results);
    t.is(again.length, events.length);
    t.true(again.every((e) => e.cached));
  },
);

test.serial(
  'the k-NN and linear protocols: frozen backbones, the same pre-training runs; k-NN at random init by hand',
  async (t) => {
    await ready;
    const events: { kind: string; row: string; cached: boolean; dir: string }[] = [];
    const knn = await table1({ ...options(events), rows: ['none', 'S2'], columns: ['S2'], protocol: 'knn' });
    t.is(knn.protocol, 'knn');
    t.deepEqual(
      events.map((e) => [e.kind, e.row, e.cached]),
      [
        ['finetune', 'none', false],
        ['pretrain', 'S2', true],
        ['finetune', 'S2', false],
      ],
    );
    t.true(events.filter((e) => e.kind === 'finetune').every((e) => /runs\/knn-/.test(e.dir)));
    t.regex(formatTable1(knn), /k-NN on frozen features, demo scale/);
    // The random-initialisation cell by hand: the seeded backbone, features of the labelled train and val samples, k-NN.
    const dataset = await openMeterML(data);
    const normalization = await loadOrComputeBandStats(dataset, {
      modalities: ['s2'],
      maxSamples: 2000,
      seed: 1,
      workers: 1,
      onBadSample: 'skip',
    });
    torch.manualSeed(1);
    using model = new FusionClassifier({ modalities: { s2: 4 }, numClasses: 6, alexnetHidden: 32 })
      .eval()
      .to({ memoryFormat: 'channelsLast' });
    const features = async (split: 'train' | 'val') => {
      await using loader = new DataLoader(dataset, {
        modalities: ['s2'],
        batchSize: 4,
        splits: [split],
        filter: (s) => s.label >= 0,
        shuffle: false,
        normalization,
        workers: 1,
        onBadSample: 'skip',
      });
      const rows: number[][] = [],
        labels: number[] = [];
      for await (const batch of loader.epoch(0)) {
        using b = batch;
        torch.tidy(() =>
          torch.noGrad(() =>
            rows.push(
              ...(model.backbones
                .get('s2')!
                .features(b.views.s2[0].contiguous({ memoryFormat: 'channelsLast' }))
                .toArray() as number[][]),
            ),
          ),
        );
        labels.push(...Array.from(b.labels.toTypedArray() as BigInt64Array, Number));
      }
      return { rows, labels };
    };
    const train = await features('train'),
      val = await features('val');
    const expected = torch.tidy(() =>
      evaluation.knnAccuracy(torch.tensor(train.rows), train.labels, torch.tensor(val.rows), val.labels, {
        numClasses: 6,
      }),
    );
    t.is(knn.rows[0].cells.S2.valAccuracy, expected);

    const linear = await table1({
      ...options([]),
      out: join(scratch, 'linear'),
      rows: ['none'],
      columns: ['S2'],
      protocol: 'linear',
    });
    const config = JSON.parse(readFileSync(join(linear.rows[0].cells.S2.run, 'config.json'), 'utf8')) as {
      linearProbe: boolean;
    };
    t.true(config.linearProbe);
    await t.throwsAsync(table1({ ...options([]), protocol: 'probe' as 'knn' }), { message: /protocol must be one of/ });
  },
);

test.serial(
  'embed: fused features of a pre-training run, one row per readable sample, columns per modality',
  async (t) => {
    await ready;
    const events: { kind: string; row: string; dir: string }[] = [];
    await table1({ ...options(events), rows: ['S1+S2*'], columns: ['S1+S2'] });
    const run = events.find((e) => e.kind === 'pretrain')!.dir;
    await t.throwsAsync(
      embed({ init: run, data, out: join(scratch, 'emb', 'all'), workers: 1 }),
      { code: 'ERR_MMSSL_IO', message: /sentinel-/ },
      "onBadSample 'raise' by default: synth's broken samples stop it",
    );
    t.false(existsSync(join(scratch, 'emb', 'all.index.json')), 'and nothing is written');
    const index = await embed({ init: run, data, out: join(scratch, 'emb', 'all'), workers: 1, onBadSample: 'skip' });
    const fused = decodeNpy(readFileSync(join(scratch, 'emb', 'all.npy')), 'all.npy');
    t.deepEqual(index.columns, { s1: [0, 32], s2: [32, 64] });
    t.deepEqual(fused.shape, [index.ids.length, 64]);
    const synthReport = JSON.parse(readFileSync(join(data, 'synth_report.json'), 'utf8')) as {
      locations: number;
      defects: { folder: string }[];
    };
    t.deepEqual(
      index.skipped.map((s) => s.id).sort(),
      synthReport.defects.map((d) => d.folder).sort(),
      'the index lists exactly the broken samples',
    );
    t.true(
      index.skipped.every((s) => s.message.length > 0 && s.file !== undefined),
      'each with its file and reason',
    );
    t.is(index.ids.length + index.skipped.length, synthReport.locations, 'every sample is a row or listed as skipped');
    const perModality = await embed({
      init: run,
      data,
      out: join(scratch, 'emb', 'each'),
      perModality: true,
      workers: 1,
      modalities: ['s2'],
      onBadSample: 'skip',
    });
    const s2 = decodeNpy(readFileSync(join(scratch, 'emb', 'each.s2.npy')), 'each.s2.npy');
    t.true(
      index.ids.every((id) => perModality.ids.includes(id)),
      's2 alone reads every sample the fused s1+s2 does (and the one lacking s1)',
    );
    t.is(perModality.ids.length, index.ids.length + 1);
    const row = perModality.ids.indexOf(index.ids[0]);
    t.deepEqual(
      Array.from(s2.data as Float32Array).slice(row * 32, row * 32 + 32),
      Array.from(fused.data as Float32Array).slice(32, 64),
      'the same features, fused or not',
    );
    const val = await embed({
      init: run,
      data,
      out: join(scratch, 'emb', 'val'),
      splits: ['val'],
      workers: 1,
      onBadSample: 'skip',
    });
    t.deepEqual(
      val.ids,
      index.ids.filter((_, i) => index.splits[i] === 'val'),
      'one split: its samples, in the same order',
    );

    // loose GeoTIFF files of one modality: the same features as the same rasters read from the dataset
    const dataset = await openMeterML(data);
    const files = await Promise.all(
      [0, 1].map(async (k) => {
        const {
          shape: [c, h, w],
          data: values,
        } = await dataset.read(
          dataset.samples.findIndex((s) => s.id === index.ids[k]),
          's2',
        );
        const interleaved = Uint16Array.from(
          { length: c * h * w },
          (_, i) => values[(i % c) * h * w + Math.floor(i / c)],
        );
        const file = join(scratch, `tile${k}.tif`);
        writeFileSync(
          file,
          encodeGeoTiff({ width: w, height: h, bands: c, data: interleaved, origin: [0, 0], pixelSize: 1e-4 }),
        );
        return file;
      }),
    );
    const loose = await embed({
      init: run,
      data: files,
      out: join(scratch, 'emb', 'loose'),
      modalities: ['s2'],
      workers: 1,
    });
    t.deepEqual(loose.ids, files);
    const features = Array.from(
      decodeNpy(readFileSync(join(scratch, 'emb', 'loose.npy')), 'loose.npy').data as Float32Array,
    );
    for (const k of [0, 1]) {
      const expected = Array.from(fused.data as Float32Array).slice(k * 64 + 32, k * 64 + 64);
      t.true(
        features
          .slice(k * 32, k * 32 + 32)
          .every((v, i) => Math.abs(v - expected[i]) <= 1e-5 * (1 + Math.abs(expected[i]))),
        `tile ${k}`,
      );
    }
    await t.throwsAsync(embed({ init: run, data: files, out: join(scratch, 'emb', 'x'), workers: 1 }), {
      code: 'ERR_MMSSL_ARG',
      message: /exactly one modality/,
    });
  },
);

/** The bars of a Vega SVG: each a path 'M x,y h w v h h -w Z' with an aria-label naming its fields. */
function bars(svg: string) {
  return [
    ...svg.matchAll(
      /<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="bar" d="M([\d.-]+),([\d.-]+)h([\d.-]+)v([\d.-]+)/g,
    ),
  ].map((m) => ({ label: m[1], x: Number(m[2]), height: Number(m[5]) }));
}

test('the chart: bar heights proportional to the values from zero, clusters in group order, escaped names, errors', async (t) => {
  const svg = await renderSvg(
    groupedBars(
      'a & b',
      'y',
      ['G<1>', 'G2'],
      [
        { name: 'x "1"', values: [50, null] },
        { name: 'y', values: [75, 100] },
      ],
    ),
  );
  const found = bars(svg);
  t.is(found.length, 3);
  t.true(found[0].label.includes('G&lt;1&gt;') && found[0].label.includes('x &quot;1&quot;'), found[0].label);
  const unit = found[0].height / 50;
  for (const [bar, value] of found.map((b, i) => [b, [50, 75, 100][i]] as const))
    t.true(Math.abs(bar.height - unit * value) < 0.02, `${value}: ${bar.height}`);
  t.true(found[0].x < found[1].x && found[1].x < found[2].x);
  t.true(svg.includes('a &amp; b'));
  t.throws(() => groupedBars('', '', ['a'], [{ name: 's', values: [1, 2] }]), {
    code: 'ERR_MMSSL_ARG',
    message: /values must be 1 values/,
  });
  t.throws(() => groupedBars('', '', ['a'], [{ name: 's', values: [Number.NaN] }]), {
    code: 'ERR_MMSSL_ARG',
    message: /a finite number or null/,
  });
});
