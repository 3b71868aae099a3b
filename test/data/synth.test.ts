// The synthetic dataset generator (lib/data/synth): determinism, METER-ML's release layout, files that NumPy and
// Pillow read to the values openMeterML reads, documented value ranges, the deliberate defects, option checks, progress,
// and that every modality carries the class (a nearest-centroid classifier beats chance on each one alone).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { CLASSES, type Dataset, type Raster } from '../../lib/data/dataset.js';
import { openMeterML } from '../../lib/data/meterml.js';
import { synthesize, type SynthReport } from '../../lib/data/synth/index.js';

const scratch = mkdtempSync(join(tmpdir(), 'mmssl-synth-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

const PER_CLASS = 6;
const TYPES = [...CLASSES, 'Negative'];
const SPLITS = ['train', 'val', 'test'] as const;

/** Every file under `root`, relative to it, sorted. */
function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  walk(root);
  return out.sort();
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const rasterSha = ({ data }: Raster) => sha256(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));

/** sha256 of every file (relative path → hash), synth_report.json aside (it records the `out` path). */
function hashes(root: string): Map<string, string> {
  return new Map(
    listFiles(root)
      .filter((f) => f !== 'synth_report.json')
      .map((f) => [f, sha256(readFileSync(join(root, f)))]),
  );
}

interface Feature {
  type: string;
  geometry: { type: string; coordinates: number[] };
  properties: { Latitude: number; Longitude: number; Type: string; Source: string; Image_Folder: string };
}
const features = (root: string, split: string): Feature[] =>
  JSON.parse(readFileSync(join(root, `${split}_dataset.geojson`), 'utf8')).features;

function python(script: string, ...args: string[]): unknown {
  return JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }),
  );
}

// ---- the shared datasets: A (seed 1, defects), A2 (A again), C (seed 2, no defects, into an existing empty folder) ----

const rootA = join(scratch, 'a'),
  rootA2 = join(scratch, 'a2'),
  rootC = join(scratch, 'c');
let reportA: SynthReport, reportA2: SynthReport, reportC: SynthReport;
const progressA: [number, number][] = [];
let datasetA: Dataset, datasetC: Dataset;

test.before(async () => {
  mkdirSync(rootC); // "must not exist, or be empty": an empty folder is fine
  reportA = await synthesize({
    out: rootA,
    perClass: PER_CLASS,
    seed: 1,
    onProgress: (done, total) => progressA.push([done, total]),
  });
  reportA2 = await synthesize({ out: rootA2, perClass: PER_CLASS, seed: 1 });
  reportC = await synthesize({ out: rootC, perClass: PER_CLASS, seed: 2, defects: false });
  datasetA = await openMeterML(rootA);
  datasetC = await openMeterML(rootC);
});

// ---- determinism ----------------------------------------------------------------------------------------------------

test('the same seed writes byte-identical files; the report differs only in out', (t) => {
  const a = hashes(rootA),
    a2 = hashes(rootA2);
  t.true(a.size > 3 * 7 * PER_CLASS, `${a.size} files`);
  t.deepEqual([...a2.keys()], [...a.keys()]);
  for (const [file, hash] of a) t.is(a2.get(file), hash, file);
  t.deepEqual({ ...reportA2, out: rootA }, reportA);
  const onDisk = JSON.parse(readFileSync(join(rootA2, 'synth_report.json'), 'utf8'));
  t.deepEqual(onDisk, reportA2);
  t.is(reportA.seed, 1);
});

test('another seed writes other sites and other pixels', (t) => {
  const a = hashes(rootA),
    c = hashes(rootC);
  const folders = (root: string) => SPLITS.flatMap((s) => features(root, s).map((f) => f.properties.Image_Folder));
  const fa = folders(rootA),
    fc = folders(rootC);
  t.is(fa.length, fc.length);
  t.is(fa.filter((f) => fc.includes(f)).length, 0, 'no site in common');
  // location by location (same type, same split, same order), every image differs
  const ids = (d: Dataset) => d.samples.map((s) => s.id);
  const [ia, ic] = [ids(datasetA), ids(datasetC)];
  let compared = 0;
  for (let i = 0; i < ia.length; i++) {
    for (const file of ['naip.png', 'sentinel-2-10m.npy', 'sentinel-1.npy']) {
      const ha = a.get(join(ia[i], file)),
        hc = c.get(join(ic[i], file));
      if (ha === undefined || hc === undefined) continue; // A's missing-file defect
      t.not(ha, hc, `${ia[i]} vs ${ic[i]}: ${file}`);
      compared++;
    }
  }
  t.true(compared >= 3 * ia.length - 1);
  t.not(reportA.seed, reportC.seed);
});

