// The run report: built from small real runs (pre-training with the k-NN monitor, fine-tuning with modality
// dropout, a Table 1 folder), self-contained, and opened in headless Chromium: no console error, every chart a
// non-empty SVG, a screenshot under test-output/.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { synthesize } from '../../lib/data/synth/index.js';
import { pca2 } from '../../lib/report/projection.js';
import { writeReport } from '../../lib/report/build.js';
import { resolveFinetuneConfig, resolvePretrainConfig } from '../../lib/config/index.js';
import { finetune } from '../../lib/train/finetune.js';
import { pretrain } from '../../lib/train/pretrain.js';
import { table1 } from '../../lib/experiments/table1.js';

const root = new URL('../../..', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'mmssl-report-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));
const data = join(scratch, 'data');
const small = { alexnetHidden: 32, threads: 1, workers: 1, seed: 2, batchSize: 8 };
const run = join(scratch, 'run'),
  ft = join(scratch, 'ft'),
  t1 = join(scratch, 'table1');
const ready = (async () => {
  await synthesize({ out: data, perClass: 6, seed: 4, holdout: { val: 0.34, test: 0.17 }, defects: false });
  await pretrain({
    config: resolvePretrainConfig(small, {
      data,
      modalities: ['s1', 's2'],
      epochs: 2,
      hiddenDim: 32,
      embeddingDim: 16,
      optimizer: { name: 'adam', lr: 1e-3 },
      knn: { every: 1 },
    }),
    out: run,
  });
  await finetune({
    config: resolveFinetuneConfig(small, {
      data,
      init: run,
      modalities: ['s1', 's2'],
      epochs: 2,
      modalityDropout: 0.3,
      optimizer: { name: 'adam', lr: 1e-3 },
    }),
    out: ft,
  });
  await table1({
    data,
    out: t1,
    rows: ['none', 'S2'],
    columns: ['S2'],
    common: small,
    pretrain: { epochs: 1, hiddenDim: 32, embeddingDim: 16 },
    finetune: { epochs: 1 },
  });
})();

/** Chromium, from Debian's package or CHROMIUM_PATH; the browser test says why it skips without one. */
const chromium = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p && existsSync(p),
);

test('PCA scores on points whose components are known', (t) => {
  const scores = pca2(Float32Array.from([2, 0, -2, 0, 0, 0.5, 0, -0.5]), 4, 2);
  t.deepEqual(
    scores.map(([a]) => Math.round(Math.abs(a) * 1e6) / 1e6),
    [2, 2, 0, 0],
  );
  t.deepEqual(
    scores.map(([, b]) => Math.round(Math.abs(b) * 1e6) / 1e6),
    [0, 0, 0.5, 0.5],
  );
  t.true(Math.sign(scores[0][0]) === -Math.sign(scores[1][0]));
});

test.serial(
  'a report of a pre-training run, a fine-tuned run and a Table 1 folder: every section, self-contained',
  async (t) => {
    await ready;
    const out = join(scratch, 'report.html');
    const summary = await writeReport({ runs: [run, ft, t1], out, split: 'val' });
    t.deepEqual(
      summary.sections.map((s) => s.replace(/\(.*\)/, '()').replace(/of .*/, 'of')),
      [
        'Table 1 ()',
        'Pre-training',
        'Cross-modal retrieval',
        'Embeddings of',
        'Embeddings of',
        'Embeddings of',
        'Fine-tuning',
        'Configuration and environment',
      ],
    );
    const html = readFileSync(out, 'utf8');
    t.false(
      /<script|<link|<img|@import|\s(?:src|href)\s*=\s*["'](?!#)|url\((?!#)/i.test(html),
      'nothing loaded from elsewhere (only in-page references)',
    );
    t.is((html.match(/<figure class="chart"><svg/g) ?? []).length, summary.charts);
    t.true(html.includes('k-NN accuracy') && html.includes('Confusion matrix: ft') && html.includes('s1→s2'));
    t.true(html.includes('environment.libtorch'), 'the environment of the runs');
    t.false(
      existsSync(join(run, 'evaluation-val.json')) || existsSync(join(ft, 'evaluation-val.json')),
      'evaluations computed for the report, the run folders only read',
    );
    await t.throwsAsync(writeReport({ runs: [data], out: join(scratch, 'x.html') }), {
      code: 'ERR_MMSSL_IO',
      message: /is not a run/,
    });
    await t.throwsAsync(writeReport({ runs: [], out: join(scratch, 'x.html') }), {
      message: /needs at least one run folder/,
    });
  },
);

(chromium ? test.serial : test.skip)(
  `the report in headless Chromium: no console errors, every chart drawn, a screenshot${chromium ? '' : ' (skipped: no Chromium; apt-get install chromium, or set CHROMIUM_PATH)'}`,
  async (t) => {
    await ready;
    const out = join(scratch, 'browser.html');
    const summary = await writeReport({ runs: [run, ft], out, split: 'val' });
    const { default: puppeteer } = await import('puppeteer-core');
    const browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
      await page.setViewport({ width: 1360, height: 900 });
      await page.goto(`file://${out}`, { waitUntil: 'load' });
      const charts = await page.$$eval('figure.chart > svg', (svgs) =>
        svgs.map((svg) => {
          const box = svg.getBoundingClientRect();
          return {
            width: box.width,
            height: box.height,
            marks: svg.querySelectorAll('path, rect, circle, line').length,
          };
        }),
      );
      t.deepEqual(errors, []);
      t.is(charts.length, summary.charts);
      for (const c of charts) t.true(c.width > 100 && c.height > 50 && c.marks > 5, JSON.stringify(c));
      mkdirSync(join(root, 'test-output'), { recursive: true });
      const png = join(root, 'test-output', 'report.png');
      await page.screenshot({ path: png, fullPage: true });
      t.true(readFileSync(png).length > 10_000);
      t.log(`screenshot: ${png}`);
    } finally {
      await browser.close();
    }
  },
);
