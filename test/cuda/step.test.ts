// On a CUDA device (skipped elsewhere, saying so): the loss and the pre-training step on the GPU against the CPU,
// mixed precision and the gradient scaler there, and no host read inside a step. scripts/check-gpu.sh runs these.
import test from 'ava';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { data, loss, optim, torch } from '../../lib/index.js';
import { disposeStep, pretrainStep } from '../../lib/train/pretrain.js';
import { batchOf, globalViews, layout, smallModel, stepOptions } from '../helpers/pretrain-batch.js';

const hasCuda = torch.cuda.isAvailable();
const cudaTest = hasCuda ? test : test.skip;
const why = hasCuda ? '' : ' (skipped: no CUDA device in this machine)';
const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));

/** The first step's loss on `device` at `precision`: BatchNorm in eval mode and dropout off, so the RNG plays no part. */
function firstLoss(device: torch.Device, precision: '32' | 'bf16-mixed'): number {
  using model = smallModel().eval().to({ device, dtype: 'float32' });
  using optimizer = new optim.SGD(model.parameters(), { lr: 0.01 });
  const views = Object.fromEntries(
    Object.entries(globalViews(6)).map(([m, vs]) => [m, vs.map((v) => v.to({ device, dtype: 'float32' }))]),
  );
  const output = torch.syncFree('the test step', () =>
    pretrainStep(model, batchOf(views, [false, true, false, false, false, false]), layout, optimizer, {
      ...stepOptions,
      dtype: 'float32',
      precision,
    }),
  );
  const value = output!.loss.item() as number;
  disposeStep(output);
  Object.values(views)
    .flat()
    .forEach((v) => v.dispose());
  return value;
}

cudaTest(
  `the pre-training step on CUDA: float32 within 1e-4 of the CPU's, bf16-mixed within 2%, no host read in it${why}`,
  (t) => {
    const mode = torch.getSyncDebugMode();
    torch.setSyncDebugMode('error');
    try {
      const cpu = firstLoss('cpu', '32');
      t.true(relative(firstLoss('cuda', '32'), cpu) <= 1e-4);
      t.true(relative(firstLoss('cuda', 'bf16-mixed'), cpu) <= 0.02);
    } finally {
      torch.setSyncDebugMode(mode);
    }
  },
);

cudaTest(
  `GradScaler on CUDA: an infinite gradient skips the step and halves the scale, a finite one steps${why}`,
  (t) => {
    torch.tidy(() => {
      const p = torch.ones([3], { device: 'cuda' }).requiresGrad_();
      using optimizer = new optim.SGD([p], { lr: 0.1 });
      using scaler = new torch.GradScaler('cuda', { initScale: 1024 });
      const stepWith = (g: number[]) => {
        optimizer.zeroGrad();
        scaler.scale(torch.tensor(g, { device: 'cuda' }).mul(p).sum()).backward();
        const stepped = scaler.step(optimizer);
        scaler.update();
        return stepped;
      };
      t.false(stepWith([1, Infinity, 3]));
      t.is(scaler.getScale(), 512);
      t.deepEqual(p.cpu().toArray(), [1, 1, 1]);
      t.true(stepWith([1, 2, 3]));
      const after = p.cpu().toArray() as number[];
      [0.9, 0.8, 0.7].forEach((x, i) => t.true(Math.abs(after[i] - x) <= 1e-6, `${after[i]} vs ${x}`));
    });
  },
);

cudaTest(`infoNCE on CUDA equals the CPU's at 4096 views: loss and gradient within 1e-4${why}`, (t) => {
  torch.tidy(() => {
    torch.manualSeed(0);
    const z = torch.randn([4096, 128]);
    const ids = Array.from({ length: 4096 }, (_, i) => i >> 2);
    const anchorMask = ids.map((g) => g % 10 !== 0);
    const run = (device: torch.Device) => {
      const x = z.to({ device }).detach().requiresGrad_();
      const value = loss.infoNCE(x, ids, { anchorMask });
      value.backward();
      return { value: value.item() as number, grad: x.grad!.cpu() };
    };
    const [cpu, cuda] = [run('cpu'), run('cuda')];
    t.true(relative(cuda.value, cpu.value) <= 1e-4);
    const gap = cuda.grad.sub(cpu.grad).abs().max().item() as number;
    t.true(gap <= 1e-4 * (cpu.grad.abs().max().item() as number), `gradient gap ${gap}`);
  });
});

cudaTest(`a loader on CUDA gives the batches it gives on the CPU, augmentations included${why}`, async (t) => {
  const dataset = await data.openMeterML(
    join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'data', 'meterml'),
  );
  const batches = async (device: torch.Device) => {
    await using loader = new data.DataLoader(dataset, {
      modalities: ['s1', 's2', 'naip'],
      batchSize: 4,
      augmentation: true,
      seed: 2,
      device,
      onBadSample: 'skip',
    });
    const out: number[][] = [];
    for await (const batch of loader.epoch(0)) {
      using b = batch;
      t.is(b.locations.device, device === 'cpu' ? 'cpu' : 'cuda:0');
      out.push(
        Object.values(b.views)
          .flat()
          .map((v) => v.sum().cpu().item() as number),
      );
    }
    return out;
  };
  const [cpu, gpu] = [await batches('cpu'), await batches('cuda')];
  t.is(gpu.length, cpu.length);
  gpu.flat().forEach((v, i) => t.true(relative(v, cpu.flat()[i]) < 1e-4, `view sum ${i}: ${v} vs ${cpu.flat()[i]}`));
});