// ---- layout ---------------------------------------------------------------------------------------------------------

test('METER-ML layout: geojson per split, train folders one level below Image_Folder, every type in every split', (t) => {
  for (const root of [rootA, rootC]) {
    let multi = 0;
    const counts: Record<string, number> = {};
    for (const split of SPLITS) {
      t.true(statSync(join(root, `${split}_dataset.geojson`)).isFile());
      const json = JSON.parse(readFileSync(join(root, `${split}_dataset.geojson`), 'utf8'));
      t.is(json.type, 'FeatureCollection');
      const fs: Feature[] = json.features;
      counts[split] = fs.length;
      const types = new Set<string>();
      for (const { type, geometry, properties: p } of fs) {
        t.is(type, 'Feature');
        t.deepEqual(
          geometry,
          { type: 'Point', coordinates: [p.Longitude, p.Latitude] },
          'GeoJSON points are [longitude, latitude]',
        );
        t.true(p.Latitude >= -90 && p.Latitude <= 90 && p.Longitude >= -180 && p.Longitude <= 180);
        t.is(typeof p.Latitude, 'number');
        t.is(typeof p.Longitude, 'number');
        const name = `${p.Latitude.toFixed(7)}_${p.Longitude.toFixed(7)}`;
        t.is(p.Image_Folder, `${split}_images/${name}`);
        if (split === 'train') {
          t.false(existsSync(join(root, p.Image_Folder)), `${p.Image_Folder} is not at the top of train_images`);
          const parts = [1, 2, 3].filter((n) => existsSync(join(root, 'train_images', `train_images_${n}`, name)));
          t.is(parts.length, 1, `${name} in exactly one train_images_N`);
        } else {
          t.true(statSync(join(root, p.Image_Folder)).isDirectory(), p.Image_Folder);
        }
        if (p.Type === 'CAFOs-Landfills') multi++;
        types.add(p.Type === 'CAFOs-Landfills' ? 'CAFOs' : p.Type);
        t.true([...TYPES, 'CAFOs-Landfills'].includes(p.Type), p.Type);
      }
      t.deepEqual([...types].sort(), [...TYPES].sort(), `${split}: every type`);
    }
    // train_images holds only the three parts, and the parts hold as many folders as train lists
    t.deepEqual(readdirSync(join(root, 'train_images')).sort(), ['train_images_1', 'train_images_2', 'train_images_3']);
    const trainFolders = [1, 2, 3].flatMap((n) => readdirSync(join(root, 'train_images', `train_images_${n}`)));
    t.is(trainFolders.length, counts.train);
    t.true(multi >= 1, 'some CAFOs-Landfills site (perClass >= 5)');
    const report: SynthReport = JSON.parse(readFileSync(join(root, 'synth_report.json'), 'utf8'));
    t.is(report.locations, 7 * PER_CLASS);
    t.is(report.splits.train + report.splits.val + report.splits.test, report.locations);
    t.deepEqual(report.splits, counts as SynthReport['splits']);
    t.is(report.out, root);
  }
  t.deepEqual(reportC, JSON.parse(readFileSync(join(rootC, 'synth_report.json'), 'utf8')));
});

test('openMeterML indexes every site with its classes; the multi-class sites are CAFOs and Landfills', (t) => {
  t.is(datasetA.samples.length, 7 * PER_CLASS);
  const byType = (type: string) =>
    datasetA.samples.filter((s) => (type === 'Negative' ? s.negative : s.classes.includes(type as never)));
  for (const type of CLASSES) t.true(byType(type).length >= PER_CLASS, type);
  t.is(byType('Negative').length, PER_CLASS);
  const multi = datasetA.samples.filter((s) => s.classes.length > 1);
  t.true(multi.length >= 1);
  for (const s of multi) t.deepEqual(s.classes, ['CAFOs', 'Landfills']);
  for (const s of datasetA.samples) t.is(s.label, s.negative ? -1 : CLASSES.indexOf(s.classes[0]));
});

// ---- files as NumPy and Pillow read them ----------------------------------------------------------------------------

