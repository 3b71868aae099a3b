/**
 * bench:loader — locations per second delivered by the loader for METER-ML's release layout at the paper's modality
 * sizes (Sentinel-1 and Sentinel-2 10 m at 72x72, NAIP 720x720 resized to 128x128), two augmented views per modality,
 * standardised, batch 32, two decoding threads, against the same pipeline as a PyTorch user writes it
 * (torch.utils.data.DataLoader with two worker processes, numpy/Pillow, torchvision's transforms; Debian's
 * python3-torch) in the same run, on the same synthetic dataset (`mmssl synth`, made once and kept in the temp folder).
 * A second row sets the loader against what a pre-training step consumes at the same batch size (our three
 * backbones on two views of each modality, InfoNCE, SGD): a gain above 1 means the loader keeps the step fed.
 * The packed rows read the same dataset after `mmssl pack` (s1, s2 int16, NAIP uint8 at 128x128) through the packed
 * loader, against today's decoding loader and against the pack read as a PyTorch engineer reads pre-processed
 * records (NumPy memmap, torch.utils.data.DataLoader, the same augmentation; scripts/bench/packed_loader.py), and at
 * batch 256 (a larger synthetic set) with and without augmentation, on two cores and on one; the pack row times
 * `pack` itself on the release layout.
 * The GeoTIFF rows decode whole 1024x1024 files as archives hold them (Sentinel-2 Deflate, NAIP JPEG and WebP, a
 * LERC elevation model; scripts/bench/geotiff.py writes them) against GDAL's ReadAsArray into float32 (what ours
 * returns), one thread each; ours after two reads that warm the JIT.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { data, loss, nn, optim, torch } from '../../lib/index.js';
import { medianMs, PYTHON, pytorchVersion, rateRow, report, type Row, runPython } from './harness.js';

const BATCH = Number(process.env.BENCH_LOADER_BATCH ?? 32);
const BATCHES = Number(process.env.BENCH_LOADER_BATCHES ?? 15);
const WORKERS = 2;
/** The packed rows are measured longer: their batches take milliseconds, and the first epochs still warm the JIT. */
const PACKED_BATCHES = 4 * BATCHES;
const PER_CLASS = 25;
const LARGE_PER_CLASS = 80; // enough train locations for batches of 256
const CLI = fileURLToPath(new URL('../../lib/cli/main.js', import.meta.url));
const MODALITIES = [{ name: 's1' }, { name: 's2' }, { name: 'naip', size: [128, 128] as [number, number] }];