const READ_WITH_NUMPY_AND_PILLOW = `
import sys, json, hashlib, os
import numpy as np
from PIL import Image
out = []
for folder in sys.argv[1:]:
    r = {}
    for name, file in (('s1', 'sentinel-1.npy'), ('s2', 'sentinel-2-10m.npy')):
        a = np.load(os.path.join(folder, file))
        cf = np.ascontiguousarray(a.transpose(2, 0, 1)).astype('<f4')
        r[name] = {'shape': list(a.shape), 'dtype': str(a.dtype), 'sha256': hashlib.sha256(cf.tobytes()).hexdigest(),
                   'sums': [int(a[:, :, b].astype(np.int64).sum()) for b in range(a.shape[2])], 'pixel': [int(v) for v in a[5, 7, :]]}
    img = Image.open(os.path.join(folder, 'naip.png'))
    a = np.asarray(img)
    cf = np.ascontiguousarray(a.transpose(2, 0, 1)).astype('<f4')
    r['naip'] = {'mode': img.mode, 'size': list(img.size), 'shape': list(a.shape), 'dtype': str(a.dtype),
                 'sha256': hashlib.sha256(cf.tobytes()).hexdigest(), 'sums': [int(a[:, :, b].astype(np.int64).sum()) for b in range(4)],
                 'pixel': [int(v) for v in a[100, 300, :]], 'alpha': [int(v) for v in np.asarray(img.getchannel('A'))[100, 300:303]]}
    out.append(r)
print(json.dumps(out))
`;

test('NumPy and Pillow read the files to the values openMeterML reads (NIR in alpha, not premultiplied)', async (t) => {
  const d = datasetC;
  // one sample per split, and a multi-class one
  const picks = [
    ...SPLITS.map((s) => d.samples.findIndex((x) => x.split === s)),
    d.samples.findIndex((x) => x.classes.length > 1),
  ];
  t.true(picks.every((i) => i >= 0));
  const expected = python(READ_WITH_NUMPY_AND_PILLOW, ...picks.map((i) => join(rootC, d.samples[i].id))) as Record<
    string,
    {
      shape: number[];
      dtype: string;
      sha256: string;
      sums: number[];
      pixel: number[];
      mode?: string;
      size?: number[];
      alpha?: number[];
    }
  >[];
  for (const [k, index] of picks.entries()) {
    const e = expected[k];
    t.deepEqual(e.s1.shape, [72, 72, 2]);
    t.is(e.s1.dtype, 'uint16');
    t.deepEqual(e.s2.shape, [72, 72, 4]);
    t.is(e.s2.dtype, 'uint16');
    t.is(e.naip.mode, 'RGBA');
    t.deepEqual(e.naip.size, [720, 720]);
    t.deepEqual(e.naip.shape, [720, 720, 4]);
    t.is(e.naip.dtype, 'uint8');
    t.is(e.naip.alpha![0], e.naip.pixel[3], 'band 3 is the alpha channel');
    for (const [modality, [h, w], at] of [
      ['s1', [72, 72], [5, 7]],
      ['s2', [72, 72], [5, 7]],
      ['naip', [720, 720], [100, 300]],
    ] as const) {
      const raster = await d.read(index, modality);
      const bands = e[modality].sums.length;
      t.deepEqual(raster.shape, [bands, h, w], modality);
      t.is(rasterSha(raster), e[modality].sha256, `${d.samples[index].id} ${modality}`);
      const plane = h * w;
      const sums = Array.from({ length: bands }, (_, b) =>
        raster.data.subarray(b * plane, (b + 1) * plane).reduce((s, v) => s + v, 0),
      );
      t.deepEqual(sums, e[modality].sums, `${modality} band sums`);
      t.deepEqual(
        Array.from({ length: bands }, (_, b) => raster.data[b * plane + at[0] * w + at[1]]),
        e[modality].pixel,
        `${modality} pixel`,
      );
    }
  }
});

// ---- value ranges ---------------------------------------------------------------------------------------------------

function bandStats({ shape: [bands, h, w], data }: Raster) {
  const plane = h * w;
  return Array.from({ length: bands }, (_, b) => {
    const band = data.subarray(b * plane, (b + 1) * plane);
    let min = Infinity,
      max = -Infinity,
      sum = 0,
      sq = 0,
      integers = true;
    for (const v of band) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
      sq += v * v;
      if (!Number.isInteger(v)) integers = false;
    }
    const mean = sum / plane;
    return { min, max, mean, std: Math.sqrt(Math.max(0, sq / plane - mean * mean)), integers };
  });
}

test('values in the documented ranges: S1 0..4095, S2 reflectance x 10000 in 0..10000, NAIP uint8; none constant', async (t) => {
  const limits = { s1: 4095, s2: 10000, naip: 255 } as const;
  for (let i = 0; i < datasetC.samples.length; i++) {
    for (const modality of ['s1', 's2', 'naip'] as const) {
      const stats = bandStats(await datasetC.read(i, modality));
      for (const [b, s] of stats.entries()) {
        const where = `${datasetC.samples[i].id} ${modality} band ${b}`;
        t.true(s.integers, where);
        t.true(s.min >= 0 && s.max <= limits[modality], `${where}: ${s.min}..${s.max}`);
        t.true(s.std > 0, `${where}: constant ${s.mean}`);
        t.true(s.max < limits[modality] || modality === 's1', `${where}: saturated`);
      }
    }
  }
  // plausible magnitudes, not just anything in range: vegetation is dark in red, bright in NIR (S2 and NAIP alike)
  const s2 = bandStats(await datasetC.read(0, 's2')),
    naip = bandStats(await datasetC.read(0, 'naip'));
  t.true(s2[0].mean > 100 && s2[0].mean < 5000, `S2 red mean ${s2[0].mean}`);
  t.true(naip[3].mean > 30, `NAIP NIR (alpha) mean ${naip[3].mean}`);
});

// ---- defects --------------------------------------------------------------------------------------------------------

test('with defects: synth_report.json lists two broken samples, and reading them is a FileError naming folder and file', async (t) => {
  const report: SynthReport = JSON.parse(readFileSync(join(rootA, 'synth_report.json'), 'utf8'));
  t.deepEqual(report, reportA);
  t.is(report.defects.length, 2);
  t.deepEqual(report.defects.map((d) => d.file).sort(), ['sentinel-1.npy', 'sentinel-2-10m.npy']);
  const byFile = { 'sentinel-1.npy': 's1', 'sentinel-2-10m.npy': 's2' } as const;
  for (const defect of report.defects) {
    const index = datasetA.samples.findIndex((s) => s.id === defect.folder);
    t.true(index >= 0, `${defect.folder} is a sample`);
    const path = join(rootA, defect.folder, defect.file);
    if (defect.file === 'sentinel-1.npy') {
      t.false(existsSync(path), 'missing on disk');
      t.regex(defect.problem, /missing/);
    } else {
      // NumPy's view of the broken file: float32 with NaN
      const e = python(
        'import sys, json, numpy as np; a = np.load(sys.argv[1]); print(json.dumps([str(a.dtype), int(np.isnan(a).sum())]))',
        path,
      ) as [string, number];
      t.is(e[0], 'float32');
      t.true(e[1] > 0);
      t.regex(defect.problem, /NaN/);
    }
    const error = await t.throwsAsync(datasetA.read(index, byFile[defect.file as keyof typeof byFile]), {
      code: 'ERR_MMSSL_IO',
    });
    t.is(error?.name, 'FileError');
    t.true(error!.message.includes(defect.folder), error?.message);
    t.true(error!.message.includes(defect.file), error?.message);
    // the sample's other files are intact
    await t.notThrowsAsync(datasetA.read(index, 'naip'));
  }
});

test('without defects: every sample reads in every modality synth writes, and the report lists none', async (t) => {
  t.deepEqual(reportC.defects, []);
  let reads = 0;
  for (let i = 0; i < datasetC.samples.length; i++) {
    for (const modality of ['s1', 's2', 'naip']) {
      await datasetC.read(i, modality);
      reads++;
    }
  }
  t.is(reads, 3 * 7 * PER_CLASS);
});

// ---- learnability ---------------------------------------------------------------------------------------------------

/** The raster averaged over k x k blocks (speckle and noise averaged out): [C, H / k, W / k]. */
function blockMean({ shape: [c, h, w], data }: Raster, k: number): Raster {
  const [oh, ow] = [h / k, w / k],
    out = new Float32Array(c * oh * ow);
  for (let b = 0; b < c; b++) {
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++)
        out[b * oh * ow + Math.floor(i / k) * ow + Math.floor(j / k)] += data[b * h * w + i * w + j] / (k * k);
  }
  return { shape: [c, oh, ow], data: out };
}