/** A synthetic dataset, written by the CLI once per machine (a few hundred MiB), without broken samples. */
function dataset(perClass = PER_CLASS): string {
  const root = join(tmpdir(), `mmssl-bench-loader-${perClass}-clean`);
  if (!existsSync(join(root, 'test_dataset.geojson'))) {
    execFileSync(
      process.execPath,
      [CLI, 'synth', '--out', root, '--per-class', String(perClass), '--seed', '0', '--no-defects'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }
  return root;
}

/** `root` packed at MODALITIES' sizes into a fresh folder, timed in this process: locations packed per second. */
async function packed(root: string): Promise<{ out: string; locationsPerSecond: number; locations: number }> {
  const out = join(tmpdir(), `mmssl-bench-pack-${basename(root)}`);
  rmSync(out, { recursive: true, force: true });
  const start = performance.now();
  const report = await data.pack({ source: root, out, sizes: { naip: [128, 128] }, workers: WORKERS });
  return { out, locations: report.records, locationsPerSecond: report.records / ((performance.now() - start) / 1000) };
}

/** Locations per second over BATCHES batches after the first (thread start-up excluded), epochs chained. */
async function ours(loader: data.DataLoader, batch = BATCH, batches = BATCHES): Promise<number> {
  let delivered = 0,
    start = 0;
  for (let epoch = 0; delivered < batches; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      using _ = batch;
      if (start === 0) {
        start = performance.now();
        continue;
      }
      if (++delivered === batches) break;
    }
  }
  return (delivered * batch) / ((performance.now() - start) / 1000);
}

/**
 * The packed loader at `batch`, with or without augmentation, and the PyTorch memmap loader over the same pack, on
 * `cores` cores: LibTorch's threads for ours, worker processes for PyTorch's.
 */
async function packedRates(
  pack: string,
  batch: number,
  augmentation: boolean,
  cores = WORKERS,
): Promise<[number, number]> {
  const baseline = runPython<{ locationsPerSecond: number }>('packed_loader.py', [
    pack,
    batch,
    cores,
    PACKED_BATCHES,
    augmentation ? 1 : 0,
  ]).locationsPerSecond;
  const threads = torch.getNumThreads();
  torch.setNumThreads(cores);
  const dataset = new data.PackedDataset(pack);
  await using loader = new data.DataLoader(dataset, {
    modalities: MODALITIES,
    batchSize: batch,
    dropLast: true,
    augmentation,
    normalization: dataset.stats,
    workers: WORKERS,
  });
  const rate = await ours(loader, batch, PACKED_BATCHES).finally(() => torch.setNumThreads(threads));
  return [rate, baseline];
}

/**
 * Locations per second one pre-training step consumes at batch BATCH: AlexNet on S1 (2x72x72) and S2 (4x72x72),
 * ResNet18 on NAIP (4x128x128), two views each, features into InfoNCE, backward, SGD; median of 3 after a warm-up.
 */
function stepDemand(): number {
  torch.manualSeed(0);
  const backbones = [
    nn.models.alexnet({ inChannels: 2 }),
    nn.models.alexnet({ inChannels: 4 }),
    nn.models.resnet18({ inChannels: 4 }),
  ].map((m) => m.train());
  const heads = backbones.map((m) => new nn.Linear(m.featureDim, 128)); // a common embedding width for the loss
  const inputs = [
    [2, 72],
    [4, 72],
    [4, 128],
  ].map(([c, s]) => [0, 1].map(() => torch.randn([BATCH, c, s, s])));
  const groups = Array.from({ length: 6 * BATCH }, (_, i) => i % BATCH);
  using sgd = new optim.SGD(
    [...backbones, ...heads].flatMap((m) => m.parameters()),
    { lr: 0.01, momentum: 0.9 },
  );
  const step = () =>
    torch.tidy(() => {
      sgd.zeroGrad();
      const z = torch.cat(backbones.flatMap((m, k) => inputs[k].map((x) => heads[k].forward(m.features(x)))));
      loss.infoNCE(z, groups, { temperature: 0.1 }).backward();
      sgd.step();
    });
  step();
  const ms = medianMs(step, 3);
  inputs.flat().forEach((x) => x.dispose());
  [...backbones, ...heads].forEach((m) => m.dispose());
  return BATCH / (ms / 1000);
}

/** Samples per second decoding each file of scripts/bench/geotiff.py, against GDAL's, the median of 5 reads each. */
async function geotiffRows(): Promise<Row[]> {
  const gdal = runPython<{
    gdal: string;
    cases: Record<string, { file: string; samples: number; samplesPerSecond: number }>;
  }>('geotiff.py', [join(tmpdir(), 'mmssl-bench-geotiff'), 5]);
  const rows: Row[] = [];
  for (const [name, { file, samples, samplesPerSecond }] of Object.entries(gdal.cases)) {
    const seconds: number[] = [];
    for (let i = 0; i < 7; i++) {
      const start = performance.now();
      await data.decodeGeoTiff(readFileSync(file), file);
      if (i >= 2) seconds.push((performance.now() - start) / 1000);
    }
    const median = seconds.sort((a, b) => a - b)[2];
    rows.push(
      rateRow(
        `GeoTIFF ${name}, 1024x1024`,
        'decode',
        'Msamples/s',
        samples / median / 1e6,
        samplesPerSecond / 1e6,
        `GDAL ${gdal.gdal} ReadAsArray to float32, 1 thread`,
      ),
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const root = dataset();
  const meterml = await data.openMeterML(root, { splits: ['train'] });
  const normalization = await data.loadOrComputeBandStats(meterml, { modalities: MODALITIES.map((m) => m.name) });
  const statsFile = join(root, 'mmssl-band-stats.bench.json');
  writeFileSync(statsFile, JSON.stringify(normalization));
  // The baseline runs first, alone, so the two never share the cores.
  const baseline = runPython<{ locationsPerSecond: number }>('loader.py', [
    root,
    statsFile,
    BATCH,
    WORKERS,
    BATCHES,
  ]).locationsPerSecond;
  await using loader = new data.DataLoader(meterml, {
    modalities: MODALITIES,
    batchSize: BATCH,
    dropLast: true,
    augmentation: true,
    normalization,
    workers: WORKERS,
  });
  const name = `PyTorch ${pytorchVersion()} DataLoader, ${WORKERS} worker processes (${PYTHON})`;
  const rate = await ours(loader);
  await loader.close();
  const pack = await packed(root);
  const [packedRate, memmapRate] = await packedRates(pack.out, BATCH, true);
  const large = await packed(dataset(LARGE_PER_CLASS));
  const memmap = `PyTorch ${pytorchVersion()} DataLoader over memmap, ${WORKERS} worker processes`;
  const large256 = [await packedRates(large.out, 256, true), await packedRates(large.out, 256, false)];
  const oneCore = await packedRates(large.out, 256, false, 1);
  const sizes = 's1+s2 72x72, naip 128x128';
  report('loader', [
    rateRow(
      `METER-ML layout, s1+s2 72x72, naip 720->128, 2 augmented views, batch ${BATCH}`,
      'decode+augment+batch',
      'locations/s',
      rate,
      baseline,
      name,
    ),
    rateRow(
      `the same loader against the pre-training step at batch ${BATCH}`,
      'supply vs demand',
      'locations/s',
      rate,
      stepDemand(),
      'pre-training step demand (AlexNet S1, AlexNet S2, ResNet18 NAIP, 2 views each, InfoNCE, SGD; ours)',
    ),
    rateRow(
      `packed, ${sizes}, 2 augmented views, batch ${BATCH}`,
      'read+augment+batch',
      'locations/s',
      packedRate,
      rate,
      'mmssl loader, decoding (the row above)',
    ),
    rateRow(
      `packed, ${sizes}, 2 augmented views, batch ${BATCH}`,
      'read+augment+batch',
      'locations/s',
      packedRate,
      memmapRate,
      memmap,
    ),
    ...(['with augmentation', 'without augmentation'] as const).map((augment, k) =>
      rateRow(
        `packed, ${sizes}, batch 256, ${augment}`,
        'read+batch',
        'locations/s',
        large256[k][0],
        large256[k][1],
        memmap,
      ),
    ),
    rateRow(
      `packed, ${sizes}, batch 256, without augmentation, one core`,
      'read+batch',
      'locations/s',
      oneCore[0],
      oneCore[1],
      `PyTorch ${pytorchVersion()} DataLoader over memmap, 1 worker process`,
    ),
    rateRow(
      `mmssl pack of the METER-ML layout (${pack.locations} locations, naip 720->128)`,
      'pack',
      'locations/s',
      pack.locationsPerSecond,
      rate,
      'mmssl loader, decoding (the first row: the same reads and resizes, plus augmentation)',
    ),
    ...(await geotiffRows()),
  ]);
}

await main();