/** Per band, percentiles (linear interpolation, as NumPy's default) of the image on a 36 x 36 grid (20 m cells). */
function imageFeatures(r: Raster): number[] {
  const {
    shape: [bands, h, w],
    data,
  } = blockMean(r, r.shape[1] / 36);
  return Array.from({ length: bands }, (_, b) => {
    const sorted = Float64Array.from(data.subarray(b * h * w, (b + 1) * h * w)).sort();
    return [0, 2, 10, 50, 90, 98, 100].map((q) => {
      const at = (q / 100) * (sorted.length - 1),
        lo = Math.floor(at),
        hi = Math.ceil(at);
      return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
    });
  }).flat();
}

/** Leave-one-out accuracy of a nearest-class-centroid classifier on z-scored features. */
function looAccuracy(xs: number[][], ys: number[]): number {
  const dims = xs[0].length;
  const mean = Array.from({ length: dims }, (_, d) => xs.reduce((s, x) => s + x[d], 0) / xs.length);
  const std = Array.from(
    { length: dims },
    (_, d) => Math.sqrt(xs.reduce((s, x) => s + (x[d] - mean[d]) ** 2, 0) / xs.length) || 1,
  );
  const z = xs.map((x) => x.map((v, d) => (v - mean[d]) / std[d]));
  let correct = 0;
  for (let i = 0; i < z.length; i++) {
    let best = -1,
      bestDistance = Infinity;
    for (let c = 0; c < CLASSES.length; c++) {
      const members = z.filter((_, j) => j !== i && ys[j] === c);
      if (members.length === 0) continue;
      const centroid = Array.from({ length: dims }, (_, d) => members.reduce((s, x) => s + x[d], 0) / members.length);
      const distance = centroid.reduce((s, v, d) => s + (v - z[i][d]) ** 2, 0);
      if (distance < bestDistance) [best, bestDistance] = [c, distance];
    }
    if (best === ys[i]) correct++;
  }
  return correct / z.length;
}

test('each modality alone carries the class: nearest-centroid accuracy well above chance (1/6)', async (t) => {
  // all six classes' sites (every split, so 6 a class; Negatives and unreadable samples left out), leave-one-out
  const d = datasetA;
  const accuracy: Record<string, number> = {};
  for (const modality of ['s1', 's2', 'naip'] as const) {
    const xs: number[][] = [],
      ys: number[] = [];
    for (let i = 0; i < d.samples.length; i++) {
      if (d.samples[i].label < 0) continue;
      let raster: Raster;
      try {
        raster = await d.read(i, modality);
      } catch {
        continue;
      }
      xs.push(imageFeatures(raster));
      ys.push(d.samples[i].label);
    }
    t.is(xs.length, 6 * PER_CLASS);
    accuracy[modality] = looAccuracy(xs, ys);
  }
  t.log(accuracy);
  // Each modality on its own sees the facility: with seed 1 this gives s1 0.47, s2 0.53, naip 0.47 (17 to 19 of 36;
  // on a 90-site dataset of another seed 0.49, 0.56, 0.61). Chance is 1/6 (6 of 36, sd about 2.2); 0.35 (13 of 36)
  // leaves a margin of 4 sites below what is achieved while staying about 3 sd above chance. Speckle makes S1 the
  // hardest, hence the block means before the percentiles; plain per-band mean and std reach only 0.2 on S1.
  for (const [modality, a] of Object.entries(accuracy)) t.true(a > 0.35, `${modality}: ${a}`);
});

// ---- options --------------------------------------------------------------------------------------------------------

/** A fresh parent folder for one bad call, so what it leaves behind shows. */
function parent(name: string): string {
  const dir = join(scratch, 'bad', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

test('bad options are rejected, naming the option or path, and leave nothing behind', async (t) => {
  for (const [name, perClass, pattern] of [
    ['two', 2, /perClass.*>= 3.*2/],
    ['fraction', 3.5, /perClass.*integer.*3\.5/],
  ] as const) {
    const dir = parent(name),
      out = join(dir, 'out');
    await t.throwsAsync(synthesize({ out, perClass }), { code: 'ERR_MMSSL_ARG', message: pattern });
    t.deepEqual(readdirSync(dir), [], name);
  }
  {
    const dir = parent('nonempty'),
      out = join(dir, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const error = await t.throwsAsync(synthesize({ out, perClass: 3 }), { code: 'ERR_MMSSL_IO' });
    t.true(error!.message.includes(out), error?.message);
    t.regex(error!.message, /not empty/);
    t.deepEqual(readdirSync(dir), ['out']);
    t.deepEqual(readdirSync(out), ['keep.txt']);
    t.is(readFileSync(join(out, 'keep.txt'), 'utf8'), 'mine');
  }
  {
    const dir = parent('file'),
      out = join(dir, 'out');
    writeFileSync(out, 'a file');
    const error = await t.throwsAsync(synthesize({ out, perClass: 3 }), { code: 'ERR_MMSSL_IO' });
    t.true(error!.message.includes(out), error?.message);
    t.regex(error!.message, /not a folder/);
    t.deepEqual(readdirSync(dir), ['out']);
    t.is(readFileSync(out, 'utf8'), 'a file');
  }
  {
    const dir = parent('misc');
    await t.throwsAsync(synthesize({ out: '', perClass: 3 }), { code: 'ERR_MMSSL_ARG', message: /out/ });
    await t.throwsAsync(synthesize({ out: join(dir, 'o'), perClass: 3, seed: 0.5 }), {
      code: 'ERR_MMSSL_ARG',
      message: /seed/,
    });
    await t.throwsAsync(synthesize({ out: join(dir, 'o'), perClass: 3, defects: 'no' as never }), {
      code: 'ERR_MMSSL_ARG',
      message: /defects/,
    });
    await t.throwsAsync(synthesize(undefined as never), { code: 'ERR_MMSSL_ARG' });
    t.deepEqual(readdirSync(dir), []);
  }
});

test('an interrupted run removes its partial folder and leaves no dataset', async (t) => {
  const dir = parent('interrupted'),
    out = join(dir, 'out');
  const seen: number[] = [];
  await t.throwsAsync(
    synthesize({
      out,
      perClass: 3,
      onProgress: (done) => {
        seen.push(done);
        if (done === 2) throw new Error('stop here');
      },
    }),
    { message: 'stop here' },
  );
  t.deepEqual(seen, [1, 2]);
  t.deepEqual(readdirSync(dir), []);
});

// ---- progress -------------------------------------------------------------------------------------------------------

test('onProgress counts every location, done increasing to total = 7 x perClass', (t) => {
  t.is(progressA.length, 7 * PER_CLASS);
  t.deepEqual(
    progressA,
    Array.from({ length: 7 * PER_CLASS }, (_, k) => [k + 1, 7 * PER_CLASS]),
  );
  t.is(reportA.locations, 7 * PER_CLASS);
  // no partial folder left by the successful runs
  t.deepEqual(
    readdirSync(scratch).filter((name) => name.includes('.partial-')),
    [],
  );
});

// ---- defects at the smallest size -----------------------------------------------------------------------------------

test('at perClass 3 the broken samples are still Negative sites, so every class keeps a readable training sample', async (t) => {
  const out = join(scratch, 'small');
  const report = await synthesize({ out, perClass: 3 });
  t.is(report.seed, 0, 'seed defaults to 0');
  t.deepEqual(report.splits, { train: 7, val: 7, test: 7 });
  t.is(report.defects.length, 2);
  const dataset = await openMeterML(out);
  // synthesize says "the first two training sites of the last type (Negative) are the broken ones"; a broken class
  // site would leave that class (one training site at perClass 3) with no readable training sample.
  for (const defect of report.defects) {
    const sample = dataset.samples.find((s) => s.id === defect.folder);
    t.truthy(sample, defect.folder);
    t.true(
      sample?.negative,
      `${defect.folder} (${defect.file}) is a ${sample?.classes.join('-')} site, not a Negative one`,
    );
  }
  for (const name of CLASSES) {
    const usable = [];
    for (const [i, s] of dataset.samples.entries()) {
      if (s.split !== 'train' || !s.classes.includes(name)) continue;
      try {
        for (const modality of ['s1', 's2', 'naip']) await dataset.read(i, modality);
        usable.push(s.id);
      } catch {
        /* broken */
      }
    }
    t.true(usable.length >= 1, `${name}: no readable training sample`);
  }
});

test('an out path with a trailing slash writes the dataset there (its partial folder must not be inside it)', async (t) => {
  const dir = parent('slash'),
    out = join(dir, 'dataset');
  // `${out}/.partial-<pid>` would be inside out, which is removed before the rename: the run would fail at the end
  const report = await synthesize({ out: `${out}/`, perClass: 3, seed: 3 });
  t.is(report.locations, 21);
  t.deepEqual(readdirSync(dir), ['dataset']);
  t.is((await openMeterML(out)).samples.length, 21);
});
